// The sync's part of BENCHMARKS.md: the limits, the phases, steady rates, the first object, the
// scale table and the goals of issue #14, with the charts made from them.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { lineCharts } from "./charts.ts";
import { type FirstObjectTimeline, restartsText, stagesText } from "./first-object.ts";
import type { ServerView } from "./server-view.ts";
import { describeRequests, type Latency, type RequestBreakdown, type SyncMemory } from "./sync-phases.ts";

type Phase = Latency & { requestsPerObject: number };
type ColdStart = {
  objects: number;
  seconds: number;
  objectsPerSecond: number;
  ratioToRaw: number;
  ratioToMinimal?: number;
  requestsPerObject: number;
  syncCpuSeconds: number;
  syncCpuShare: number;
  peakRssMiB?: number[];
  memory?: SyncMemory[];
  /** cores the whole machine kept busy (API servers, etcd, the benchmark, the sync) */
  machineCores?: number;
  /** inside the sync over the cold start, from its histograms (see quantilesBetween) */
  queueWait?: Latency | undefined;
  reconcile?: Latency | undefined;
  apiRequests?: RequestBreakdown;
  apiRequestWait?: { app?: Latency | undefined; control?: Latency | undefined };
};
export type SteadyRow = {
  rate: number;
  seconds: number;
  objects: number;
  achievedPerSecond: number;
  specUp: Latency;
  statusDown: Latency;
  requestsPerObject: number;
  /** app creates that failed (timeouts, resets): the API servers were past their limit */
  failedCreates?: number;
  /** the benchmark's status writes on the control plane that failed likewise */
  failedStatusWrites?: number;
  /** inside the sync over the rate, from its histograms' bucket deltas (see quantilesBetween) */
  queueWait?: Latency;
  reconcile?: Latency;
  /** the sync's API requests over the rate (klutch_bind_api_request_seconds), by "cluster method" */
  apiRequests?: RequestBreakdown;
  /** their wait before sending (credentials, connection, the client's rate limit), by cluster */
  apiRequestWait?: { app?: Latency | undefined; control?: Latency | undefined };
  /** the sync's event-loop delay over the rate beyond the 10 ms sampling timer (worst replica) */
  eventLoopLagP99Ms?: number;
  eventLoopLagMaxMs?: number;
  /** the benchmark's own likewise: it timestamps the arrivals, so a busy bench inflates the latencies */
  benchEventLoopLagP99Ms?: number;
  benchEventLoopLagMaxMs?: number;
  /** cores the whole machine kept busy over the sync's run */
  machineCores?: number;
  /** the sync's CPU (every replica) over its run, per object synced both ways */
  syncCpuMsPerObject?: number;
  /** the control API server's own timing of the run's widget writes (bench/server-view.ts) */
  controlServer?: ServerView;
  /** the same run against bench/minimal-controller.ts, exactly the sync's writes: the machine's limit */
  minimal?: {
    specUp: Latency;
    statusDown: Latency;
    failedCreates: number;
    machineCores?: number;
    cpuMsPerObject?: number;
    /** its requests' times by "cluster method", and its event-loop lag (bench/minimal-controller.ts) */
    requests?: Record<string, Latency>;
    eventLoopLagP99Ms?: number;
    eventLoopLagMaxMs?: number;
    controlServer?: ServerView;
  };
};
export type SyncResult = {
  topology: {
    bindings: number;
    appClusters: number;
    namespaces: number;
    concurrency: number;
    workers: number;
    /** the environment deploy/ gives the sync container, which the bench gave it too */
    syncEnv?: Record<string, string>;
  };
  rawCreatesPerSecond: number;
  minimalWritesPerSecond?: number;
  /** cores the whole machine kept busy during the minimal writes */
  minimalWritesMachineCores?: number;
  coldStart: ColdStart;
  specUp: Phase & {
    perSecond: number;
    ratioToRaw: number;
    ratioToMinimal?: number;
    /** the bench's own creates of those objects (concurrency as above), which bound the rate */
    createSeconds?: number;
    lastCopyAfterLastCreateMs?: number;
  };
  statusDown: Phase & { perSecond: number };
  secretDown: Phase;
  steady?: SteadyRow[];
  firstObject?: {
    newBinding: number[];
    backlog?: BacklogResult;
  };
  /** where each new binding's time to its first object went (BENCH_SYNC_LOG runs only) */
  firstObjectTimeline?: FirstObjectTimeline[];
  syncPeakRssMiB: { bindingsReady: number | number[]; end: number | number[] };
  syncMemory?: { bindingsReady: SyncMemory[]; coldStart: SyncMemory[]; end: SyncMemory[] };
};
export type BacklogResult = {
  objects: number;
  firstCopyMs: number;
  drainedSeconds: number;
  liveDuringBacklog: Latency;
};
type ScaleRun = Pick<SyncResult, "topology" | "minimalWritesPerSecond" | "rawCreatesPerSecond" | "coldStart"> & {
  syncPeakRssMiB: { bindingsReady: number[]; end: number[] };
};
export type Scale = { oneReplica: ScaleRun; threeReplicas: ScaleRun | string };

const num = (n: number, digits = 0) =>
  n.toLocaleString("en", { maximumFractionDigits: digits, minimumFractionDigits: digits });
const list = (v: number | number[]) => (Array.isArray(v) ? v.join(", ") : String(v));
const max = (v: number | number[]) => (Array.isArray(v) ? Math.max(...v) : v);
const mem = (m: SyncMemory[] | undefined) =>
  m?.length
    ? m
        .map(
          (r) =>
            `RSS ${r.rssMiB} MiB = V8 heap ${r.heapUsedMiB} MiB used${r.heapTotalMiB === undefined ? "" : ` of ${r.heapTotalMiB} MiB held`} + off-heap ${r.externalMiB} MiB + code, stacks and free heap; ${r.handles.TLSSocket ?? 0} TLS sockets`,
        )
        .join("; ")
    : "-";
const goal = (met: boolean) => (met ? "met" : "**not met**");
/** the control API server's view of one run: "mean ms (writes at once)" */
const served = (v: ServerView | undefined) => (v ? `${v.meanMs} (${v.executing})` : "-");
const pair = (a: number | undefined, b: number | undefined) =>
  a === undefined || b === undefined ? "-" : `${num(a, a < 10 ? 1 : 0)} / ${num(b, b < 10 ? 1 : 0)}`;

function timelineTable(timelines: FirstObjectTimeline[] | undefined): string {
  if (!timelines?.length) return "";
  return `
Where that time went, from the sync's debug lines of each binding's start (\`BENCH_SYNC_LOG\`): the
stages in ms since the sync first saw the binding, which was the given ms after the benchmark's
create (the clocks of two processes, to the ms). Other bindings restarted: bindings whose app
client was made anew from 5 s before the create to the copy, at ms after the create (a restart
relists and reconciles every object of that binding again; the benchmark marks the kubeconfig
Secret its bindings share for each new binding, which restarts none of them as long as the
kubeconfig itself is unchanged).

| binding | seen after the create | stages, ms since seen | copy in the benchmark's watch after the create | other bindings restarted meanwhile |
|---|---|---|---|---|
${timelines.map((t) => `| ${t.binding} | ${t.seenAfterCreateMs ?? "-"} ms | ${stagesText(t)} | ${t.copySeenAfterCreateMs ?? "-"} ms | ${restartsText(t) || "none"} |`).join("\n")}
`;
}

export function syncSection(sync: SyncResult, scale: Scale | undefined, dir: string, chartsDir: string): string {
  const minimal = sync.minimalWritesPerSecond;
  const beside = minimal ? ` (minimal writes ${num(minimal)}/s)` : "";
  const rows = [
    `| raw limit (plain client creates on the control plane) | ${num(sync.rawCreatesPerSecond)} objects/s |`,
    ...(minimal
      ? [
          `| minimal-writes limit (plain client: finalizer patch on the app object, create of the copy) | ${num(minimal)} objects/s${sync.minimalWritesMachineCores === undefined ? "" : `; the machine busy ${sync.minimalWritesMachineCores} cores`} |`,
        ]
      : []),
    `| cold start: ${num(sync.coldStart.objects)} objects made while the sync was down | converged in ${sync.coldStart.seconds} s: ${num(sync.coldStart.objectsPerSecond)} objects/s, ${sync.coldStart.ratioToMinimal ?? "-"}× the minimal-writes limit${beside}, ${sync.coldStart.ratioToRaw}× the raw limit; ${sync.coldStart.requestsPerObject} requests per object; the sync used ${sync.coldStart.syncCpuSeconds} s of CPU, ${sync.coldStart.syncCpuShare} of one core${sync.coldStart.machineCores === undefined ? "" : `; the machine busy ${sync.coldStart.machineCores} cores`}${sync.coldStart.apiRequests ? `; in the sync: queue wait ${pair(sync.coldStart.queueWait?.p50ms, sync.coldStart.queueWait?.p99ms)} ms, reconcile ${pair(sync.coldStart.reconcile?.p50ms, sync.coldStart.reconcile?.p99ms)} ms (p50 / p99); its API requests: ${describeRequests(sync.coldStart.apiRequests)}; waited before sending (credentials, rate limit, a free connection) p99: app ${sync.coldStart.apiRequestWait?.app?.p99ms ?? "-"} ms, control ${sync.coldStart.apiRequestWait?.control?.p99ms ?? "-"} ms` : ""} |`,
    `| spec up while running (${num(sync.specUp.n)} objects) | ${num(sync.specUp.perSecond)} objects/s, ${sync.specUp.ratioToMinimal ?? "-"}× the minimal-writes limit${beside}; p50 ${num(sync.specUp.p50ms)} ms, p99 ${num(sync.specUp.p99ms)} ms; ${sync.specUp.requestsPerObject} requests per object${sync.specUp.createSeconds === undefined ? "" : `; the creates themselves took ${sync.specUp.createSeconds} s (${num(Math.round(sync.specUp.n / Math.max(0.1, sync.specUp.createSeconds)))}/s), which bound this rate: the last copy came ${num(sync.specUp.lastCopyAfterLastCreateMs ?? 0)} ms after the last create`} |`,
    `| status storm (${num(sync.statusDown.n)} provider status writes at once) | ${num(sync.statusDown.perSecond)} objects/s; p50 ${num(sync.statusDown.p50ms)} ms, p99 ${num(sync.statusDown.p99ms)} ms; ${sync.statusDown.requestsPerObject} requests per object |`,
    `| claimed secrets down (${num(sync.secretDown.n)}) | p50 ${num(sync.secretDown.p50ms)} ms, p99 ${num(sync.secretDown.p99ms)} ms; ${sync.secretDown.requestsPerObject} requests per secret |`,
    `| the sync's peak resident memory | ${list(sync.syncPeakRssMiB.bindingsReady)} MiB with the bindings ready and no objects; ${list(sync.syncPeakRssMiB.end)} MiB after the cold start and every phase |`,
  ];
  const steady = sync.steady ?? [];
  const steadySeconds = steady[0]
    ? Math.round((steady[0].objects + (steady[0].failedCreates ?? 0)) / steady[0].rate)
    : "-";
  const steadyTable = steady.length
    ? `### Steady rates

Objects created in the app clusters at a fixed rate (open loop) for ${steadySeconds} s each; as
each copy arrives on the control plane the benchmark writes its status there, and the status comes
down. Spec up: the create in the app cluster to the copy in a watch on the control plane; status
down: the status write to its arrival in a watch on the app cluster. The sync is saturated where the
achieved rate falls behind the offered one; the minimal-writes limit${beside} is the most a plain
client makes of the same writes. Failed creates are app creates the API server did not answer
(timeouts, connections reset): past that point the machine, not the sync, is the limit.

The machine's limit for latency: at each rate, after the sync's run, the same run (same rate, same
seconds, same measurement) against a minimal controller (\`bench/minimal-controller.ts\`), a plain
client making exactly the sync's writes for an API no binding exports, in the first app cluster: on
each new app object the finalizer patch and the create of its copy, on each status written on a copy
the status patch of the app object; no cache, at most ${sync.topology.workers} writes in flight. What the sync's latency
holds beyond the minimal controller's is the sync's own.

Where an object's time goes: the sync's own histograms over each rate give the time a key waited in
its work queue and the time of one reconcile (its writes included), over every key of every
binding, both directions; their p50 and p99 are interpolated within the histogram buckets, so only
as exact as those. Event-loop lag is the delay beyond a 10 ms sampling timer over the rate, p99 /
max, in the sync (prom-client's, reset at each scrape) and in the benchmark, which timestamps the
creates and arrivals itself. What a latency holds beyond queue wait and reconcile is the API
servers' watch delivery (to the sync, then to the benchmark) and the machine's other load. The
control API server's own timing of the run's widget writes (creates and status patches, from its
\`apiserver_request_duration_seconds\`) gives their mean and, by Little's law, how many it was
serving at once: a queue inside the API server rather than in the sync.

![steady rates](${chartsDir}/sync-steady.svg)

| offered objects/s | achieved objects/s | failed creates / status writes | spec up p50 ms | spec up p99 ms | status down p50 ms | status down p99 ms | minimal controller: spec up p50 / p99 ms | minimal controller: status down p50 / p99 ms | requests per object (spec and status) | minimal-writes limit | in the sync: queue wait p50 / p99 ms | in the sync: reconcile p50 / p99 ms | the sync's event loop lag p99 / max ms | the benchmark's event loop lag p99 / max ms | the machine busy: sync run / minimal controller run, cores | CPU per object: sync / minimal controller, ms | control API server, its own timing of a widget write: mean ms and writes at once, sync run / minimal controller run |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|
${steady.map((r) => `| ${r.rate} | ${num(r.achievedPerSecond)} | ${num(r.failedCreates ?? 0)} / ${num(r.failedStatusWrites ?? 0)} | ${r.specUp.p50ms} | ${r.specUp.p99ms} | ${r.statusDown.p50ms} | ${r.statusDown.p99ms} | ${pair(r.minimal?.specUp.p50ms, r.minimal?.specUp.p99ms)}${r.minimal?.failedCreates ? ` (${num(r.minimal.failedCreates)} creates failed)` : ""} | ${pair(r.minimal?.statusDown.p50ms, r.minimal?.statusDown.p99ms)} | ${r.requestsPerObject} | ${minimal ? num(minimal) : "-"} | ${pair(r.queueWait?.p50ms, r.queueWait?.p99ms)} | ${pair(r.reconcile?.p50ms, r.reconcile?.p99ms)} | ${pair(r.eventLoopLagP99Ms, r.eventLoopLagMaxMs)} | ${pair(r.benchEventLoopLagP99Ms, r.benchEventLoopLagMaxMs)} | ${pair(r.machineCores, r.minimal?.machineCores)} | ${pair(r.syncCpuMsPerObject, r.minimal?.cpuMsPerObject)} | ${served(r.controlServer)} / ${served(r.minimal?.controlServer)} |`).join("\n")}
${
  steady.some((r) => r.apiRequests)
    ? `
The sync's API requests at each rate (its histogram \`klutch_bind_api_request_seconds\`, from sending a
request to its answer's last byte; count, p50 / p99, and the answers that were not 2xx), and how
long they waited before being sent (credentials, connections, the client's rate limit):

| offered objects/s | requests by cluster and method | waited before sending: app / control p99 ms |
|---|---|---|
${steady.map((r) => `| ${r.rate} | ${describeRequests(r.apiRequests)} | ${pair(r.apiRequestWait?.app?.p99ms, r.apiRequestWait?.control?.p99ms)} |`).join("\n")}
`
    : ""
}`
    : "";
  if (steady.length) {
    writeFileSync(
      join(dir, chartsDir, "sync-steady.svg"),
      lineCharts(
        "Sync: latency at steady rates",
        "milliseconds",
        "objects created per second",
        (["specUp", "statusDown"] as const).map((side) => ({
          title: side === "specUp" ? "spec up" : "status down",
          categories: steady.map((r) => String(r.rate)),
          series: [
            { name: "p50", values: steady.map((r) => r[side].p50ms) },
            { name: "p99", values: steady.map((r) => r[side].p99ms) },
            ...(steady.some((r) => r.minimal)
              ? [
                  { name: "minimal controller p50", values: steady.map((r) => r.minimal?.[side].p50ms) },
                  { name: "minimal controller p99", values: steady.map((r) => r.minimal?.[side].p99ms) },
                ]
              : []),
          ],
        })),
      ),
    );
  }
  const first = sync.firstObject;
  const firstTable = first
    ? `### The first object of a new binding

| case | result |
|---|---|
| a new binding, its API already in the app cluster and one object waiting there | first copy ${first.newBinding.join(", ")} ms after the binding was created |
${
  first.backlog
    ? `| a new binding on an app cluster holding ${num(first.backlog.objects)} objects an earlier binding let go of | first copy ${num(first.backlog.firstCopyMs)} ms after the binding was created; all adopted in ${first.backlog.drainedSeconds} s; ${first.backlog.liveDuringBacklog.n} objects created meanwhile: p50 ${first.backlog.liveDuringBacklog.p50ms} ms, p99 ${first.backlog.liveDuringBacklog.p99ms} ms to their copies |
`
    : ""
}${timelineTable(sync.firstObjectTimeline)}`
    : "";
  let scaleTable = "";
  if (scale) {
    const three = typeof scale.threeReplicas === "string" ? undefined : scale.threeReplicas;
    const t = scale.oneReplica.topology;
    const cell = (r: ScaleRun | undefined, f: (r: ScaleRun) => string) => (r ? f(r) : String(scale.threeReplicas));
    const line = (what: string, f: (r: ScaleRun) => string) =>
      `| ${what} | ${f(scale.oneReplica)} | ${cell(three, f)} |`;
    scaleTable = `### Scale: ${t.bindings} bindings over ${t.appClusters} app clusters, ${num(scale.oneReplica.coldStart.objects / t.bindings)} objects each

Cold start only: every object made while no sync runs, then one sync process, or three started
together with \`--shards auto\` sharing the bindings.

| | 1 replica | 3 replicas |
|---|---|---|
${[
  line("cold start to converged", (r) => `${r.coldStart.seconds} s`),
  line("throughput", (r) => `${num(r.coldStart.objectsPerSecond)} objects/s`),
  line("minimal-writes limit (same run)", (r) => `${num(r.minimalWritesPerSecond ?? 0)} objects/s`),
  line("ratio to the limit", (r) => `${r.coldStart.ratioToMinimal ?? "-"}×`),
  line("requests per object (all replicas)", (r) => String(r.coldStart.requestsPerObject)),
  line("peak memory per replica", (r) => `${r.coldStart.peakRssMiB?.join(", ") ?? "-"} MiB`),
  line("CPU (all replicas)", (r) => `${r.coldStart.syncCpuSeconds} s`),
].join("\n")}
`;
  }
  const endRss = max(sync.syncPeakRssMiB.end);
  // the goal is about that many objects: the peak right after the cold start (the later phases add
  // about three times as many objects again)
  const coldRss = sync.coldStart.peakRssMiB === undefined ? endRss : max(sync.coldStart.peakRssMiB);
  const p99Upto150 = steady.filter((r) => r.rate <= 150);
  const goals = `### Goals (issue #14)

| goal | measured | |
|---|---|---|
| resident memory at most 200 MiB with ${num(sync.coldStart.objects)} bound objects and ${sync.topology.bindings} bindings | peak ${coldRss} MiB after the cold start (${num(sync.coldStart.objects)} objects): ${mem(sync.syncMemory?.coldStart)}; ${endRss} MiB at the end of every phase, holding several times as many objects | ${goal(coldRss <= 200)} |
| at most 2 API requests per object synced (spec up) | ${sync.specUp.requestsPerObject} while running, ${sync.coldStart.requestsPerObject} over the cold start (its lists and watches included) | ${goal(sync.specUp.requestsPerObject <= 2)} |
| throughput at least 0.8× the minimal-writes limit | cold start ${sync.coldStart.ratioToMinimal ?? "-"}×, spec up ${sync.specUp.ratioToMinimal ?? "-"}× | ${goal((sync.coldStart.ratioToMinimal ?? 0) >= 0.8)} |
| p99 at most 100 ms up to 150 objects/s | ${p99Upto150.map((r) => `${r.rate}/s: spec up ${r.specUp.p99ms} ms, status down ${r.statusDown.p99ms} ms${r.queueWait && r.reconcile ? ` (in the sync: queue wait ${r.queueWait.p99ms} ms, reconcile ${r.reconcile.p99ms} ms)` : ""}${r.minimal ? `, minimal controller (the machine's limit): spec up ${r.minimal.specUp.p99ms} ms, status down ${r.minimal.statusDown.p99ms} ms` : ""}`).join("; ") || "-"} | ${goal(p99Upto150.length > 0 && p99Upto150.every((r) => r.specUp.p99ms <= 100 && r.statusDown.p99ms <= 100))} |
| first object of a new binding under 1 s, other objects never in the way | ${first ? `${Math.max(...first.newBinding)} ms alone${first.backlog ? `; ${first.backlog.firstCopyMs} ms behind ${num(first.backlog.objects)} objects, new ones meanwhile p99 ${first.backlog.liveDuringBacklog.p99ms} ms` : ""}` : "-"} | ${goal(first !== undefined && Math.max(...first.newBinding, first.backlog?.firstCopyMs ?? 0, first.backlog?.liveDuringBacklog.p99ms ?? 0) < 1000)} |

Where the memory goes, from the sync's own metrics (process, V8 heap, off-heap buffers, open TLS
sockets): with the bindings ready and no objects, ${mem(sync.syncMemory?.bindingsReady)}; after the cold start,
${mem(sync.syncMemory?.coldStart)}.
`;
  return `## The sync sidecar

Method: real API servers (\`make dev-clusters\`, kube-apiserver with embedded etcd):
one control plane and ${sync.topology.appClusters} app cluster(s), all on the same machine as the
sync and the benchmark. ${sync.topology.bindings} bindings, each binding its own exported API (a
CRD with status) and claiming the provider's secrets, spread over the app clusters; objects spread
over ${sync.topology.namespaces} app namespaces. The sync runs as \`klutch-bind sync\` in a process of
its own with ${sync.topology.workers} workers${
    sync.topology.syncEnv && Object.keys(sync.topology.syncEnv).length > 0
      ? ` and the environment deploy/ gives its container (${Object.entries(sync.topology.syncEnv)
          .map(([k, v]) => `\`${k}=${v}\``)
          .join(", ")})`
      : ""
  }; its requests come from its metrics
(\`klutch_bind_api_requests_total\`), its CPU time and memory from /proc and its metrics. Writes go at concurrency
${sync.topology.concurrency}. Two limits are measured in the same run at the same concurrency: the raw limit, a plain
client loop creating the same kind of object on the control plane; and the minimal-writes limit, a
plain client making exactly the writes one bound object needs (the finalizer patch on the app object,
the create of its copy on the control plane), on an API no binding exports.

| measure | result |
|---|---|
${rows.join("\n")}

Latency is measured from the write on one side to its arrival in a watch on the other. Requests
per object are the sync's own, to all clusters. The API servers and etcd share the machine's cores
with everything else: the sync's own CPU share shows whether it or the API servers are the bottleneck.

${steadyTable}
${firstTable}
${scaleTable}
${goals}`;
}
