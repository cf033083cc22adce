// The page's only style sheet and script, served from this process (no CDN).
export const styleSheet = `
:root { --fg: #1d2433; --muted: #5b6478; --line: #d9dee8; --accent: #2456d3; --ok: #1b7f3b; --bad: #b42318; --warn: #9a6700; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: #f6f7fb; }
header { display: flex; align-items: center; justify-content: space-between; padding: 12px 32px; background: #fff; border-bottom: 1px solid var(--line); }
header h1 { font-size: 18px; margin: 0; }
header form { display: inline; margin-left: 12px; }
main { max-width: 1040px; margin: 24px auto; padding: 0 24px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 16px 24px; margin-bottom: 24px; }
h2 { font-size: 16px; margin: 0 0 12px; }
table { width: 100%; border-collapse: collapse; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; color: var(--muted); font-size: 13px; }
ul.claims { margin: 0; padding-left: 18px; color: var(--muted); font-size: 13px; }
.muted { color: var(--muted); }
.status { font-weight: 600; }
.status.True { color: var(--ok); } .status.False { color: var(--bad); } .status.Unknown { color: var(--warn); }
.error { background: #fdecea; border: 1px solid #f5c2bd; color: var(--bad); padding: 10px 14px; border-radius: 6px; margin-bottom: 16px; white-space: pre-wrap; }
.notice { background: #e8f3ec; border: 1px solid #b7dcc3; color: var(--ok); padding: 10px 14px; border-radius: 6px; margin-bottom: 16px; }
label { display: block; font-weight: 600; margin: 12px 0 4px; }
input[type=text], input[type=password], textarea { width: 100%; padding: 8px; border: 1px solid var(--line); border-radius: 6px; font: inherit; }
textarea { font-family: ui-monospace, monospace; font-size: 12px; min-height: 120px; }
fieldset { border: 1px solid var(--line); border-radius: 6px; margin: 12px 0; padding: 8px 12px; }
fieldset label { font-weight: 400; margin: 4px 0; }
.claim-group { margin: 6px 0 10px; }
.claim-api { font-weight: 600; font-size: 13px; }
label.claim { padding-left: 24px; text-indent: -24px; }
button { background: var(--accent); color: #fff; border: 0; border-radius: 6px; padding: 8px 16px; font: inherit; cursor: pointer; margin-top: 12px; }
button.link { background: none; color: var(--accent); padding: 0; margin: 0; }
a.button { display: inline-block; background: var(--accent); color: #fff; border-radius: 6px; padding: 8px 16px; text-decoration: none; }
a { color: var(--accent); }
.login { max-width: 460px; margin: 80px auto; }
`;

// Reads a chosen kubeconfig file into the text area; without script, pasting works the same.
// A binding's page that is not Ready yet asks for its status part alone every few seconds (while
// the tab is shown), not for the whole page: the page's contents cost the control plane lists and
// discovery, its status one read of the binding. Once the binding settles, is gone or the answer
// is anything else (the session ended, say), the whole page is loaded again, once.
export const script = `
document.addEventListener("change", (event) => {
  const input = event.target;
  if (!(input instanceof HTMLInputElement) || input.id !== "kubeconfig-file" || !input.files || !input.files[0]) return;
  input.files[0].text().then((text) => { document.getElementById("kubeconfig").value = text; });
});
(() => {
  const part = document.querySelector("[data-status-url]");
  if (!(part instanceof HTMLElement)) return;
  const url = part.dataset.statusUrl;
  const every = 1000 * (Number(part.dataset.refreshSeconds) || 2);
  const later = () => setTimeout(poll, every);
  function poll() {
    if (document.hidden) {
      document.addEventListener("visibilitychange", poll, { once: true });
      return;
    }
    fetch(url, { headers: { accept: "application/json" }, credentials: "same-origin", redirect: "manual" })
      .then((answer) => {
        const json = answer.ok && (answer.headers.get("content-type") || "").startsWith("application/json");
        return json ? answer.json() : undefined;
      })
      .then((status) => {
        if (!status || status.settled || typeof status.html !== "string") return location.reload();
        part.innerHTML = status.html;
        later();
      }, later);
  }
  later();
})();
`;
