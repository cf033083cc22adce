// A binding's app cluster service account: its names, its roles from the exports and accepted
// claims, the token's times and the kubeconfig around it (pure parts of issue #13 point 4).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pino } from "pino";
import { parse } from "yaml";
import type { PermissionClaim } from "../../src/export/types.ts";
import type { KubeClient } from "../../src/kube/client.ts";
import {
  accountFor,
  accountKubeconfig,
  accountObjects,
  kubeconfigToken,
  renewalTime,
  tokenAccount,
  tokenTimes,
  withToken,
} from "../../src/sync/app-account.ts";
import { appRbac, claimsRoleBinding, claimsRules, mainRules } from "../../src/sync/app-rbac.ts";
import { renewIfDue } from "../../src/sync/token-renewal.ts";

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
