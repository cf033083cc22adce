// The sync through API server outages, each on a cluster of this file's own: the control plane's
// API server restarted after etcd was compacted, an app API server gone for a minute. Both wait on
// the clock (the outage, the sync's reconnect backoff) rather than on the machine, so this file runs
// with the concurrent group; the faults that race the machine (SIGKILLs, leader hand-over, two
// writers) are in sync-faults.test.ts.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { providerNamespace } from "../../src/api/naming.ts";
import { refs } from "../../src/api/resources.ts";
import type { KubeObject } from "../../src/kube/client.ts";
import { conditionOf } from "../../src/kube/conditions.ts";
import { startCluster, stopCluster } from "../support/cluster.ts";
import { freshCluster, uniqueSuffix } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";
import { syncEnv } from "../support/sync-env.ts";

/** Compacts etcd at its current revision: every older resourceVersion is gone for good. */
async function compactEtcd(etcd: string): Promise<number> {
  const post = async (path: string, body: unknown) => {
    const res = await fetch(`${etcd}${path}`, { method: "POST", body: JSON.stringify(body) });
    const text = await res.text();
    assert.equal(res.status, 200, `${path}: ${text}`);
    return JSON.parse(text) as { header: { revision: string } };
  };
  const { header } = await post("/v3/kv/range", { key: Buffer.from("/").toString("base64") });
  await post("/v3/kv/compaction", { revision: header.revision, physical: true });
  return Number(header.revision);
}

describe("the sync through API server outages", () => {
  it("loses nothing when the control plane's API server restarts after etcd was compacted", async () => {
    // Without the watch cache, watches are served by etcd, so after compaction no watch can resume
    // from an older resourceVersion: the informers must relist. (The informer's own 410 path, a
    // watch answered 410 Gone, is tested in kube-client.test.ts.)
    const apiserverArgs = ["--watch-cache=false"];
    const control = await freshCluster("restart-control", { apiserverArgs });
    const env = await syncEnv({ control });
    const binding = await env.bind("restart", [
      { group: "", resource: "secrets", version: "v1", selector: { owner: "Provider" } },
    ]);
    const uid = binding.metadata.uid ?? "";
    const ready = async () => {
      const read = await env.controlClient.get(refs.bindings, "restart", env.bindingNamespace);
      assert.equal(conditionOf(read, "Ready")?.status, "True", JSON.stringify(read?.status));
    };
    await eventually("ready", ready, 60_000);
    const ns = `restart-${uniqueSuffix()}`;
    const pns = providerNamespace(uid, ns);
    await env.appClient.create(refs.namespaces, { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } });
    const widget = (name: string): KubeObject => ({
      apiVersion: env.apiVersion,
      kind: env.kind,
      metadata: { name, namespace: ns },
      spec: { size: name },
    });
    await env.appClient.create(env.ref, widget("before"));
    await eventually("synced before the restart", async () =>
      assert.ok(await env.controlClient.get(env.ref, "before", pns)),
    );

    await compactEtcd(control.etcd);
    await stopCluster(control.dir, { removeData: false, holdPorts: true });
    await env.appClient.create(env.ref, widget("during")); // the app team keeps working
    await startCluster(control.name, control.dir, { apiserverArgs });

    await eventually(
      "the object made during the outage reaches the control plane",
      async () => {
        assert.ok(await env.controlClient.get(env.ref, "during", pns));
      },
      90_000,
    );
    const before = await env.controlClient.get(env.ref, "before", pns);
    assert.ok(before);
    await env.controlClient.updateStatus(env.ref, { ...before, status: { endpoint: "after-restart" } });
    await env.controlClient.create(refs.secrets, {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "creds", namespace: pns },
      stringData: { k: "v" },
    });
    await eventually(
      "status and secret down after the restart",
      async () => {
        const consumer = await env.appClient.get(env.ref, "before", ns);
        assert.equal((consumer?.status as { endpoint?: string } | undefined)?.endpoint, "after-restart");
        assert.ok(await env.appClient.get(refs.secrets, "creds", ns));
      },
      60_000,
    );
    await eventually("ready again", ready, 60_000);
  });

  it("reports an app API server that stops for a minute, then converges, with what changed meanwhile", async () => {
    const app = await freshCluster("outage-app");
    const env = await syncEnv({ app });
    const binding = await env.bind("outage", []);
    const uid = binding.metadata.uid ?? "";
    const ready = async (status: string) => {
      const read = await env.controlClient.get(refs.bindings, "outage", env.bindingNamespace);
      assert.equal(conditionOf(read, "Connected")?.status, status, JSON.stringify(read?.status));
    };
    await eventually("connected", () => ready("True"), 60_000);
    const before = `before-${uniqueSuffix()}`;
    await env.appObject(before, "db", "s");
    const pns = providerNamespace(uid, before);
    await eventually("provider copy", async () => assert.ok(await env.controlClient.get(env.ref, "db", pns)));

    await stopCluster(app.dir, { removeData: false, holdPorts: true });
    const stoppedAt = Date.now();
    await eventually("Connected=False while the app cluster is away", () => ready("False"), 20_000);
    const read = await env.controlClient.get(refs.bindings, "outage", env.bindingNamespace);
    assert.equal(conditionOf(read, "Connected")?.reason, "Unreachable");
    // the provider reports while the app cluster is away
    const copy = await env.controlClient.get(env.ref, "db", pns);
    assert.ok(copy);
    await env.controlClient.updateStatus(env.ref, { ...copy, status: { endpoint: "during-outage" } });
    await sleep(Math.max(0, 60_000 - (Date.now() - stoppedAt)));
    await startCluster(app.name, app.dir);
    await eventually("Connected=True again", () => ready("True"), 60_000);

    await eventually(
      "the status written during the outage arrives",
      async () => {
        const consumer = await env.appClient.get(env.ref, "db", before);
        assert.deepEqual(consumer?.status, { endpoint: "during-outage" });
      },
      60_000,
    );
    const ns = `after-${uniqueSuffix()}`;
    await env.appObject(ns, "late", "s");
    await eventually(
      "synced after the outage",
      async () => {
        assert.ok(await env.controlClient.get(env.ref, "late", providerNamespace(uid, ns)));
      },
      60_000,
    );
  });
});
