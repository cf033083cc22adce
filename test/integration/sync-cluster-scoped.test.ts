// A cluster-scoped exported API: provider copies get a per-binding name prefix, so two bindings'
// objects of the same name never meet on the control plane.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  annotations,
  bindingPrefix,
  labels,
  providerClusterScopedName,
  providerNamespace,
} from "../../src/api/naming.ts";
import type { KubeObject } from "../../src/kube/client.ts";
import { uniqueSuffix } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";
import { type SyncEnv, syncEnv } from "../support/sync-env.ts";

describe("a cluster-scoped export", () => {
  it("copies spec up under a per-binding prefix, status down, and deletes through it", async () => {
    const env = await syncEnv({ scope: "Cluster" });
    // (a second binding of the same app cluster and API is refused: sync-ownership.test.ts)
    const first = await env.bind("cluster-one", []);
    await env.ready("cluster-one");
    const name = `shared-${uniqueSuffix()}`;
    await env.appClient.create(env.ref, {
      apiVersion: env.apiVersion,
      kind: env.kind,
      metadata: { name },
      spec: { size: "m" },
    });
    const copyOf = (uid: string) => `${bindingPrefix(uid)}-${name}`;
    await eventually("a copy under the binding's prefix", async () => {
      const copy = await env.controlClient.get(env.ref, copyOf(first.metadata.uid ?? ""));
      assert.deepEqual(copy?.spec, { size: "m" });
      assert.equal(copy?.metadata.labels?.[labels.binding], first.metadata.uid);
    });
    const copy = await env.controlClient.get(env.ref, copyOf(first.metadata.uid ?? ""));
    assert.ok(copy);
    await env.controlClient.updateStatus(env.ref, { ...copy, status: { endpoint: "cluster-wide" } });
    await eventually("status down", async () => {
      const consumer = await env.appClient.get(env.ref, name);
      assert.equal((consumer?.status as { endpoint?: string } | undefined)?.endpoint, "cluster-wide");
    });
    await env.appClient.delete(env.ref, name);
    await eventually("all gone", async () => {
      assert.equal(await env.appClient.get(env.ref, name), undefined);
      assert.equal(await env.controlClient.get(env.ref, copyOf(first.metadata.uid ?? "")), undefined);
    });
  });
});

/**
 * Gives the copy a status and waits until it reached the consumer object: the sync reconciled
 * that object again after its copy was made (a reconcile that rewrote or re-created the copy
 * has then run too). Resolves with the copy's resourceVersion after that status write.
 */
async function reconciledAfterStatus(
  env: SyncEnv,
  copy: KubeObject | undefined,
  name: string,
  namespace?: string,
): Promise<string | undefined> {
  assert.ok(copy);
  const endpoint = `marker-${uniqueSuffix()}`;
  const marked = await env.controlClient.updateStatus(env.ref, { ...copy, status: { endpoint } });
  await eventually("the copy's status reached the consumer", async () => {
    const consumer = await env.appClient.get(env.ref, name, namespace);
    assert.equal((consumer?.status as { endpoint?: string } | undefined)?.endpoint, endpoint);
  });
  return marked.metadata.resourceVersion;
}

describe("names at the length limit", () => {
  // 253 characters, a valid DNS subdomain: four labels of 62 and one of 1
  const longName = (seed: string) =>
    `${seed}${"x".repeat(62 - seed.length)}.${"y".repeat(62)}.${"z".repeat(62)}.${"w".repeat(62)}.v`;

  it("a cluster-scoped object of 253 characters round-trips without a create-then-delete loop", async () => {
    const env = await syncEnv({ scope: "Cluster" });
    const binding = await env.bind("long-names", []);
    await env.ready("long-names");
    const name = longName(`l${uniqueSuffix()}`);
    assert.equal(name.length, 253);
    await env.appClient.create(env.ref, {
      apiVersion: env.apiVersion,
      kind: env.kind,
      metadata: { name },
      spec: { size: "l" },
    });
    const copyName = providerClusterScopedName(binding.metadata.uid ?? "", name);
    assert.notEqual(copyName, `${bindingPrefix(binding.metadata.uid ?? "")}-${name}`, "the copy's name is shortened");
    let copy: KubeObject | undefined;
    await eventually("copied", async () => {
      copy = await env.controlClient.get(env.ref, copyName);
      assert.equal(copy?.metadata.annotations?.[annotations.consumerName], name);
    });
    const marked = await reconciledAfterStatus(env, copy, name);
    const later = await env.controlClient.get(env.ref, copyName);
    assert.equal(later?.metadata.uid, copy?.metadata.uid, "the same copy, never deleted and re-created");
    assert.equal(later?.metadata.resourceVersion, marked, "and not written again but for the test's status");
    await env.appClient.delete(env.ref, name);
    await eventually("gone with its consumer", async () =>
      assert.equal(await env.controlClient.get(env.ref, copyName), undefined),
    );
  });

  it("a namespaced object of 253 characters in a namespace of 63 keeps one copy", async () => {
    const env = await syncEnv();
    const binding = await env.bind("long-namespaced", []);
    await env.ready("long-namespaced");
    const ns = `n${uniqueSuffix()}`.padEnd(63, "n");
    const name = longName(`m${uniqueSuffix()}`);
    await env.appObject(ns, name);
    const where = providerNamespace(binding.metadata.uid ?? "", ns);
    let copy: KubeObject | undefined;
    await eventually("copied", async () => {
      copy = await env.controlClient.get(env.ref, name, where);
      assert.equal(copy?.metadata.annotations?.[annotations.consumerNamespace], ns);
    });
    const marked = await reconciledAfterStatus(env, copy, name, ns);
    const later = await env.controlClient.get(env.ref, name, where);
    assert.equal(later?.metadata.uid, copy?.metadata.uid);
    assert.equal(later?.metadata.resourceVersion, marked);
  });
});
