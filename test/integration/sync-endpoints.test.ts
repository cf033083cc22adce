// The sync's Prometheus metrics and health endpoints.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pino } from "pino";
import { KubeClient } from "../../src/kube/client.ts";
import { startSync } from "../../src/sync/manager.ts";
import { clientConfig, onFileDone, testClusters } from "../support/clusters.ts";
import { applyCrds } from "../support/manifests.ts";

describe("sync endpoints", () => {
  it("serves /metrics, /healthz and /readyz", async () => {
    const { control } = await testClusters();
    // the CRDs the sync lists, as deploy/ installs them (it is not ready before it has listed them)
    for (const crd of ["apiserviceexporttemplate", "appclusterbinding", "klutch-appclusterbinding"]) {
      await applyCrds(control, `deploy/control-plane/${crd}-crd.yaml`);
    }
    const client = KubeClient.fromConfig(clientConfig(control));
    const sync = await startSync({
      control: client,
      // the test's app clusters listen on 127.0.0.1
      allowLoopbackAppServers: true,
      logger: pino({ level: "silent" }),
      workers: 2,
      namespace: "no-bindings-here",
      metricsAddress: "127.0.0.1:0",
      healthAddress: "127.0.0.1:0",
    });
    onFileDone(async () => {
      await sync.stop();
      client.close();
    });
    const metrics = await fetch(`http://127.0.0.1:${sync.ports.metrics}/metrics`);
    assert.equal(metrics.status, 200);
    const text = await metrics.text();
    for (const name of [
      "klutch_bind_objects_synced_total",
      "klutch_bind_sync_errors_total",
      "klutch_bind_reconcile_seconds",
      "klutch_bind_queue_depth",
      "klutch_bind_queue_wait_seconds",
      "klutch_bind_api_request_seconds",
      "process_resident_memory_bytes",
    ]) {
      assert.match(text, new RegExp(`# HELP ${name} `), name);
    }
    // its first lists of the control plane (under way as it starts): counted once sent, timed once answered
    const counted = /klutch_bind_api_requests_total\{cluster="control"\} (\d+)/;
    const timedGets = /klutch_bind_api_request_seconds_count\{cluster="control",method="GET",code="\d+"\} (\d+)/;
    let scraped = text;
    for (let i = 0; i < 100 && !(Number(counted.exec(scraped)?.[1]) > 0 && timedGets.test(scraped)); i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      scraped = await (await fetch(`http://127.0.0.1:${sync.ports.metrics}/metrics`)).text();
    }
    assert.ok(Number(counted.exec(scraped)?.[1]) > 0, `control-plane requests counted: ${counted.exec(scraped)?.[1]}`);
    assert.ok(Number(timedGets.exec(scraped)?.[1]) > 0, "control-plane requests timed");
    assert.match(scraped, /klutch_bind_api_request_wait_seconds_count\{cluster="control"\} [1-9]/);
    assert.match(text, /klutch_bind_api_requests_total\{cluster="app"\} 0/);
    assert.equal((await fetch(`http://127.0.0.1:${sync.ports.health}/healthz`)).status, 200);
    assert.equal((await fetch(`http://127.0.0.1:${sync.ports.health}/readyz`)).status, 200);
    assert.equal((await fetch(`http://127.0.0.1:${sync.ports.health}/nope`)).status, 404);
  });
});
