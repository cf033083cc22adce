// One tenant's hanging app clusters hold no more than its share of the binding workers: another
// namespace's binding is served meanwhile.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pino } from "pino";
import { kubeconfigSecretMarks } from "../../src/api/kubeconfig-secret.ts";
import { refs } from "../../src/api/resources.ts";
import { conditionOf } from "../../src/kube/conditions.ts";
import { startSync } from "../../src/sync/manager.ts";
import { freshCluster, onFileDone, testNamespace } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";
import { startHostileServer } from "../support/hostile-cluster.ts";
import { syncEnv } from "../support/sync-env.ts";

describe("binding workers shared between tenants", () => {
  it("serves another namespace's binding while one namespace's app clusters hang", async () => {
    // a control plane of its own: this sync watches every namespace
    const control = await freshCluster("fair-control");
    const env = await syncEnv({ control, inProcess: false });
    const hanging = await startHostileServer("hang");
    onFileDone(() => hanging.stop());
    const hostile = Array.from({ length: 6 }, (_, i) => `hangs-${i}`);
    for (const name of hostile) await env.bindWith(name, hanging.kubeconfig);

    const other = await testNamespace(control, "tenant-b");
    await env.template([], other);
    const sync = await startSync({
      control: env.controlClient,
      // the test's app clusters listen on 127.0.0.1
      allowLoopbackAppServers: true,
      logger: pino({ level: process.env.KLB_TEST_LOG ?? "silent" }),
      workers: 2,
      bindingWorkers: 4,
      bindingWorkersPerNamespace: 2,
      resyncMs: 1000,
      templateNamespaces: [env.bindingNamespace, other],
      // every look at a hanging cluster holds a worker this long
      appClientOptions: { timeoutMs: 60_000 },
    });
    onFileDone(() => sync.stop());
    // the hanging tenant's bindings hold workers now (their first reconciles wait on /version)
    await eventually("the hanging clusters asked", async () => assert.ok(hanging.requests >= 2));

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
    await env.controlClient.create(refs.bindings, {
      apiVersion: "bind.klutch.dev/v1alpha1",
      kind: "AppClusterBinding",
      metadata: { name: "healthy", namespace: other },
      spec: {
        kubeconfigSecretRef: { name: "healthy-kubeconfig" },
        exports: [{ group: env.ref.group, resource: env.ref.resource }],
      },
    });
    // without a share per namespace all four workers wait on the hanging clusters for a minute; and
    // the healthy binding waits for none of them to say which cluster it is (cluster-owners.ts)
    await eventually(
      "the other namespace's binding Ready",
      async () => {
        const read = await env.controlClient.get(refs.bindings, "healthy", other);
        assert.equal(conditionOf(read, "Ready")?.status, "True", JSON.stringify(read?.status));
      },
      20_000,
    );
    assert.ok(hanging.requests <= 2, `${hanging.requests} requests to the hanging clusters at once`);
  });
});
