// serveMetrics (src/sync/metrics.ts): the /metrics endpoint the sync and the konnector both serve,
// its gauges set afresh at each scrape, every other path 404, gone after stop().
import assert from "node:assert/strict";
import { it } from "node:test";
import { SyncMetrics, serveMetrics } from "../../src/sync/metrics.ts";

it("serves the registry at /metrics, setting its gauges before each scrape, until stopped", async () => {
  const metrics = new SyncMetrics();
  let scrapes = 0;
  const server = await serveMetrics("127.0.0.1:0", metrics, () => {
    scrapes++;
    metrics.queueDepth.reset();
    metrics.queueDepth.set({ binding: "ns/b", export: `scrape${scrapes}.example.org` }, scrapes);
  });
  const url = `http://127.0.0.1:${server.port}`;
  try {
    const first = await fetch(`${url}/metrics`);
    assert.equal(first.status, 200);
    assert.equal(first.headers.get("content-type"), metrics.registry.contentType);
    assert.match(await first.text(), /^klutch_bind_queue_depth\{binding="ns\/b",export="scrape1.example.org"\} 1$/m);
    const second = await (await fetch(`${url}/metrics`)).text();
    assert.match(second, /^klutch_bind_queue_depth\{binding="ns\/b",export="scrape2.example.org"\} 2$/m);
    assert.doesNotMatch(second, /scrape1/, "a label set the last scrape did not set is gone");
    const other = await fetch(`${url}/healthz`);
    assert.equal(other.status, 404);
    await other.arrayBuffer();
    assert.equal(scrapes, 2, "only /metrics sets the gauges");
  } finally {
    await server.stop();
  }
  await assert.rejects(fetch(`${url}/metrics`));
});

it("needs nothing set before a scrape", async () => {
  const metrics = new SyncMetrics();
  metrics.reconciledBinding({ namespace: "ns", name: "b" });
  const server = await serveMetrics("127.0.0.1:0", metrics);
  try {
    const text = await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text();
    assert.match(text, /^klutch_bind_binding_reconciles_total\{binding="ns\/b"\} 1$/m);
  } finally {
    await server.stop();
  }
});
