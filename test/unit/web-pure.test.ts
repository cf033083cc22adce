import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { KubeClient } from "../../src/kube/client.ts";
import { assertSelfContained } from "../../src/kube/self-contained.ts";
import { type Identity, impersonationOf, privilegedReason, sameIdentity, tokenExpiry } from "../../src/web/auth.ts";
import { Html, html } from "../../src/web/html.ts";
import { type Lookup, SessionStore, sameToken } from "../../src/web/session.ts";

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
  it("refuses a command hidden behind a YAML merge key, as the sync would read the kubeconfig", () => {
    const hidden = `apiVersion: v1
kind: Config
x-plugin: &plugin
  exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/touch, args: [/tmp/klb-must-not-exist]}
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {<<: *plugin}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`;
    assert.throws(() => assertSelfContained(hidden), /user "u" runs a command/);
    assert.throws(() => KubeClient.fromUntrustedKubeconfig(hidden), /user "u" runs a command/);
  });
  it("refuses what is not a kubeconfig", () => {
    assert.throws(() => assertSelfContained("- a\n- list"), /not a YAML or JSON object/);
    assert.throws(() => assertSelfContained("{bad: ["), /invalid kubeconfig/);
  });
});

describe("privileged identities", () => {
  const sa = (groups: string[]): Identity => ({ username: "system:serviceaccount:team-a:ci", groups });
  it("refuses reserved users and system groups, naming them", () => {
    const refused: Array<[Identity, RegExp]> = [
      [
        { username: "admin", groups: ["system:masters", "system:authenticated"] },
        /privileged groups \(system:masters\)/,
      ],
      [{ username: "system:node:n1", groups: ["system:nodes"] }, /reserved user system:node:n1/],
      [{ username: "system:kube-controller-manager", groups: [] }, /reserved user system:kube-controller-manager/],
      [{ username: "system:anonymous", groups: ["system:unauthenticated"] }, /reserved user system:anonymous/],
      [{ username: "system:serviceaccount:a:b:c", groups: [] }, /reserved user/],
      [
        { username: "bob", groups: ["team", "system:bootstrappers", "system:nodes"] },
        /system:bootstrappers, system:nodes/,
      ],
      [sa(["system:serviceaccounts", "system:serviceaccounts-x"]), /system:serviceaccounts-x/],
    ];
    for (const [identity, why] of refused) {
      assert.match(privilegedReason(identity) ?? "", why, identity.username);
      assert.throws(() => impersonationOf(identity), /refusing to impersonate/);
    }
  });
  it("lets people and service accounts in, impersonating their name and groups but system:authenticated", () => {
    const person: Identity = { username: "alice@example.com", uid: "u1", groups: ["dev", "system:authenticated"] };
    assert.equal(privilegedReason(person), undefined);
    assert.deepEqual(impersonationOf(person), { username: "alice@example.com", groups: ["dev"] });
    const account = sa(["system:serviceaccounts", "system:serviceaccounts:team-a", "system:authenticated"]);
    assert.equal(privilegedReason(account), undefined);
    assert.deepEqual(impersonationOf(account), {
      username: "system:serviceaccount:team-a:ci",
      groups: ["system:serviceaccounts", "system:serviceaccounts:team-a"],
    });
  });
  it("compares identities by name, uid and groups in any order", () => {
    const a: Identity = { username: "a", uid: "1", groups: ["x", "y"] };
    assert.equal(sameIdentity(a, { username: "a", uid: "1", groups: ["y", "x"] }), true);
    assert.equal(sameIdentity(a, { username: "a", uid: "2", groups: ["x", "y"] }), false);
    assert.equal(sameIdentity(a, { username: "a", uid: "1", groups: ["x"] }), false);
    assert.equal(sameIdentity(a, { username: "b", uid: "1", groups: ["x", "y"] }), false);
  });
});

describe("tokenExpiry", () => {
  const jwt = (payload: unknown) =>
    `${Buffer.from('{"alg":"RS256"}').toString("base64url")}.${Buffer.from(JSON.stringify(payload)).toString("base64url")}.c2ln`;
  it("reads a JWT's exp, in ms", () => {
    assert.equal(tokenExpiry(jwt({ sub: "x", exp: 1_900_000_000 })), 1_900_000_000_000);
  });
  it("is undefined for static tokens, JWTs without exp and garbage", () => {
    assert.equal(tokenExpiry("0123456789abcdef"), undefined);
    assert.equal(tokenExpiry(jwt({ sub: "x" })), undefined);
    assert.equal(tokenExpiry(jwt({ exp: "soon" })), undefined);
    assert.equal(tokenExpiry(jwt(null)), undefined);
    assert.equal(tokenExpiry("a.%%%.c"), undefined);
  });
});

describe("SessionStore", () => {
  const kubeconfig = `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`;
  const identity: Identity = { username: "alice", uid: "1", groups: ["dev", "system:authenticated"] };
  const minute = 60_000;

  /** A store on a clock the test moves; answer is what TokenReview says next. */
  function store(answer: () => Promise<Identity | undefined>) {
    const clock = { now: 1_000_000 };
    let reviews = 0;
    const sessions = new SessionStore({
      idleMs: 60 * minute,
      maxMs: 8 * 60 * minute,
      reviewIntervalMs: 2 * minute,
      review: async (token) => {
        assert.equal(token, "the-token");
        reviews++;
        return answer();
      },
      now: () => clock.now,
    });
    const client = KubeClient.fromKubeconfigText(kubeconfig);
    return { clock, sessions, client, reviews: () => reviews };
  }
  const state = (l: Lookup) => (l.state === "none" && l.ended ? `none:${l.ended}` : l.state);

  it("ends at the token's expiry when it comes before the maximum, else at the maximum", async () => {
    const { clock, sessions, client } = store(async () => identity);
    const short = sessions.create(identity, { username: "alice" }, client, "the-token", clock.now + 10 * minute);
    assert.equal(short.ends, clock.now + 10 * minute);
    assert.equal(sessions.maxAgeSeconds(short), 600);
    const long = sessions.create(identity, { username: "alice" }, client, "the-token", clock.now + 48 * 60 * minute);
    assert.equal(long.ends, clock.now + 8 * 60 * minute);
    const staticToken = sessions.create(identity, { username: "alice" }, client, "the-token");
    assert.equal(staticToken.ends, clock.now + 8 * 60 * minute);
    clock.now += 10 * minute;
    assert.equal(state(await sessions.get(short.id)), "none:expired");
    assert.equal(state(await sessions.get(short.id)), "none", "the reason is told once");
    assert.equal(state(await sessions.get(long.id)), "live");
    assert.ok(!JSON.stringify(sessions.list()).includes("the-token"), "sessions do not hold the token");
    sessions.close();
  });

  it("re-checks when due, once for concurrent requests, and ends on a refused or changed token", async () => {
    let answer: Identity | undefined = identity;
    const { clock, sessions, client, reviews } = store(async () => answer);
    const session = sessions.create(identity, { username: "alice" }, client, "the-token");
    clock.now += minute;
    assert.equal(state(await sessions.get(session.id)), "live");
    assert.equal(reviews(), 0, "not due yet");
    clock.now += minute;
    const both = await Promise.all([sessions.get(session.id), sessions.get(session.id)]);
    assert.deepEqual(both.map(state), ["live", "live"]);
    assert.equal(reviews(), 1);
    assert.equal(session.reviewed, clock.now);
    answer = undefined;
    clock.now += 2 * minute;
    assert.equal(state(await sessions.get(session.id)), "none:revoked");
    assert.equal(sessions.list().length, 0);

    answer = { ...identity, uid: "2" };
    const again = sessions.create(identity, { username: "alice" }, client, "the-token");
    clock.now += 2 * minute;
    assert.equal(state(await sessions.get(again.id)), "none:changed");
    sessions.close();
  });

  it("serves on the last check for one more interval when TokenReview fails, then refuses until it answers", async () => {
    let failing = true;
    const { clock, sessions, client, reviews } = store(async () => {
      if (failing) throw new Error("connect ECONNREFUSED");
      return identity;
    });
    const session = sessions.create(identity, { username: "alice" }, client, "the-token");
    clock.now += 2 * minute;
    assert.equal(state(await sessions.get(session.id)), "live", "one failure signs no one out");
    assert.equal(reviews(), 1);
    clock.now += 5_000;
    assert.equal(state(await sessions.get(session.id)), "live");
    assert.equal(reviews(), 1, "no retry within 10 s");
    clock.now += 2 * minute;
    assert.equal(state(await sessions.get(session.id)), "unchecked", "not served past two intervals");
    assert.equal(reviews(), 2);
    failing = false;
    clock.now += 10_000;
    assert.equal(state(await sessions.get(session.id)), "live");
    clock.now = session.ends;
    assert.equal(state(await sessions.get(session.id)), "none:expired", "an outage never moves the end");
    sessions.close();
  });
});
