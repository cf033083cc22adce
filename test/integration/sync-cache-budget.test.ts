// An app cluster that sends endless objects fills its own namespace's share of the caches, never
// the process: its binding says so, and another namespace's binding is served meanwhile.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pino } from "pino";
import { kubeconfigSecretMarks } from "../../src/api/kubeconfig-secret.ts";
import { providerNamespace } from "../../src/api/naming.ts";
import { refs } from "../../src/api/resources.ts";
import { conditionOf } from "../../src/kube/conditions.ts";
import { startSync } from "../../src/sync/manager.ts";
import { freshCluster, onFileDone, testNamespace, uniqueSuffix } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";
import { startLoopingServer } from "../support/hostile-cluster.ts";
import { syncEnv } from "../support/sync-env.ts";

describe("app cluster caches bounded per namespace", () => {
  it("an endless stream of objects fills one namespace's share; another namespace is served", async () => {
    // a control plane of its own: this sync watches every namespace
    const control = await freshCluster("budget-control");
    const env = await syncEnv({ control, inProcess: false });
    const flood = await startLoopingServer("endless-objects", env.ref.resource);
    onFileDone(() => flood.stop());
    await env.bindWith("flooded", flood.kubeconfig);

    const other = await testNamespace(control, "tenant-b");
    await env.template([], other);
    const limit = 300;
    const sync = await startSync({
      control: env.controlClient,
      // the test's app clusters listen on 127.0.0.1
      allowLoopbackAppServers: true,
      logger: pino({ level: process.env.KLB_TEST_LOG ?? "silent" }),
      workers: 4,
      resyncMs: 1000,
      templateNamespaces: [env.bindingNamespace, other],
      appCacheLimits: { maxObjects: limit, maxBytes: 64 * 1024 * 1024 },
    });
    onFileDone(() => sync.stop());

    await eventually(
      "the flooded binding says its share is full",
      async () => {
        const read = await env.controlClient.get(refs.bindings, "flooded", env.bindingNamespace);
        const connected = conditionOf(read, "Connected");
        assert.equal(connected?.status, "False", JSON.stringify(read?.status));
        assert.match(connected?.message ?? "", new RegExp(`more than the limit of ${limit} objects`));
        assert.match(connected?.message ?? "", /--app-cache-objects-per-namespace/);
      },
      30_000,
    );
    assert.ok(flood.sent > 2 * limit, `the server sent ${flood.sent} objects`);

    await env.controlClient.create(refs.secrets, {
      apiVersion: "v1",
      kind: "Secret",
      metadata: {
        name: "healthy-kubeconfig",
        namespace: other,
        ...kubeconfigSecretMarks({ group: refs.bindings.group, namespace: other, name: "healthy" }),
      },
      data: { kubeconfig: Buffer.from(env.appKubeconfig).toString("base64") },
    });
    const healthy = await env.controlClient.create(refs.bindings, {
      apiVersion: "bind.klutch.dev/v1alpha1",
      kind: "AppClusterBinding",
      metadata: { name: "healthy", namespace: other },
      spec: {
        kubeconfigSecretRef: { name: "healthy-kubeconfig" },
        exports: [{ group: env.ref.group, resource: env.ref.resource }],
      },
    });
    await eventually(
      "the other namespace's binding Ready",
      async () => {
        const read = await env.controlClient.get(refs.bindings, "healthy", other);
        assert.equal(conditionOf(read, "Ready")?.status, "True", JSON.stringify(read?.status));
      },
      30_000,
    );
    const ns = `budget-${uniqueSuffix()}`;
    await env.appObject(ns, "db");
    await eventually("its object copied up", async () =>
      assert.ok(await env.controlClient.get(env.ref, "db", providerNamespace(healthy.metadata.uid ?? "", ns))),
    );
    // the flood's copies on the control plane are at most its share
    const copies = (await env.controlClient.list(env.ref)).items.filter((o) => o.metadata.name.startsWith("flood-"));
    assert.ok(copies.length <= limit, `${copies.length} copies of the flood`);
  });
});
