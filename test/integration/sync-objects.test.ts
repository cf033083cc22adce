// The sync on two real API servers: binding, consumer API, spec up, status down, deletion,
// adoption, no needless writes.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { finalizer, labels, providerNamespace } from "../../src/api/naming.ts";
import { refs } from "../../src/api/resources.ts";
import type { KubeObject } from "../../src/kube/client.ts";
import { conditionOf } from "../../src/kube/conditions.ts";
import { uniqueSuffix } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";
import { type SyncEnv, syncEnv } from "../support/sync-env.ts";

describe("the sync of bound objects", () => {
  let env: SyncEnv;
  let binding: KubeObject;
  let bindingUid: string;

  async function appNamespace(): Promise<string> {
    const name = `app-${uniqueSuffix()}`;
    await env.appClient.create(refs.namespaces, { apiVersion: "v1", kind: "Namespace", metadata: { name } });
    return name;
  }

  function instance(namespace: string, name: string, size = "small"): KubeObject {
    return { apiVersion: env.apiVersion, kind: env.kind, metadata: { name, namespace }, spec: { size } };
  }

  async function providerCopy(appNs: string, name: string): Promise<KubeObject> {
    let copy: KubeObject | undefined;
    await eventually(`provider copy of ${appNs}/${name}`, async () => {
      copy = await env.controlClient.get(env.ref, name, providerNamespace(bindingUid, appNs));
      assert.ok(copy, "not there yet");
    });
    return copy as KubeObject;
  }

  before(async () => {
    env = await syncEnv();
    binding = await env.bind("app-one", [
      { group: "", resource: "secrets", version: "v1", selector: { owner: "Provider" } },
    ]);
    bindingUid = binding.metadata.uid ?? "";
    await eventually(
      "binding ready",
      async () => {
        const read = await env.controlClient.get(refs.bindings, "app-one", env.bindingNamespace);
        assert.equal(conditionOf(read, "Connected")?.status, "True", JSON.stringify(read?.status));
        assert.equal(conditionOf(read, "Ready")?.status, "True", JSON.stringify(read?.status));
      },
      60_000,
    );
  });

  it("installs the exported API in the app cluster and opens it to admin, edit and view", async () => {
    const crd = await env.appClient.get(refs.crds, `postgresqlinstances.${env.ref.group}`);
    type Version = { name: string; subresources?: unknown; additionalPrinterColumns?: unknown[] };
    const versions = (crd?.spec as { versions?: Version[] } | undefined)?.versions ?? [];
    assert.deepEqual(
      versions.map((v) => v.name),
      ["v1"],
    );
    assert.deepEqual(versions[0]?.subresources, { status: {} });
    assert.equal(versions[0]?.additionalPrinterColumns?.length, 1);
    await eventually("aggregated into edit", async () => {
      const edit = await env.appClient.get(refs.clusterRoles, "edit");
      const rules = (edit?.rules ?? []) as Array<{ apiGroups?: string[]; resources?: string[] }>;
      assert.ok(
        rules.some((r) => r.apiGroups?.includes(env.ref.group) && r.resources?.includes("postgresqlinstances")),
      );
    });
  });

  it("keeps the app cluster's CRD updated when the provider adds a version", async () => {
    const name = `postgresqlinstances.${env.ref.group}`;
    const providerCrd = await env.controlClient.get(refs.crds, name);
    assert.ok(providerCrd);
    const spec = providerCrd.spec as { versions: Array<Record<string, unknown>> };
    const [v1] = spec.versions;
    assert.ok(v1);
    await env.controlClient.update(refs.crds, {
      ...providerCrd,
      spec: { ...spec, versions: [v1, { ...v1, name: "v2", storage: false }] },
    });
    await eventually(
      "v2 served in the app cluster",
      async () => {
        const appCrd = await env.appClient.get(refs.crds, name);
        const versions =
          (appCrd?.spec as { versions?: Array<{ name: string; served: boolean }> } | undefined)?.versions ?? [];
        assert.deepEqual(
          versions.map((v) => `${v.name}:${v.served}`),
          ["v1:true", "v2:true"],
        );
      },
      30_000,
    );
  });

  it("copies the consumer's labels up, but none in the sync's own domain", async () => {
    const ns = await appNamespace();
    const forged = {
      team: "a",
      [labels.copyOf]: "provider",
      [labels.consumerNamespace]: "someone-else",
      "bind.klutch.dev/anything": "x",
    };
    const labelled = instance(ns, "labelled");
    await env.appClient.create(env.ref, { ...labelled, metadata: { ...labelled.metadata, labels: forged } });
    const copy = await providerCopy(ns, "labelled");
    assert.deepEqual(copy.metadata.labels, { team: "a", [labels.binding]: bindingUid });
  });

  it("copies spec up into a per-binding namespace and puts a finalizer on the consumer object", async () => {
    const ns = await appNamespace();
    await env.appClient.create(env.ref, instance(ns, "orders", "large"));
    const copy = await providerCopy(ns, "orders");
    assert.deepEqual(copy.spec, { size: "large" });
    assert.equal(copy.metadata.labels?.[labels.binding], bindingUid);
    const mapped = await env.controlClient.get(refs.namespaces, providerNamespace(bindingUid, ns));
    assert.equal(mapped?.metadata.labels?.[labels.consumerNamespace], ns);
    assert.equal(mapped?.metadata.labels?.[labels.binding], bindingUid);
    await eventually("finalizer", async () => {
      const consumer = await env.appClient.get(env.ref, "orders", ns);
      assert.ok(consumer?.metadata.finalizers?.includes(finalizer));
    });

    // a change of spec follows
    const consumer = await env.appClient.get(env.ref, "orders", ns);
    assert.ok(consumer);
    await env.appClient.update(env.ref, { ...consumer, spec: { size: "xlarge", version: "17" } });
    await eventually("spec change copied", async () => {
      const changed = await env.controlClient.get(env.ref, "orders", providerNamespace(bindingUid, ns));
      assert.deepEqual(changed?.spec, { size: "xlarge", version: "17" });
    });
  });

  it("copies status down, and writes nothing when nothing changed", async () => {
    const ns = await appNamespace();
    await env.appClient.create(env.ref, instance(ns, "billing"));
    const copy = await providerCopy(ns, "billing");
    const status = {
      endpoint: "billing.db:5432",
      conditions: [{ type: "Ready", status: "True", reason: "Available" }],
    };
    await env.controlClient.updateStatus(env.ref, { ...copy, status });
    await eventually("status down", async () => {
      const consumer = await env.appClient.get(env.ref, "billing", ns);
      assert.deepEqual(consumer?.status, status);
    });
    const consumerBefore = await env.appClient.get(env.ref, "billing", ns);
    const providerBefore = await env.controlClient.get(env.ref, "billing", providerNamespace(bindingUid, ns));
    await sleep(2500); // two resync periods of the binding controller
    const consumerAfter = await env.appClient.get(env.ref, "billing", ns);
    const providerAfter = await env.controlClient.get(env.ref, "billing", providerNamespace(bindingUid, ns));
    assert.equal(consumerAfter?.metadata.resourceVersion, consumerBefore?.metadata.resourceVersion);
    assert.equal(providerAfter?.metadata.resourceVersion, providerBefore?.metadata.resourceVersion);
  });

  it("keeps a deleted consumer object until the provider copy is really gone", async () => {
    const ns = await appNamespace();
    const pns = providerNamespace(bindingUid, ns);
    await env.appClient.create(env.ref, instance(ns, "slow"));
    const copy = await providerCopy(ns, "slow");
    // the provider takes its time: a finalizer of its own
    await env.controlClient.update(env.ref, {
      ...copy,
      metadata: { ...copy.metadata, finalizers: ["test.klutch-bind/cleanup"] },
    });
    await eventually("consumer finalizer", async () => {
      assert.ok((await env.appClient.get(env.ref, "slow", ns))?.metadata.finalizers?.includes(finalizer));
    });
    await env.appClient.delete(env.ref, "slow", ns);
    await eventually("provider copy deleting, consumer waiting with a condition", async () => {
      const provider = await env.controlClient.get(env.ref, "slow", pns);
      assert.ok(provider?.metadata.deletionTimestamp, "provider copy is being deleted");
      const consumer = await env.appClient.get(env.ref, "slow", ns);
      assert.ok(consumer?.metadata.deletionTimestamp, "consumer object still there");
      assert.equal(conditionOf(consumer, "ProviderDeleting")?.reason, "WaitingForProvider");
    });
    await sleep(500);
    assert.ok(await env.appClient.get(env.ref, "slow", ns), "still waiting for the provider");
    const held = await env.controlClient.get(env.ref, "slow", pns);
    assert.ok(held);
    await env.controlClient.update(env.ref, { ...held, metadata: { ...held.metadata, finalizers: [] } });
    await eventually("both gone", async () => {
      assert.equal(await env.controlClient.get(env.ref, "slow", pns), undefined);
      assert.equal(await env.appClient.get(env.ref, "slow", ns), undefined);
    });
  });

  it("deletes a provider copy whose consumer object is gone", async () => {
    const ns = await appNamespace();
    await env.appClient.create(env.ref, instance(ns, "orphan"));
    await providerCopy(ns, "orphan");
    const consumer = await env.appClient.get(env.ref, "orphan", ns);
    assert.ok(consumer);
    // remove the finalizer behind the sync's back, then delete: the consumer object vanishes at once
    await env.appClient.update(env.ref, { ...consumer, metadata: { ...consumer.metadata, finalizers: [] } });
    await env.appClient.delete(env.ref, "orphan", ns);
    await eventually("orphan deleted", async () => {
      assert.equal(await env.controlClient.get(env.ref, "orphan", providerNamespace(bindingUid, ns)), undefined);
    });
  });

  it("adopts an object created directly in a mapped provider namespace", async () => {
    const ns = await appNamespace();
    await env.appClient.create(env.ref, instance(ns, "first"));
    await providerCopy(ns, "first");
    const pns = providerNamespace(bindingUid, ns);
    await env.controlClient.create(env.ref, instance(pns, "made-by-provider", "medium"));
    await eventually("adopted into the app cluster", async () => {
      const adopted = await env.appClient.get(env.ref, "made-by-provider", ns);
      assert.deepEqual(adopted?.spec, { size: "medium" });
    });
    await eventually("marked as bound on the control plane", async () => {
      const provider = await env.controlClient.get(env.ref, "made-by-provider", pns);
      assert.equal(provider?.metadata.labels?.[labels.binding], bindingUid);
    });
  });

  it("reports objects bound and the last sync on the binding", async () => {
    await eventually("export status", async () => {
      const read = await env.controlClient.get(refs.bindings, "app-one", env.bindingNamespace);
      type ExportStatus = { objects?: number; lastSync?: string; version?: string };
      const exports = (read?.status as { exports?: ExportStatus[] } | undefined)?.exports;
      assert.equal(exports?.length, 1);
      // the API is this file's own: every live object of it in the app cluster is bound
      const live = (await env.appClient.list(env.ref)).items.filter((o) => o.metadata.deletionTimestamp === undefined);
      assert.ok(live.length >= 3);
      assert.equal(exports?.[0]?.objects, live.length, JSON.stringify(exports));
      assert.ok(exports?.[0]?.lastSync);
      assert.equal(exports?.[0]?.version, "v1");
    });
  });
});
