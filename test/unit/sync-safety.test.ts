// The sync's refusals to delete or overwrite without proof, as pure verdicts: a transfer resumed
// only when the claim makes it and the control plane shows it, one provider namespace per app
// namespace, and the sync's own identity asked again after a failure.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  annotations,
  bindingPrefix,
  earlierProviderNamespace,
  providerClusterScopedName,
  providerNamespace,
} from "../../src/api/naming.ts";
import { parseClaims } from "../../src/export/claims.ts";
import { boundedName } from "../../src/export/names.ts";
import type { PermissionClaim } from "../../src/export/types.ts";
import type { KubeClient, KubeObject } from "../../src/kube/client.ts";
import { decideOwnership } from "../../src/sync/mirror/claim-ownership.ts";
import { ProviderAccess } from "../../src/sync/tenants/provider-access.ts";

function claim(extra: Record<string, unknown> = {}, selector: Record<string, unknown> = {}): PermissionClaim {
  const [parsed] = parseClaims([{ resource: "secrets", version: "v1", selector, ...extra }], "claims");
  assert.ok(parsed);
  return parsed;
}

function secret(meta: Partial<KubeObject["metadata"]>): KubeObject {
  return { apiVersion: "v1", kind: "Secret", metadata: { name: "db-conn", namespace: "n", ...meta }, type: "Opaque" };
}

const theirs = (obj: KubeObject) => ({ obj, ours: false });

describe("a transfer cut short is resumed only with proof", () => {
  // the provider's Secret, and the tenant's former copy of it: our labels stripped, transferred-from forged
  const provider = secret({ uid: "p-uid" });
  const forged = secret({ uid: "t-uid", annotations: { [annotations.transferredFrom]: "p-uid" } });

  it("a forged transferred-from on the app cluster hands no provider object to the consumer", () => {
    for (const [what, c] of [
      ["no owner", claim()],
      ["owner Provider with autoAdopt", claim({ autoAdopt: true }, { owner: "Provider" })],
      ["owner Provider", claim({}, { owner: "Provider" })],
    ] as const) {
      const verdict = decideOwnership(c, theirs(provider), theirs(forged));
      assert.notEqual(verdict.action, "transfer", `${what}: ${JSON.stringify(verdict)}`);
    }
    // a donating claim, but the provider's object was never marked for donation
    const donates = claim({ autoDonate: true });
    assert.deepEqual(decideOwnership(donates, theirs(provider), theirs(forged)), {
      action: "conflict",
      owner: undefined,
    });
  });

  it("a donation the claim makes and the control plane marked is finished", () => {
    const marked = secret({ uid: "p-uid", annotations: { [annotations.transferringTo]: "Consumer" } });
    assert.deepEqual(decideOwnership(claim({ autoDonate: true }), theirs(marked), theirs(forged)), {
      action: "transfer",
      owner: "Consumer",
    });
    // the mark alone is not enough once the claim no longer donates
    assert.notEqual(decideOwnership(claim(), theirs(marked), theirs(forged)).action, "transfer");
  });

  it("an adoption is resumed only while the claim adopts", () => {
    const made = secret({ uid: "p-uid", annotations: { [annotations.transferredFrom]: "c-uid" } });
    const from = secret({ uid: "c-uid" });
    const adopts = claim({ autoAdopt: true }, { owner: "Provider" });
    assert.deepEqual(decideOwnership(adopts, theirs(made), theirs(from)), { action: "transfer", owner: "Provider" });
    assert.notEqual(decideOwnership(claim({}, { owner: "Provider" }), theirs(made), theirs(from)).action, "transfer");
  });
});

describe("one provider namespace per app namespace", () => {
  const uid = "binding-uid";
  const prefix = bindingPrefix(uid);
  const dnsLabel = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

  it("an app namespace named like a shortened one does not share its provider namespace (the audit's example)", () => {
    const long = `orders-${"x".repeat(50)}`;
    // the name the earlier mapping gave the long namespace, less its prefix: a valid app namespace of 48 characters
    const crafted = earlierProviderNamespace(uid, long).slice(prefix.length + 1);
    assert.equal(crafted.length, 48);
    assert.match(crafted, dnsLabel);
    assert.equal(earlierProviderNamespace(uid, crafted), earlierProviderNamespace(uid, long), "the earlier collision");
    assert.notEqual(providerNamespace(uid, crafted), providerNamespace(uid, long));
  });

  it("keeps the names of app namespaces of up to 48 characters; shortens longer ones where none of those can be", () => {
    for (const ns of ["team-orders", "a", "x".repeat(48), `ci-${"1".repeat(10)}`]) {
      assert.equal(providerNamespace(uid, ns), `${prefix}-${ns}`);
      assert.equal(providerNamespace(uid, ns), earlierProviderNamespace(uid, ns), "unchanged for existing installs");
    }
    for (const ns of ["x".repeat(49), `${"a".repeat(30)}${"-".repeat(20)}b`, "y".repeat(63)]) {
      const mapped = providerNamespace(uid, ns);
      assert.ok(mapped.length <= 63, mapped);
      assert.match(mapped, dnsLabel);
      assert.ok(mapped.startsWith(`${prefix}--`), `${mapped}: no app namespace starts with a hyphen`);
      assert.notEqual(mapped, providerNamespace(uid, `${ns.slice(0, -1)}z`));
    }
  });

  it("the earlier mapping is the one boundedName made", () => {
    for (const ns of ["team-orders", "x".repeat(49), "y".repeat(63)]) {
      assert.equal(earlierProviderNamespace(uid, ns), boundedName(`${prefix}-${ns}`, 63));
    }
  });

  it("cluster-scoped names: a shortened one never equals an unshortened one", () => {
    const long = "n".repeat(250);
    const shortened = providerClusterScopedName(uid, long);
    assert.ok(shortened.length <= 253 && shortened.startsWith(`${prefix}--`));
    assert.equal(providerClusterScopedName(uid, "shared"), `${prefix}-shared`);
  });
});

describe("the sync's identity on the control plane", () => {
  /** A control plane answering SelfSubjectReviews from answers, one each, recording the RoleBindings applied. */
  function controlPlane(answers: Array<() => Promise<unknown>>) {
    const applied: KubeObject[] = [];
    const client = {
      request: async () => {
        const next = answers.shift();
        assert.ok(next, "asked more often than expected");
        return next();
      },
      apply: async (_ref: unknown, obj: KubeObject) => {
        applied.push(obj);
        return obj;
      },
      // a tenant's view of the client (KubeClient.forTenant): the same fake
      forTenant: () => client,
    } as unknown as KubeClient;
    return { access: new ProviderAccess(client), applied };
  }
  const binding = { uid: "u", name: "b", namespace: "bindings" };

  it("asks again after a failed SelfSubjectReview instead of failing for good", async () => {
    const { access, applied } = controlPlane([
      () => Promise.reject(new Error("429 Too Many Requests")),
      () => Promise.resolve({ status: { userInfo: { username: "system:serviceaccount:sys:sync" } } }),
    ]);
    await assert.rejects(access.ensureClaimsAccess(binding, "pns", "exp", "role", new Set()), /429/);
    await access.ensureClaimsAccess(binding, "pns", "exp", "role", new Set());
    assert.deepEqual((applied[0] as { subjects?: unknown }).subjects, [
      { kind: "ServiceAccount", name: "sync", namespace: "sys" },
    ]);
  });

  it("refuses an empty username, naming the field", async () => {
    const { access, applied } = controlPlane([
      () => Promise.resolve({ status: { userInfo: { username: "" } } }),
      () => Promise.resolve({ status: {} }),
    ]);
    for (let i = 0; i < 2; i++) {
      await assert.rejects(
        access.ensureClaimsAccess(binding, "pns", "exp", "role", new Set()),
        /status\.userInfo\.username/,
      );
    }
    assert.equal(applied.length, 0);
  });
});
