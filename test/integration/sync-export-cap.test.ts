// What one binding's list of exports can cost: a binding listing more than --max-exports-per-binding
// syncs none and says so naming the flag; the exports of a binding are looked at concurrently, so a
// cluster that answers /version and nothing else costs about one request timeout, not one per export.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pino } from "pino";
import { refs } from "../../src/api/resources.ts";
import { conditionOf } from "../../src/kube/conditions.ts";
import { BindingController } from "../../src/sync/binding/controller.ts";
import { defaultMaxExportsPerBinding } from "../../src/sync/binding/options.ts";
import { InformerRegistry } from "../../src/sync/informers.ts";
import { SyncMetrics } from "../../src/sync/metrics.ts";
import { onFileDone } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";
import { startVersionOnlyServer } from "../support/hostile-cluster.ts";
import { syncEnv } from "../support/sync-env.ts";

const requestTimeoutMs = 1000;

describe("a binding's exports", () => {
  it("are capped by --max-exports-per-binding, and looked at concurrently", async () => {
    const env = await syncEnv({ inProcess: false });
    const ns = env.bindingNamespace;
    const slow = await startVersionOnlyServer();
    onFileDone(() => slow.stop());
    const logger = pino({ level: process.env.KLB_TEST_LOG ?? "silent" });
    const controlInformers = new InformerRegistry(env.controlClient, logger);
    const controller = new BindingController({
      control: env.controlClient,
      controlInformers,
      logger,
      metrics: new SyncMetrics(),
      workers: 2,
      namespace: ns,
      resyncMs: 60_000,
      templateNamespaces: [ns],
      appClientOptions: { timeoutMs: requestTimeoutMs },
    });
    controller.start();
    onFileDone(async () => {
      await controller.stop();
      await controlInformers.stopAll();
    });
    const exports = (n: number) =>
      Array.from({ length: n }, (_, i) => ({ group: `e${i}.cap.klutch-bind.test`, resource: "widgets" }));

    // one more than the cap: nothing synced, the Ready condition names the flag
    await env.bindWith("too-many", slow.kubeconfig, { exports: exports(defaultMaxExportsPerBinding + 1) });
    await eventually("the binding says it lists too many exports", async () => {
      const read = await env.controlClient.get(refs.bindings, "too-many", ns);
      const ready = conditionOf(read, "Ready");
      assert.equal(ready?.reason, "TooManyExports", JSON.stringify(read?.status));
      assert.match(ready?.message ?? "", /lists 51 exports, more than --max-exports-per-binding \(50\)/);
    });
    assert.equal(controller.exportSyncs.length, 0);

    // 30 exports on a cluster that never answers but /version: every one reports its error within a
    // few request timeouts (one after the other, 30 of them and the probes would not fit)
    const startedAt = Date.now();
    await env.bindWith("slow", slow.kubeconfig, { exports: exports(30) });
    await eventually(
      "every export of the slow binding reports the cluster's trouble",
      async () => {
        const read = await env.controlClient.get(refs.bindings, "slow", ns);
        const listed = (read?.status as { exports?: Array<{ message?: string }> } | undefined)?.exports ?? [];
        assert.equal(listed.length, 30, JSON.stringify(read?.status));
        assert.ok(
          listed.every((e) => /app cluster/.test(e.message ?? "")),
          JSON.stringify(listed),
        );
      },
      60_000,
    );
    const tookMs = Date.now() - startedAt;
    assert.ok(tookMs < 15 * requestTimeoutMs, `30 exports looked at in ${tookMs} ms`);
  });
});
