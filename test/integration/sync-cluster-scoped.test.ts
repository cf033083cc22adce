// A cluster-scoped exported API: provider copies get a per-binding name prefix, so two bindings'
// objects of the same name never meet on the control plane.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { bindingPrefix, labels } from "../../src/sync/naming.ts";
import { uniqueSuffix } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";
import { syncEnv } from "../support/sync-env.ts";

describe("a cluster-scoped export", () => {
  it("copies spec up under a per-binding prefix, status down, and deletes through it", async () => {
    const env = await syncEnv({ scope: "Cluster" });
    const first = await env.bind("cluster-one", []);
    const second = await env.bind("cluster-two", []);
    for (const name of ["cluster-one", "cluster-two"]) {
      await env.ready(name);
    }
    const name = `shared-${uniqueSuffix()}`;
    await env.appClient.create(env.ref, {
      apiVersion: env.apiVersion,
      kind: env.kind,
      metadata: { name },
      spec: { size: "m" },
    });
    const copyOf = (uid: string) => `${bindingPrefix(uid)}-${name}`;
    await eventually("one copy per binding, each under its prefix", async () => {
      for (const binding of [first, second]) {
        const copy = await env.controlClient.get(env.ref, copyOf(binding.metadata.uid ?? ""));
        assert.deepEqual(copy?.spec, { size: "m" });
        assert.equal(copy?.metadata.labels?.[labels.binding], binding.metadata.uid);
      }
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
      for (const binding of [first, second])
        assert.equal(await env.controlClient.get(env.ref, copyOf(binding.metadata.uid ?? "")), undefined);
    });
  });
});
