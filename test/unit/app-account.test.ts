// A binding's app cluster service account: its names, its roles from the exports and accepted
// claims, the token's times and the kubeconfig around it (pure parts of issue #13 point 4).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pino } from "pino";
import { parse } from "yaml";
import {
  accountFor,
  accountKubeconfig,
  accountObjects,
  kubeconfigToken,
  renewalTime,
  tokenAccount,
  tokenTimes,
  withToken,
} from "../../src/app-access/account.ts";
import { appRbac, claimsRoleBinding, claimsRules, mainRules } from "../../src/app-access/rbac.ts";
import { type RenewalOutcome, renewIfDue } from "../../src/app-access/token-renewal.ts";
import type { PermissionClaim } from "../../src/export/types.ts";
import type { KubeClient } from "../../src/kube/client.ts";

const jwt = (payload: Record<string, unknown>) =>
  `${Buffer.from('{"alg":"RS256"}').toString("base64url")}.${Buffer.from(JSON.stringify(payload)).toString("base64url")}.sig`;

const claim = (resource: string, owner: "Provider" | "Consumer", group = ""): PermissionClaim => ({
  group,
  resource,
  version: "v1",
  selector: { owner },
});

const account = { namespace: "klutch-bind", name: "orders-1a2b3c4d" };

describe("app account", () => {
  it("is named after the binding, stable, and differs per binding namespace", () => {
    const a = accountFor("team-a", "orders");
    assert.equal(a.namespace, "klutch-bind");
    assert.match(a.name, /^orders-[0-9a-f]{8}$/);
    assert.deepEqual(accountFor("team-a", "orders"), a);
    assert.notEqual(accountFor("team-b", "orders").name, a.name);
  });

  it("reads a token's times and account, and renews at the given share of its lifetime", () => {
    const token = jwt({
      iat: 1000,
      exp: 1600,
      sub: "system:serviceaccount:klutch-bind:orders-1a2b3c4d",
      "kubernetes.io": { namespace: "klutch-bind", serviceaccount: { name: "orders-1a2b3c4d", uid: "u" } },
    });
    assert.deepEqual(tokenTimes(token), { issuedAt: 1_000_000, expires: 1_600_000 });
    assert.deepEqual(tokenAccount(token), account);
    assert.equal(renewalTime({ issuedAt: 1_000_000, expires: 1_600_000 }, 0.8), 1_480_000);
    assert.deepEqual(tokenAccount(jwt({ sub: "system:serviceaccount:ns:sa" })), { namespace: "ns", name: "sa" });
    // no expiry, not a JWT, a user's token: nothing to renew
    assert.equal(tokenTimes(jwt({ iat: 1 })), undefined);
    assert.equal(tokenTimes("static-token"), undefined);
    assert.equal(tokenAccount(jwt({ sub: "admin" })), undefined);
  });

  it("writes a kubeconfig of the account alone, and swaps its token in place", () => {
    const text = accountKubeconfig({ server: "https://app:6443", caData: "Q0E=" }, account, "t1");
    const doc = parse(text);
    assert.equal(doc.clusters[0].cluster.server, "https://app:6443");
    assert.equal(doc.clusters[0].cluster["certificate-authority-data"], "Q0E=");
    assert.deepEqual(doc.users[0].user, { token: "t1" });
    assert.equal(kubeconfigToken(text), "t1");
    const renewed = withToken(text, "t2");
    assert.equal(kubeconfigToken(renewed), "t2");
    assert.deepEqual(parse(renewed).clusters, doc.clusters);
    assert.equal(kubeconfigToken("not: [a kubeconfig"), undefined);
  });
});

describe("app account RBAC", () => {
  const exports = [
    { group: "anynines.com", resource: "postgresqlinstances", claims: [claim("secrets", "Provider")] },
    {
      group: "b.example",
      resource: "buckets",
      claims: [claim("configmaps", "Consumer"), claim("secrets", "Consumer")],
    },
  ];

  it("names the exported CRDs and their aggregated roles, never a wildcard", () => {
    const rules = mainRules(account, exports);
    const crds = rules.find((r) => r.resources.includes("customresourcedefinitions"));
    assert.deepEqual(crds?.resourceNames, ["buckets.b.example", "postgresqlinstances.anynines.com"]);
    assert.deepEqual(crds?.verbs, ["get", "create", "update", "patch"]);
    const aggregated = rules.find((r) => r.resources.includes("clusterroles") && r.verbs.includes("create"));
    assert.equal(aggregated?.resourceNames?.length, 6);
    assert.ok(aggregated?.resourceNames?.includes("klutch-bind:postgresqlinstances.anynines.com:admin"));
    for (const rule of rules) {
      assert.ok(!rule.verbs.includes("*") && !rule.resources.includes("*") && !rule.apiGroups.includes("*"));
      assert.ok(!rule.verbs.includes("escalate") && !rule.verbs.includes("impersonate"));
      // nothing claimed cluster-wide: secrets and configmaps only through the claims role
      assert.ok(!rule.resources.includes("secrets") && !rule.resources.includes("configmaps"));
    }
    const names = accountObjects(account);
    assert.deepEqual(
      rules.find((r) => r.verbs.includes("bind")),
      {
        apiGroups: ["rbac.authorization.k8s.io"],
        resources: ["clusterroles"],
        verbs: ["bind"],
        resourceNames: [names.claimsRole],
      },
    );
    assert.deepEqual(rules.find((r) => r.resources.includes("namespaces"))?.resourceNames, ["kube-system"]);
  });

  it("claims role: writes where the provider owns, reads where the consumer does, merged per resource", () => {
    assert.deepEqual(claimsRules(exports), [
      { apiGroups: [""], resources: ["configmaps"], verbs: ["get", "list", "watch"] },
      {
        apiGroups: [""],
        resources: ["secrets"],
        verbs: ["get", "list", "watch", "create", "update", "patch", "delete"],
      },
    ]);
    assert.deepEqual(claimsRules([{ group: "x", resource: "y", claims: [] }]), []);
  });

  it("the token may be asked for the account itself only, in its own namespace", () => {
    const objects = appRbac(account, exports);
    assert.deepEqual(
      objects.map((o) => o.kind),
      ["Namespace", "ClusterRole", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"],
    );
    const tokenRole = objects.find((o) => o.kind === "Role");
    assert.equal(tokenRole?.metadata.namespace, "klutch-bind");
    assert.deepEqual(tokenRole?.rules, [
      { apiGroups: [""], resources: ["serviceaccounts/token"], verbs: ["create"], resourceNames: [account.name] },
    ]);
    const binding = claimsRoleBinding(account, "team-ns", "uid-1");
    assert.equal(binding.metadata.namespace, "team-ns");
    assert.deepEqual(binding.metadata.ownerReferences, [
      {
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "ClusterRole",
        name: accountObjects(account).mainRole,
        uid: "uid-1",
      },
    ]);
  });
});

describe("token renewal, before any request", () => {
  const access = { account, times: { issuedAt: 1_000_000, expires: 1_600_000 } };
  const kubeconfig = {
    secret: { apiVersion: "v1", kind: "Secret", metadata: { name: "s" } },
    key: "kubeconfig",
    text: "",
  };
  const untouched = {} as KubeClient; // any request would throw
  const options = { fraction: 0.8, log: pino({ level: "silent" }) };

  it("waits until the share of the lifetime is reached", async () => {
    const outcome = await renewIfDue(untouched, untouched, kubeconfig, access, options, 1_100_000);
    assert.deepEqual(outcome, { kind: "wait", ms: 380_000 });
  });

  it("says to bind again once the token has expired, naming the account and never the token", async () => {
    const outcome = await renewIfDue(untouched, untouched, kubeconfig, access, options, 1_600_000);
    assert.equal(outcome.kind, "expired");
    assert.match(
      outcome.kind === "expired" ? outcome.message : "",
      /token of service account klutch-bind\/orders-1a2b3c4d expired at .* bind again/,
    );
  });
});

describe("token renewal against an app cluster whose token times cannot be trusted", () => {
  const kubeconfigText = accountKubeconfig({ server: "https://app.example" }, account, "old-token");
  const secret = { apiVersion: "v1", kind: "Secret", metadata: { name: "s", namespace: "n" }, data: {} };
  const log = pino({ level: "silent" });
  const minute = 60_000;
  const hour = 60 * minute;
  const start = Date.parse("2030-01-01T00:00:00Z");
  const seconds = (ms: number) => Math.floor(ms / 1000);
  const kindAndMs = (o: RenewalOutcome) => [o.kind, "ms" in o ? o.ms : undefined];
  const rawJwt = (payload: string) => `e30.${Buffer.from(payload).toString("base64url")}.sig`;

  /**
   * An app cluster answering each TokenRequest with token(seconds asked, the local time), and a
   * control plane counting Secret writes.
   */
  function clusters(token: (asked: number, now: number) => string) {
    const c = { now: start, asked: [] as number[], writes: 0, app: {} as KubeClient, control: {} as KubeClient };
    c.app = {
      request: async (_method: string, _path: string, options: { body: { spec: { expirationSeconds: number } } }) => {
        const asked = options.body.spec.expirationSeconds;
        c.asked.push(asked);
        return { status: { token: token(asked, c.now), expirationTimestamp: "2100-01-01T00:00:00Z" } };
      },
      setBearerToken: () => {},
    } as unknown as KubeClient;
    c.control = {
      update: async (_ref: unknown, obj: unknown) => {
        c.writes++;
        return obj;
      },
    } as unknown as KubeClient;
    return c;
  }

  /** renewIfDue called again whenever it says (as the controller does) for spanMs from start: its outcomes. */
  async function run(
    c: ReturnType<typeof clusters>,
    times: { issuedAt: number; expires: number },
    spanMs: number,
    fraction = 0.8,
  ) {
    let access = { account, times };
    let text = kubeconfigText;
    const outcomes = [];
    for (c.now = start; c.now < start + spanMs && outcomes.length < 50; ) {
      const outcome = await renewIfDue(
        c.control,
        c.app,
        { secret, key: "kubeconfig", text },
        access,
        { fraction, log },
        c.now,
      );
      outcomes.push(outcome);
      if (outcome.kind === "expired") break;
      if (outcome.kind === "renewed") ({ access, text } = outcome);
      c.now += Math.max(outcome.ms, 100);
    }
    return outcomes;
  }

  it("issued at the epoch by its own word: renewed once, then at the share of the lifetime asked for", async () => {
    const c = clusters(() => rawJwt(`{"iat":0,"exp":${seconds(start) + 365 * 86_400}}`));
    const outcomes = await run(c, { issuedAt: 0, expires: start + 365 * 86_400_000 }, hour);
    assert.equal(c.writes, 1);
    // no more than a year asked for, and the next renewal planned from the local time of issue
    assert.deepEqual(c.asked, [366 * 86_400]);
    const first = outcomes[0];
    assert.ok(first?.kind === "renewed" && first.ms === 0.8 * 366 * 86_400_000, JSON.stringify(first));
  });

  it("an app cluster clock 50 minutes behind: its hour-long tokens are renewed every 48 minutes, not at once", async () => {
    const c = clusters((asked, now) => {
      const iat = seconds(now) - 3000;
      return rawJwt(`{"iat":${iat},"exp":${iat + asked}}`);
    });
    const outcomes = await run(c, { issuedAt: start - 50 * minute, expires: start + 10 * minute }, 2 * hour);
    assert.deepEqual(outcomes.map(kindAndMs), [
      ["renewed", 48 * minute],
      ["renewed", 48 * minute],
      ["renewed", 48 * minute],
    ]);
    assert.equal(c.writes, 3);
  });

  it("a token that says it lives a second: not stored, and asked for again later", async () => {
    const c = clusters((_asked, now) => rawJwt(`{"iat":${seconds(now)},"exp":${seconds(now) + 1}}`));
    const outcomes = await run(c, { issuedAt: start - hour, expires: start + 15 * minute }, minute);
    assert.equal(c.writes, 0);
    assert.deepEqual(outcomes.map(kindAndMs), [
      ["failed", 30_000],
      ["failed", 30_000],
    ]);
    const first = outcomes[0];
    assert.match(
      first?.kind === "failed" ? first.message : "",
      /issued a token of 1 s, less than any TokenRequest may/,
    );
  });

  it("a token whose times say nothing usable lives as long as asked for", async () => {
    for (const payload of ["{}", `{"iat":2000,"exp":1000}`, `{"iat":0,"exp":1e400}`, `{"iat":"0","exp":"9"}`]) {
      const c = clusters(() => rawJwt(payload));
      const outcomes = await run(c, { issuedAt: start - 50 * minute, expires: start + 10 * minute }, minute);
      assert.equal(c.writes, 1, `${payload} ${JSON.stringify(outcomes)}`);
      assert.deepEqual(c.asked, [3600]);
      const first = outcomes[0];
      assert.ok(first?.kind === "renewed");
      assert.deepEqual(first.access.times, { issuedAt: start, expires: start + hour }, payload);
    }
  });

  it("renews a 600 s token at 1 % of it, and otherwise no sooner than a minute after the last renewal", async () => {
    const c = clusters((asked, now) => rawJwt(`{"iat":${seconds(now)},"exp":${seconds(now) + asked}}`));
    const outcomes = await run(c, { issuedAt: start - 599_000, expires: start + 1000 }, 20_000, 0.01);
    assert.deepEqual(c.asked, [600, 600, 600, 600]);
    assert.deepEqual(outcomes.map(kindAndMs), [
      ["renewed", 6000],
      ["renewed", 6000],
      ["renewed", 6000],
      ["renewed", 6000],
    ]);
    const kubeconfig = { secret, key: "kubeconfig", text: kubeconfigText };
    const due = { account, times: { issuedAt: start - hour, expires: start + minute } };
    const options = { fraction: 0.8, lastRenewal: start - 10_000, log };
    assert.deepEqual(await renewIfDue(c.control, c.app, kubeconfig, due, options, start), { kind: "wait", ms: 50_000 });
  });
});

describe("token renewal asks for a token only at a path the client checked", () => {
  const secret = { apiVersion: "v1", kind: "Secret", metadata: { name: "s", namespace: "n" }, data: {} };
  const now = Date.parse("2030-01-01T00:00:00Z");
  const times = { issuedAt: now - 3_600_000, expires: now + 600_000 };
  const recording = () => {
    const paths: string[] = [];
    const app = {
      request: async (method: string, path: string) => {
        paths.push(`${method} ${path}`);
        return { status: { token: jwt({ iat: 1, exp: 86_401 }), expirationTimestamp: "2100-01-01T00:00:00Z" } };
      },
      setBearerToken: () => {},
    } as unknown as KubeClient;
    const control = { update: async (_ref: unknown, obj: unknown) => obj } as unknown as KubeClient;
    return { paths, app, control };
  };
  const renew = async (claims: Record<string, unknown>) => {
    const c = recording();
    const tokenOf = tokenAccount(jwt(claims));
    assert.ok(tokenOf, JSON.stringify(claims));
    const text = accountKubeconfig({ server: "https://app.example" }, tokenOf, "old-token");
    const outcome = await renewIfDue(
      c.control,
      c.app,
      { secret, key: "kubeconfig", text },
      { account: tokenOf, times },
      { fraction: 0.8, log: pino({ level: "silent" }) },
      now,
    );
    return { outcome, paths: c.paths };
  };
  const sa = (namespace: string, name: string) => ({ "kubernetes.io": { namespace, serviceaccount: { name } } });

  it("takes a real account's names", async () => {
    const { outcome, paths } = await renew(sa("klutch-bind", "orders-1a2b3c4d"));
    assert.equal(outcome.kind, "renewed");
    assert.deepEqual(paths, ["POST /api/v1/namespaces/klutch-bind/serviceaccounts/orders-1a2b3c4d/token"]);
  });

  const crafted: Array<[string, Record<string, unknown>]> = [
    ["a namespace of ..", sa("..", "orders")],
    ["a namespace with a /", sa("klutch-bind/../kube-system", "orders")],
    ["a name of ..", sa("klutch-bind", "..")],
    ["a name with a /", sa("klutch-bind", "x/../../../apis/rbac.authorization.k8s.io/v1/clusterroles")],
    ["a name with a %", sa("klutch-bind", "x%2F..")],
    ["a subject of ..", { sub: "system:serviceaccount:..:orders" }],
    ["a subject with a /", { sub: "system:serviceaccount:kube-system:a/b" }],
  ];
  for (const [what, claims] of crafted) {
    it(`makes no request for a token whose claims name ${what}`, async () => {
      const { outcome, paths } = await renew(claims);
      assert.deepEqual(paths, []);
      assert.equal(outcome.kind, "failed");
      assert.match(outcome.kind === "failed" ? outcome.message : "", /is not a (namespace|name)/);
    });
  }
});
