// bench/server-view.ts: the control API server's widget writes and CPU between two /metrics texts.
import assert from "node:assert/strict";
import { it } from "node:test";
import { sampleFromMetrics, viewBetween } from "../../bench/server-view.ts";

const metrics = (postSum: number, posts: number, patchSum: number, patches: number, cpu: number) => `
# HELP apiserver_request_duration_seconds Response latency distribution
apiserver_request_duration_seconds_bucket{component="apiserver",group="b0.bench1.dev",resource="widgets",verb="POST",le="0.1"} 1
apiserver_request_duration_seconds_sum{component="apiserver",group="b0.bench1.dev",resource="widgets",scope="resource",subresource="",verb="POST",version="v1"} ${postSum}
apiserver_request_duration_seconds_count{component="apiserver",group="b0.bench1.dev",resource="widgets",scope="resource",subresource="",verb="POST",version="v1"} ${posts}
apiserver_request_duration_seconds_sum{component="apiserver",group="b0.bench1.dev",resource="widgets",scope="resource",subresource="status",verb="PATCH",version="v1"} ${patchSum}
apiserver_request_duration_seconds_count{component="apiserver",group="b0.bench1.dev",resource="widgets",scope="resource",subresource="status",verb="PATCH",version="v1"} ${patches}
apiserver_request_duration_seconds_sum{component="apiserver",group="b0.bench1.dev",resource="widgets",scope="cluster",subresource="",verb="WATCH",version="v1"} 9999
apiserver_request_duration_seconds_count{component="apiserver",group="b0.bench1.dev",resource="widgets",scope="cluster",subresource="",verb="WATCH",version="v1"} 7
apiserver_request_duration_seconds_sum{component="apiserver",group="",resource="secrets",scope="resource",subresource="",verb="POST",version="v1"} 50
apiserver_request_duration_seconds_count{component="apiserver",group="",resource="secrets",scope="resource",subresource="",verb="POST",version="v1"} 10
process_cpu_seconds_total ${cpu}
`;

it("counts only widget creates and patches, and derives their mean, how many ran at once, and the CPU", () => {
  const before = sampleFromMetrics(metrics(1, 10, 2, 10, 100), 0);
  const after = sampleFromMetrics(metrics(31, 110, 32, 110, 112), 20_000);
  assert.deepEqual(before, { writeSeconds: 3, writes: 20, cpuSeconds: 100, at: 0 });
  // 200 writes took 60 s in all over a 20 s run: 300 ms each, 3 at a time, 0.6 cores
  assert.deepEqual(viewBetween(before, after), { writes: 200, meanMs: 300, executing: 3, cores: 0.6 });
});

it("has no view of a window without writes", () => {
  const sample = sampleFromMetrics(metrics(1, 10, 2, 10, 100), 0);
  assert.equal(viewBetween(sample, { ...sample, at: 5000 }), undefined);
});
