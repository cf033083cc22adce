import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { assertSelfContained } from "../../src/kube/self-contained.ts";
import { Html, html } from "../../src/web/html.ts";
import { sameToken } from "../../src/web/session.ts";

describe("html", () => {
  it("escapes every value that is not Html, lists included", () => {
    const name = `<script>alert("x")</script>`;
    assert.equal(
      html`<td title="${name}">${[name, html`<b>${"&"}</b>`]}</td>`.text,
      `<td title="&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;">&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;<b>&amp;</b></td>`,
    );
    assert.equal(html`${undefined}${null}${false}${0}`.text, "0");
    assert.ok(html`x` instanceof Html);
  });
});

describe("sameToken", () => {
  it("is true only for two equal, non-empty tokens", () => {
    assert.equal(sameToken("abc", "abc"), true);
    assert.equal(sameToken("abc", "abd"), false);
    assert.equal(sameToken("abc", "abcd"), false);
    assert.equal(sameToken(undefined, undefined), false);
    assert.equal(sameToken("", ""), false);
  });
});

describe("assertSelfContained", () => {
  const base = (user: string, cluster = "    certificate-authority-data: AAAA") => `apiVersion: v1
kind: Config
clusters:
- name: app
  cluster:
    server: https://127.0.0.1:6443
${cluster}
users:
- name: me
  user:
${user}
contexts:
- name: app
  context: {cluster: app, user: me}
current-context: app
`;
  it("accepts inline credentials", () => {
    assertSelfContained(base("    token: abc"));
    assertSelfContained(base("    client-certificate-data: AAAA\n    client-key-data: BBBB"));
  });
  it("refuses commands, plugins and file references, naming the entry", () => {
    const refused: Array<[string, RegExp]> = [
      [base("    exec: {command: /bin/true, apiVersion: client.authentication.k8s.io/v1}"), /user "me" runs a command/],
      [base("    auth-provider: {name: oidc}"), /user "me" uses an auth-provider/],
      [base("    token-file: /var/run/secrets/token"), /user "me" reads its token from a file/],
      [base("    client-certificate: /c.crt"), /client certificate from a file/],
      [base("    client-key: /c.key"), /client key from a file/],
      [base("    token: abc", "    certificate-authority: /ca.crt"), /cluster "app" reads its CA from a file/],
    ];
    for (const [text, why] of refused) assert.throws(() => assertSelfContained(text), why);
  });
  it("refuses what is not a kubeconfig", () => {
    assert.throws(() => assertSelfContained("- a\n- list"), /not a YAML or JSON object/);
    assert.throws(() => assertSelfContained("{bad: ["), /invalid kubeconfig/);
  });
});
