// A binding's own page: its conditions and exports, what it holds on the control plane (the bound
// objects' provider copies with their Ready condition, the claimed objects copied there), and the
// way to unbind it: a confirmation page of its own (the deletion policy, the binding's name typed),
// so that no click on the binding page alone unbinds. What the person may not read says so.
import type { DeletionPolicy } from "../api/binding-spec.ts";
import type { BindingContents, BoundCopy, ClaimedCopy } from "../bind/binding-contents.ts";
import type { Part } from "../bind/list-part.ts";
import type { PullBindingView } from "../bind/pull-binding-view.ts";
import { deletionPolicyWords } from "../bind/unbind.ts";
import type { Condition } from "../kube/conditions.ts";
import { type Html, html } from "./html.ts";
import { type BindingView, bindingHref, layout, status } from "./pages.ts";

/** The binding's page with a path after it (e.g. /unbind), the group kept. */
export function bindingSubHref(b: { namespace: string; name: string; group: string }, sub: string, query = ""): string {
  const [path, search] = bindingHref(b).split("?", 2);
  const params = [search, query].filter((p) => p !== undefined && p !== "").join("&");
  return `${path}${sub}${params ? `?${params}` : ""}`;
}

/** how often the page asks for the binding's status until it settles */
const refreshSeconds = 2;

function more(count: number | "some", what: string): Html | string {
  if (count === 0) return "";
  return html`<p class="muted" data-more="${what}">${count === "some" ? "and more" : `and ${count} more`} ${what} not shown</p>`;
}

export function partOf<T>(part: Part<T>, id: string, shown: (items: T[]) => Html, what: string): Html {
  if (part.state === "refused")
    return html`<p class="error" data-part="${id}" data-refused>not allowed to see ${part.what}</p>`;
  if (part.state === "failed") return html`<p class="error" data-part="${id}">${part.message}</p>`;
  if (part.items.length === 0) return html`<p class="muted" data-part="${id}">none</p>`;
  return html`<div data-part="${id}">${shown(part.items)}${more(part.more, what)}</div>`;
}

function copies(items: BoundCopy[]): Html {
  return html`<table class="copies"><thead><tr><th>App object</th><th>Provider copy</th><th>Condition</th><th>Reason</th><th>Message</th></tr></thead><tbody>
  ${items.map(
    (c) =>
      html`<tr data-copy="${c.namespace}/${c.name}"><td>${c.appNamespace ? `${c.appNamespace}/` : ""}${c.appName}${
        c.deleting ? html` <span class="muted">(deleting)</span>` : ""
      }</td><td class="muted">${c.namespace ? `${c.namespace}/` : ""}${c.name}</td><td>${
        c.condition
          ? html`${c.condition.type}: ${status(c.condition as Condition)}`
          : html`<span class="muted">none yet</span>`
      }</td><td>${c.condition?.reason}</td><td class="muted">${c.condition?.message}</td></tr>`,
  )}
  </tbody></table>`;
}

const directions = { consumer: "app cluster → control plane", provider: "provider → app cluster" } as const;

function claimed(items: ClaimedCopy[]): Html {
  return html`<table class="claimed"><thead><tr><th>Kind</th><th>Namespace</th><th>Name</th><th>Direction</th><th>Copied</th></tr></thead><tbody>
  ${items.map(
    (c) =>
      html`<tr data-claimed="${c.kind}/${c.namespace}/${c.name}"><td>${c.kind}</td><td>${c.namespace}</td><td>${c.name}</td><td>${directions[c.from]}</td><td class="muted">${c.created}</td></tr>`,
  )}
  </tbody></table>`;
}

/** Ready and not going: the page stops following the sync. */
function settled(b: BindingView): boolean {
  return b.ready?.status === "True" && !b.deleting;
}

/** The part of the page that follows the sync: conditions and exports, all read from the binding itself. */
function statusPart(b: BindingView, conditions: Condition[]): Html {
  return html`<h2>AppClusterBinding ${b.namespace}/<span id="binding-name">${b.name}</span> <span class="muted" id="binding-group">${b.group}</span></h2>
  ${
    b.deleting
      ? html`<div class="notice" role="status" id="unbinding">Being unbound (deletionPolicy ${b.deletionPolicy}): the sync releases its objects, then lets go of the binding.</div>`
      : ""
  }
  <p>Ready: <span id="ready">${status(b.ready)}</span> · Connected: ${status(b.connected)}${
    settled(b)
      ? ""
      : html` <span class="muted">(refreshing every ${refreshSeconds} s)</span><noscript> <span class="muted">(without script: reload the page)</span></noscript>`
  }</p>
  <table><thead><tr><th>Condition</th><th>Status</th><th>Reason</th><th>Message</th></tr></thead><tbody>
  ${conditions.map((c) => html`<tr><td>${c.type}</td><td>${status(c)}</td><td>${c.reason}</td><td class="muted">${c.message}</td></tr>`)}
  </tbody></table>
  <h2 style="margin-top:16px">Exports</h2>
  <table><thead><tr><th>API</th><th>Objects</th><th>Message</th></tr></thead><tbody>
  ${b.exports.map((e) => html`<tr><td>${e.id}</td><td>${e.objects}</td><td class="muted">${e.message}</td></tr>`)}
  </tbody></table>`;
}

/** The status part's address; it names the binding's group, so that one read finds the binding. */
function statusHref(b: BindingView): string {
  const [path = ""] = bindingSubHref(b, "/status").split("?", 1);
  return `${path}?group=${encodeURIComponent(b.group)}`;
}

/**
 * What the page's script asks for every refreshSeconds until the binding settles: its status part
 * alone, read from the binding (no discovery, no lists); settled tells the script to load the
 * whole page once more, contents and all.
 */
export function bindingStatus(view: { binding: BindingView; conditions: Condition[] }): {
  settled: boolean;
  html: string;
} {
  return { settled: settled(view.binding), html: statusPart(view.binding, view.conditions).text };
}

export function bindingPage(view: {
  user: string;
  csrf: string;
  binding: BindingView;
  conditions: Condition[];
  contents: BindingContents;
}): string {
  const b = view.binding;
  return layout({
    title: b.name,
    user: view.user,
    csrf: view.csrf,
    // until it is Ready (or while it goes), the page's script follows the sync's progress (assets.ts)
    body: html`<section id="binding-status"${
      settled(b) ? "" : html` data-status-url="${statusHref(b)}" data-refresh-seconds="${refreshSeconds}"`
    }>
  ${statusPart(b, view.conditions)}
</section>
<section id="bound-objects"><h2>Bound objects</h2>
  <p class="muted">The provider's copies on the control plane, each with the app object it mirrors.</p>
  ${view.contents.exports.map(
    (e) =>
      html`<h3 style="font-size:14px">${e.id}</h3>${partOf(e.copies, `copies:${e.id}`, copies, `objects of ${e.id}`)}`,
  )}
</section>
<section id="claimed-objects"><h2>Claimed objects copied to the control plane</h2>
  ${partOf(view.contents.claimed, "claimed", claimed, "claimed objects")}
</section>
<section>
  ${
    b.deleting ? "" : html`<p><a class="button" id="unbind-link" href="${bindingSubHref(b, "/unbind")}">Unbind…</a></p>`
  }
  <p><a href="/">back to all bindings</a></p>
</section>`,
  });
}

/** The confirmation step: the deletion policy (the binding's own preselected) and its name typed. */
export function unbindPage(view: { user: string; csrf: string; binding: BindingView; error?: string }): string {
  const b = view.binding;
  const choice = (policy: DeletionPolicy) =>
    html`<label><input type="radio" name="policy" value="${policy}"${b.deletionPolicy === policy ? html` checked` : ""} required> <strong>${policy}</strong>: ${deletionPolicyWords[policy]}.</label>`;
  return layout({
    title: `Unbind ${b.name}`,
    user: view.user,
    csrf: view.csrf,
    body: html`<section><h2>Unbind AppClusterBinding ${b.namespace}/${b.name} <span class="muted">${b.group}</span></h2>
  ${view.error ? html`<div class="error" role="alert" id="unbind-error">${view.error}</div>` : ""}
  <form method="post" action="${bindingSubHref(b, "/unbind")}" id="unbind-form">
  <input type="hidden" name="_csrf" value="${view.csrf}">
  <fieldset><legend>What happens to the bound objects</legend>${choice("Orphan")}${choice("Delete")}</fieldset>
  <label for="confirm">Type the binding's name, ${b.name}, to unbind it</label>
  <input type="text" id="confirm" name="confirm" autocomplete="off" required>
  <button type="submit">Unbind</button>
  </form>
  <p><a href="${bindingHref(b)}">back to the binding</a></p></section>`,
  });
}

/** What the binding's page shows once an unbound binding is gone. */
export function unboundPage(view: { user: string; csrf: string; namespace: string; name: string }): string {
  return layout({
    title: `${view.name} unbound`,
    user: view.user,
    csrf: view.csrf,
    body: html`<section><h2>AppClusterBinding ${view.namespace}/${view.name}</h2>
  <div class="notice" role="status" id="unbound">Unbound: the binding is gone; the sync has released its objects.</div>
  <p><a href="/">back to all bindings</a></p></section>`,
  });
}

function heartbeatLine(heartbeat: PullBindingView["heartbeat"], now: number): Html {
  if ("invalid" in heartbeat) return html`<span class="error">${heartbeat.invalid}</span>`;
  const at = heartbeat.lastHeartbeatTime;
  if (at === undefined) return html`<span class="muted">none yet</span>`;
  const ago = Math.round((now - Date.parse(at)) / 1000);
  return html`<span id="last-heartbeat">${at}</span>${Number.isNaN(ago) ? "" : html` <span class="muted">(${ago} s ago)</span>`}${
    heartbeat.heartbeatInterval ? html` <span class="muted">every ${heartbeat.heartbeatInterval}</span>` : ""
  }${heartbeat.konnectorVersion ? html` <span class="muted">· konnector ${heartbeat.konnectorVersion}</span>` : ""}`;
}

/** A pull binding's page, short: its konnector's heartbeat and health, and the APIs exported to it. */
export function pullBindingPage(view: { user: string; csrf: string; pull: PullBindingView; now: number }): string {
  const p = view.pull;
  return layout({
    title: `${p.namespace} (pull)`,
    user: view.user,
    csrf: view.csrf,
    body: html`<section><h2>Pull binding: ClusterBinding ${p.namespace}/cluster${p.deleting ? html` <span class="muted">(deleting)</span>` : ""}</h2>
  <p>Last heartbeat: ${heartbeatLine(p.heartbeat, view.now)}</p>
  <p>Healthy: <span id="healthy">${status(p.healthy)}</span> <span class="muted">${p.healthy?.reason}</span> ${p.healthy?.message}</p>
  <h2 style="margin-top:16px">Exported APIs</h2>
  ${partOf(
    p.exports,
    "exports",
    (
      items,
    ) => html`<table><thead><tr><th>APIServiceExport</th><th>API</th><th>Ready</th><th>Message</th></tr></thead><tbody>
  ${items.map((e) => html`<tr data-export="${e.name}"><td>${e.name}</td><td>${e.api}</td><td>${status(e.ready)}</td><td class="muted">${e.ready?.message}</td></tr>`)}
  </tbody></table>`,
    "APIServiceExports",
  )}
  <p><a href="/?namespace=${encodeURIComponent(p.namespace)}">back</a></p></section>`,
  });
}
