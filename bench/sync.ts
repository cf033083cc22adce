// bench/sync: the sync sidecar between real API servers at scale, beside two limits measured in the
// same run at the same concurrency: the raw create rate of a plain client loop on the control plane,
// and the minimal writes of one bound object (finalizer patch on the app object, create of its copy)
// by a plain client. B bindings over A app clusters, each binding its own exported API; objects
// spread over NS app namespaces.
//   make dev-clusters CLUSTERS="control app app2 app3" && node bench/sync.ts [--objects 10000] [--stream 1000]
//     [--namespaces 100] [--bindings 20] [--app-clusters 2] [--storm 1000] [--secrets 500]
//     [--concurrency 20] [--rates 20,50,100,150,200] [--rate-seconds 60] [--backlog 5000]
//     [--replicas 1] [--phases all|cold] [--out FILE]
// Phases: cold start (objects created while the sync is down, then the time to converge), spec up
// while running (latency per object), a status storm, claimed secrets down, steady rates (spec up
// and status down; each rate also against bench/minimal-controller.ts, the machine's limit; 20/s is
// below where a 2-core machine saturates, 50/s at it), the first object of a new binding (alone,
// and behind a backlog of objects an earlier binding left).
// --phases cold runs the cold start only (the scale table); --replicas N runs N sync processes
// with --shards auto.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { createWriteStream, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { parseAllDocuments } from "yaml";
import { bindingKey } from "../src/api/binding-spec.ts";
import { kubeconfigForAnnotation, kubeconfigSecretLabels, markOf } from "../src/api/kubeconfig-secret.ts";
import { annotations, finalizer, providerNamespace } from "../src/api/naming.ts";
import { refs } from "../src/api/resources.ts";
import { KubeClient, type KubeObject, type ResourceRef } from "../src/kube/client.ts";
import { conditionOf, isEstablished } from "../src/kube/conditions.ts";
import { widgetCrd } from "../test/fixtures/crds.ts";
import { describeTimeline, type FirstObjectTimeline, firstObjectTimeline, stageLines } from "./first-object.ts";
import type { BacklogResult, SteadyRow } from "./report-sync.ts";
import { type ServerSample, type ServerView, serverSampler, viewBetween } from "./server-view.ts";
import { cpuSample, machineCoresBusy, machineCpu } from "./support.ts";
import {
  atRate,
  bucketsFromMetrics,
  describeRequests,
  eventLoopFromMetrics,
  inParallel as inParallelAt,
  type Latency,
  loopDelayMs,
  loopResolutionMs,
  memoryFromMetrics,
  minimalWrites,
  quantilesBetween,
  requestHistograms,
  requestsBetween,
  type SyncMemory,
  stats,
  until,
  watchArrivals,
} from "./sync-phases.ts";

const { values } = parseArgs({
  options: {
    objects: { type: "string", default: "1000" },
    stream: { type: "string", default: "1000" },
    namespaces: { type: "string", default: "10" },
    bindings: { type: "string", default: "2" },
    "app-clusters": { type: "string", default: "1" },
    storm: { type: "string", default: "1000" },
    secrets: { type: "string", default: "200" },
    concurrency: { type: "string", default: "20" },
    workers: { type: "string", default: "16" },
    rates: { type: "string", default: "20,50,100,150,200" },
    "rate-seconds": { type: "string", default: "60" },
    backlog: { type: "string", default: "5000" },
    replicas: { type: "string", default: "1" },
    phases: { type: "string", default: "all" },
    out: { type: "string" },
  },
});
const n = (name: keyof typeof values) => {
  const v = Number(values[name]);
  if (!Number.isInteger(v) || v < 0) throw new Error(`--${name} must be a whole number, got ${values[name]}`);
  return v;
};
const objects = n("objects");
const stream = n("stream");
const namespaceCount = n("namespaces");
const bindingCount = n("bindings");
const clusterCount = n("app-clusters");
const storm = n("storm");
const secretCount = n("secrets");
const concurrency = n("concurrency");
const workers = n("workers");
const rates = String(values.rates)
  .split(",")
  .filter((r) => r !== "")
  .map(Number);
const rateSeconds = n("rate-seconds");
const backlog = n("backlog");
const replicas = Math.max(1, n("replicas"));
const everyPhase = values.phases !== "cold";

const dev = join(import.meta.dirname, "..", ".dev");
const kubeconfigText = (name: string) => {
  try {
    return readFileSync(join(dev, `${name}.kubeconfig`), "utf8");
  } catch {
    throw new Error(`no .dev/${name}.kubeconfig: run make dev-clusters CLUSTERS="control app app2 app3"`);
  }
};
const appNames = Array.from({ length: clusterCount }, (_, i) => (i === 0 ? "app" : `app${i + 1}`));
const control = KubeClient.fromKubeconfigText(kubeconfigText("control"));
const apps = appNames.map((name) => KubeClient.fromKubeconfigText(kubeconfigText(name)));
const run = Math.random().toString(36).slice(2, 8);
const ns = `bench-${run}`;
const say = (text: string) => console.error(`[bench] ${text}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const inParallel = <T>(items: T[], fn: (item: T) => Promise<unknown>) => inParallelAt(concurrency, items, fn);

// --- topology: one exported API per binding; binding b on app cluster b % A; namespace j in binding j % B
type Binding = { name: string; ref: ResourceRef; app: KubeClient; uid: string; namespaces: string[] };
const bindings: Binding[] = Array.from({ length: bindingCount }, (_, b) => ({
  name: `b${b}`,
  ref: { group: `b${b}.bench${run}.klutch-bind.dev`, version: "v1", resource: "widgets", namespaced: true },
  app: apps[b % clusterCount] as KubeClient,
  uid: "",
  namespaces: [],
}));
const appNamespaces = Array.from({ length: namespaceCount }, (_, j) => {
  const binding = bindings[j % bindingCount] as Binding;
  const name = `${ns}-n${j}`;
  binding.namespaces.push(name);
  return { name, binding };
});
const widget = (name: string, namespace: string, group: string, size: number): KubeObject => ({
  apiVersion: `${group}/v1`,
  kind: "Widget",
  metadata: { name, namespace },
  spec: { size },
});
/** object k of a phase: its namespace (round robin) and name */
const place = (prefix: string, k: number) => {
  const target = appNamespaces[k % namespaceCount] as (typeof appNamespaces)[number];
  return { name: `${prefix}-${k}`, namespace: target.name, binding: target.binding };
};

say(`${bindingCount} bindings over ${clusterCount} app cluster(s), ${namespaceCount} namespaces; setting up`);
// our own CRDs, as deploy/control-plane has them (a fresh dev cluster has none)
for (const file of [
  "apiserviceexporttemplate-crd.yaml",
  "appclusterbinding-crd.yaml",
  "klutch-appclusterbinding-crd.yaml",
]) {
  for (const doc of parseAllDocuments(
    readFileSync(join(import.meta.dirname, "..", "deploy/control-plane", file), "utf8"),
  )) {
    const crd = doc.toJS() as KubeObject | null;
    if (crd === null) continue;
    await control.apply(refs.crds, crd, "bench", true);
    await until(`CRD ${crd.metadata.name} established`, async () =>
      isEstablished(await control.get(refs.crds, crd.metadata.name)),
    );
  }
}
await control.apply(refs.namespaces, { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } }, "bench", true);
for (const [i, app] of apps.entries()) {
  await control.apply(
    refs.secrets,
    {
      apiVersion: "v1",
      kind: "Secret",
      // the sync uses a Secret only for the bindings it names
      metadata: {
        name: appNames[i] as string,
        namespace: ns,
        labels: { ...kubeconfigSecretLabels },
        annotations: {
          [kubeconfigForAnnotation]: bindings
            .filter((b) => b.app === app)
            .map((b) => markOf({ group: refs.bindings.group, namespace: ns, name: b.name }))
            .join(","),
        },
      },
      stringData: { kubeconfig: kubeconfigText(appNames[i] as string) },
    },
    "bench",
    true,
  );
  for (const target of appNamespaces.filter((t) => t.binding.app === app)) {
    await app.apply(
      refs.namespaces,
      { apiVersion: "v1", kind: "Namespace", metadata: { name: target.name } },
      "bench",
      true,
    );
  }
}
await Promise.all(
  bindings.map(async (b) => {
    await control.apply(refs.crds, widgetCrd(b.ref.group), "bench", true);
    await until(`CRD widgets.${b.ref.group} established`, async () =>
      isEstablished(await control.get(refs.crds, `widgets.${b.ref.group}`)),
    );
  }),
);
for (const b of bindings) {
  await control.apply(
    refs.templates,
    {
      apiVersion: "example-backend.klutch.anynines.com/v1alpha1",
      kind: "APIServiceExportTemplate",
      metadata: { name: `widgets-${b.name}`, namespace: ns },
      spec: {
        APIServiceSelector: { group: b.ref.group, resource: "widgets", version: "v1" },
        permissionClaims: [{ group: "", resource: "secrets", version: "v1", selector: { owner: "Provider" } }],
      },
    },
    "bench",
    true,
  );
}

// the sync runs as in production, in processes of its own (one, or --replicas sharing the bindings
// with --shards auto): requests are read from their metrics, CPU time and memory from /proc
const shardsSupported = !/Unknown option '--shards'/.test(
  spawnSync(
    process.execPath,
    [join(import.meta.dirname, "..", "src/cli/main.ts"), "sync", "--shards", "auto", "--leader-elect"],
    {
      encoding: "utf8",
      timeout: 30_000,
    },
  ).stderr,
);
if (replicas > 1 && !shardsSupported) throw new Error(`--replicas ${replicas} needs klutch-bind sync --shards auto`);
// as in the image: the compiled dist/ (make bench builds it); BENCH_SYNC_ENTRY=src/cli/main.ts runs the
// sources (Node strips their types, which costs the process about 17 MiB)
const syncEntry = join(import.meta.dirname, "..", process.env.BENCH_SYNC_ENTRY ?? "dist/cli/main.js");
if (!existsSync(syncEntry)) throw new Error(`no ${syncEntry}: run make build (or set BENCH_SYNC_ENTRY)`);
// the bench's app clusters listen on 127.0.0.1; syncs built before the flag existed allow them anyway
const loopbackFlag = /Unknown option '--allow-loopback-app-servers'/.test(
  spawnSync(process.execPath, [syncEntry, "sync", "--allow-loopback-app-servers", "--shards", "none"], {
    encoding: "utf8",
    timeout: 30_000,
  }).stderr,
)
  ? []
  : ["--allow-loopback-app-servers"];
// BENCH_SYNC_LOG=FILE: every line the sync logs, with --debug, in FILE (every replica, every start);
// the first object's timeline is read from it
const syncLogPath = process.env.BENCH_SYNC_LOG || undefined;
const syncLog = syncLogPath === undefined ? undefined : createWriteStream(syncLogPath);
// BENCH_HEAP_SNAPSHOT=DIR: a V8 heap snapshot of every replica in DIR right after the cold start
// (where the memory goes; read it with bench/heap-summary.ts or Chromium's DevTools)
const heapSnapshotDir = process.env.BENCH_HEAP_SNAPSHOT || undefined;
// BENCH_SYNC_NODE_ARGS: more node flags for every replica (say --cpu-prof --cpu-prof-dir=DIR);
// BENCH_SYNC_ARGS: more `klutch-bind sync` flags (say --heap-growth 0), for A/B runs
// and with the environment deploy/ gives the sync container (its memory settings)
const deployedSyncEnv = (() => {
  const manifest = parseAllDocuments(
    readFileSync(join(import.meta.dirname, "..", "deploy/control-plane/runtime-config.yaml"), "utf8"),
  )[0]?.toJS() as {
    spec?: { deploymentTemplate?: { spec?: { template?: { spec?: { containers?: unknown[] } } } } };
  } | null;
  const containers = (manifest?.spec?.deploymentTemplate?.spec?.template?.spec?.containers ?? []) as Array<{
    name?: string;
    env?: Array<{ name?: string; value?: string }>;
  }>;
  const env = containers.find((c) => c.name === "sync")?.env ?? [];
  return Object.fromEntries(env.flatMap((e) => (e.name && e.value !== undefined ? [[e.name, e.value]] : [])));
})();
type Replica = { child: ChildProcess; pid: number; metrics: () => Promise<string> };
type SyncProcess = {
  pids: number[];
  /** the metrics of every replica, one after another */
  scrape: () => Promise<string>;
  requests: () => Promise<number>;
  memory: () => Promise<SyncMemory[]>;
  /** a heap snapshot of every replica (BENCH_HEAP_SNAPSHOT); done when each answers again */
  heapSnapshot: () => Promise<void>;
  stop: () => Promise<void>;
};
async function startReplica(): Promise<Replica> {
  const child = spawn(
    process.execPath,
    [
      ...(process.env.BENCH_SYNC_NODE_ARGS ?? "").split(" ").filter((a) => a !== ""),
      ...(heapSnapshotDir ? ["--heapsnapshot-signal=SIGUSR2", `--diagnostic-dir=${heapSnapshotDir}`] : []),
      syncEntry,
      "sync",
      "--kubeconfig",
      join(dev, "control.kubeconfig"),
      "-n",
      ns,
      "--workers",
      String(workers),
      "--metrics-address",
      "127.0.0.1:0",
      "--health-address",
      "",
      "--no-auto-export",
      ...loopbackFlag,
      ...(process.env.BENCH_SYNC_ARGS ?? "").split(" ").filter((a) => a !== ""),
      ...(syncLog ? ["--debug"] : []),
      ...(replicas > 1 ? ["--shards", "auto", "--leader-election-namespace", ns] : []),
    ],
    { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, ...deployedSyncEnv } },
  );
  // a failed phase ends this script: its syncs stop with it rather than run on unseen
  process.once("exit", () => child.kill("SIGTERM"));
  const metricsPort = await new Promise<number>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`the sync exited with ${code} before it started`)));
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      syncLog?.write(`${line}\n`);
      const entry = JSON.parse(line) as { msg?: string; metrics?: number; level?: number };
      if (entry.msg === "sync started" && entry.metrics) resolve(entry.metrics);
      if ((entry.level ?? 0) >= 40) console.error(`[sync] ${line}`); // warnings and errors stay visible
    });
  });
  return {
    child,
    pid: child.pid as number,
    metrics: async () => (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text(),
  };
}
/** bench/minimal-controller.ts for group's widgets between the first app cluster and the control plane (steady rates) */
type MinimalStats = {
  requests: Record<string, Latency>;
  eventLoopLagP99Ms: number;
  eventLoopLagMaxMs: number;
};
async function startMinimalController(
  group: string,
): Promise<{ pid: number; stats: () => Promise<MinimalStats>; stop: () => Promise<void> }> {
  const child = spawn(
    process.execPath,
    [
      join(import.meta.dirname, "minimal-controller.ts"),
      join(dev, "control.kubeconfig"),
      join(dev, `${appNames[0]}.kubeconfig`),
      group,
      ns,
      String(workers),
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  process.once("exit", () => child.kill("SIGTERM"));
  const statsWaiting: Array<(stats: MinimalStats) => void> = [];
  await new Promise<void>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`the minimal controller exited with ${code} before it was ready`)));
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      if (line === "ready") resolve();
      if (line.startsWith("stats ")) statsWaiting.shift()?.(JSON.parse(line.slice("stats ".length)) as MinimalStats);
    });
  });
  return {
    pid: child.pid as number,
    /** its request times and event-loop lag since the last call */
    stats: () =>
      new Promise<MinimalStats>((resolve, reject) => {
        if (child.exitCode !== null || child.signalCode !== null) {
          reject(new Error("the minimal controller has exited"));
          return;
        }
        statsWaiting.push(resolve);
        child.kill("SIGUSR2");
      }),
    stop: async () => {
      child.kill("SIGTERM");
      await once(child, "exit");
    },
  };
}
async function startSyncProcess(): Promise<SyncProcess> {
  const fleet = await Promise.all(Array.from({ length: replicas }, () => startReplica()));
  return {
    pids: fleet.map((r) => r.pid),
    scrape: async () => (await Promise.all(fleet.map((r) => r.metrics()))).join("\n"),
    requests: async () => {
      let sum = 0;
      for (const r of fleet) {
        for (const m of (await r.metrics()).matchAll(/^klutch_bind_api_requests_total\{[^}]*\} (\d+)/gm))
          sum += Number(m[1]);
      }
      return sum;
    },
    memory: async () => Promise.all(fleet.map(async (r) => memoryFromMetrics(await r.metrics()))),
    heapSnapshot: async () => {
      await Promise.all(
        fleet.map(async (r) => {
          r.child.kill("SIGUSR2");
          await sleep(500); // the snapshot holds the event loop: the next answer comes after it
          await r.metrics();
        }),
      );
    },
    stop: async () => {
      await Promise.all(
        fleet.map(async (r) => {
          r.child.kill("SIGTERM");
          await once(r.child, "exit");
        }),
      );
    },
  };
}
/**
 * The start of each binding from the sync's log (BENCH_SYNC_LOG): its lines come through a pipe and a
 * file, so this waits up to 5 s for each binding's first copy to be there.
 */
async function readTimelines(
  created: Array<{ name: string; createdAt: number; copySeenAt: number }>,
): Promise<FirstObjectTimeline[]> {
  const keyOf = (name: string) =>
    bindingKey({ apiVersion: `${refs.bindings.group}/${refs.bindings.version}`, metadata: { name, namespace: ns } });
  const started = performance.now();
  for (;;) {
    await new Promise<void>((resolve, reject) => syncLog?.write("", (err) => (err ? reject(err) : resolve())));
    const lines = stageLines(readFileSync(syncLogPath as string, "utf8"));
    const complete = created.every((c) =>
      lines.some((l) => l.binding === keyOf(c.name) && l.stage === "first copy created"),
    );
    if (complete || performance.now() - started > 5000) {
      return created.flatMap((c) => firstObjectTimeline(lines, keyOf(c.name), c.createdAt, c.copySeenAt) ?? []);
    }
    await sleep(200);
  }
}
const peakRssMiB = (s: SyncProcess) => s.pids.map((pid) => Math.round(cpuSample(pid).peakRssKiB / 1024));
const cpuSeconds = (s: SyncProcess) => s.pids.reduce((sum, pid) => sum + cpuSample(pid).cpuSeconds, 0);
let sync = await startSyncProcess();
for (const b of bindings) {
  const created = await control.apply(
    refs.bindings,
    {
      apiVersion: "bind.klutch.dev/v1alpha1",
      kind: "AppClusterBinding",
      metadata: { name: b.name, namespace: ns },
      spec: {
        kubeconfigSecretRef: { name: appNames[apps.indexOf(b.app)] as string },
        exports: [{ group: b.ref.group, resource: "widgets" }],
      },
    },
    "bench",
    true,
  );
  b.uid = created.metadata.uid ?? "";
}
const readyAt = performance.now();
for (const b of bindings) {
  await until(
    `binding ${b.name} Ready`,
    async () => conditionOf(await control.get(refs.bindings, b.name, ns), "Ready")?.status === "True",
    120_000,
  );
}
say(`all ${bindingCount} bindings Ready in ${((performance.now() - readyAt) / 1000).toFixed(1)} s`);
const providerNs = (b: Binding, appNs: string) => providerNamespace(b.uid, appNs);

// --- the limits: a plain client's raw creates, and the minimal writes of one bound object ------------
const rawCount = Math.max(stream, 1000);
const rawRef = (bindings[0] as Binding).ref;
const rawSeconds = await inParallel(
  Array.from({ length: rawCount }, (_, k) => k),
  (k) => control.create(rawRef, widget(`raw-${k}`, ns, rawRef.group, k)),
);
const rawPerSecond = Math.round(rawCount / rawSeconds);
say(`raw limit: ${rawCount} creates in ${rawSeconds.toFixed(1)} s (${rawPerSecond}/s)`);
// an API no binding exports, on every cluster: the sync does not see these objects
const minRef: ResourceRef = { ...rawRef, group: `min.bench${run}.klutch-bind.dev` };
const extraGroups: string[] = [minRef.group];
for (const client of [control, ...apps]) {
  await client.apply(refs.crds, widgetCrd(minRef.group), "bench", true);
  await until("minimal-writes CRD established", async () =>
    isEstablished(await client.get(refs.crds, `widgets.${minRef.group}`)),
  );
}
const minimalObjects = await Promise.all(
  Array.from({ length: rawCount }, (_, k) => k).map(async (k) => {
    const at = place("min", k);
    const app = at.binding.app;
    const appObject = await app.create(minRef, widget(at.name, at.namespace, minRef.group, k));
    return { app, appObject, copy: widget(at.name, ns, minRef.group, k) };
  }),
);
const minimalCpuBefore = machineCpu();
const minimalPerSecond = await minimalWrites(concurrency, control, minimalObjects, minRef, finalizer);
const minimalMachineCores = machineCoresBusy(minimalCpuBefore, machineCpu());
say(
  `minimal writes: ${rawCount} objects (app finalizer patch + control create), ${minimalPerSecond}/s; the machine busy ${minimalMachineCores} cores`,
);
const limits = {
  rawCreatesPerSecond: rawPerSecond,
  minimalWritesPerSecond: minimalPerSecond,
  minimalWritesMachineCores: minimalMachineCores,
};
const ratio = (perSecond: number) => Number((perSecond / minimalPerSecond).toFixed(2));

// --- cold start: objects made while the sync is down; time until every provider copy exists -------
const copies = bindings.map((b) => watchArrivals(control, b.ref, (o) => o.metadata.namespace !== ns));
await Promise.all(copies.map((c) => c.ready));
const arrived = () => copies.reduce((sum, c) => sum + c.seen.size, 0);
const readyPeakRssMiB = peakRssMiB(sync);
const readyMemory = await sync.memory();
await sync.stop();
say(`sync stopped; creating ${objects} objects in the app cluster(s)`);
const appCreateSeconds = await inParallel(
  Array.from({ length: objects }, (_, k) => k),
  (k) => {
    const at = place("cold", k);
    return at.binding.app.create(at.binding.ref, widget(at.name, at.namespace, at.binding.ref.group, k));
  },
);
say(`${objects} app objects in ${appCreateSeconds.toFixed(1)} s; starting the sync cold`);
const coldStarted = performance.now();
const coldMachineBefore = machineCpu();
sync = await startSyncProcess();
await until(`${objects} provider copies`, () => arrived() >= objects);
const coldSeconds = (performance.now() - coldStarted) / 1000;
// fresh processes: their counters cover the whole cold start, the initial lists included
const coldRequests = await sync.requests();
const coldCpu = cpuSeconds(sync);
const coldPeakRssMiB = peakRssMiB(sync);
const coldMemory = await sync.memory();
const coldMachineCores = machineCoresBusy(coldMachineBefore, machineCpu());
if (heapSnapshotDir) {
  say(`writing a heap snapshot of the sync into ${heapSnapshotDir}`);
  await sync.heapSnapshot();
}
// where the cold start's time went: fresh processes, so their histograms hold only the cold start
const coldText = await sync.scrape();
const coldInSync = {
  queueWait: quantilesBetween(new Map(), bucketsFromMetrics(coldText, "klutch_bind_queue_wait_seconds")),
  reconcile: quantilesBetween(new Map(), bucketsFromMetrics(coldText, "klutch_bind_reconcile_seconds")),
  apiRequests: requestsBetween(new Map(), requestHistograms(coldText)),
  apiRequestWait: {
    app: quantilesBetween(
      new Map(),
      bucketsFromMetrics(coldText, "klutch_bind_api_request_wait_seconds", { cluster: "app" }),
    ),
    control: quantilesBetween(
      new Map(),
      bucketsFromMetrics(coldText, "klutch_bind_api_request_wait_seconds", { cluster: "control" }),
    ),
  },
};
say(
  `cold start converged on ${objects} objects in ${coldSeconds.toFixed(1)} s; the machine busy ${coldMachineCores} cores, the sync ${(coldCpu / coldSeconds).toFixed(2)}; its API requests: ${describeRequests(coldInSync.apiRequests)}`,
);
const coldStart = {
  objects,
  seconds: Number(coldSeconds.toFixed(1)),
  objectsPerSecond: Math.round(objects / coldSeconds),
  ratioToRaw: Number((objects / coldSeconds / rawPerSecond).toFixed(2)),
  ratioToMinimal: ratio(objects / coldSeconds),
  requestsPerObject: Number((coldRequests / Math.max(1, objects)).toFixed(2)),
  syncCpuSeconds: Number(coldCpu.toFixed(1)),
  syncCpuShare: Number((coldCpu / coldSeconds).toFixed(2)),
  peakRssMiB: coldPeakRssMiB,
  memory: coldMemory,
  machineCores: coldMachineCores,
  ...coldInSync,
};

type Phase = Latency & { requestsPerObject: number };
let phases:
  | {
      specUp: Phase & {
        perSecond: number;
        ratioToRaw: number;
        ratioToMinimal: number;
        createSeconds: number;
        lastCopyAfterLastCreateMs: number;
      };
      statusDown: Phase & { perSecond: number };
      secretDown: Phase;
      steady: SteadyRow[];
      firstObject: {
        newBinding: number[];
        backlog?: BacklogResult;
      };
      firstObjectTimeline?: FirstObjectTimeline[];
    }
  | undefined;

if (everyPhase) {
  // --- spec up while running: creation in an app cluster to provider copy -------------------------------
  const created = new Map<string, number>();
  const streamStarted = performance.now();
  const requestsBeforeStream = await sync.requests();
  const streamSeconds = await inParallel(
    Array.from({ length: stream }, (_, k) => k),
    async (k) => {
      const at = place("live", k);
      created.set(`${providerNs(at.binding, at.namespace)}/${at.name}`, performance.now());
      await at.binding.app.create(at.binding.ref, widget(at.name, at.namespace, at.binding.ref.group, k));
    },
  );
  await until(`${stream} live copies`, () => arrived() >= objects + stream);
  const streamDone = performance.now();
  const arrivals = new Map(copies.flatMap((c) => [...c.seen]));
  const specLatency = stats([...created].map(([key, t]) => (arrivals.get(key) ?? Number.NaN) - t));
  const specSeconds = (streamDone - streamStarted) / 1000;
  const streamRequests = (await sync.requests()) - requestsBeforeStream;
  for (const c of copies) c.stop();
  say(`spec up: ${stream} objects, p50 ${specLatency.p50ms} ms (app creates took ${streamSeconds.toFixed(1)} s)`);

  // --- status storm: provider status on `storm` copies at once, to the consumers ------------------------
  const readyInApps = apps.map((app) =>
    bindings
      .filter((b) => b.app === app)
      .map((b) => watchArrivals(app, b.ref, (o) => (o.status as { ready?: boolean } | undefined)?.ready === true)),
  );
  await Promise.all(readyInApps.flat().map((w) => w.ready));
  const stormTargets = Array.from({ length: Math.min(storm, stream) }, (_, k) => place("live", k));
  const statusAt = new Map<string, number>();
  const requestsBeforeStorm = await sync.requests();
  const stormStarted = performance.now();
  await inParallel(stormTargets, async (at) => {
    statusAt.set(`${at.namespace}/${at.name}`, performance.now());
    await control.mergePatch(
      at.binding.ref,
      at.name,
      providerNs(at.binding, at.namespace),
      { status: { ready: true } },
      "status",
    );
  });
  const downArrived = () => readyInApps.flat().reduce((sum, w) => sum + w.seen.size, 0);
  await until(`${stormTargets.length} statuses down`, () => downArrived() >= stormTargets.length);
  const stormSeconds = (performance.now() - stormStarted) / 1000;
  const downArrivals = new Map(readyInApps.flat().flatMap((w) => [...w.seen]));
  const statusLatency = stats([...statusAt].map(([key, t]) => (downArrivals.get(key) ?? Number.NaN) - t));
  const stormRequests = (await sync.requests()) - requestsBeforeStorm;
  for (const w of readyInApps.flat()) w.stop();
  say(`status storm: ${stormTargets.length} in ${stormSeconds.toFixed(1)} s, p50 ${statusLatency.p50ms} ms`);

  // --- claimed secrets down ------------------------------------------------------------------------------
  const secretWatches = apps.map((app) =>
    watchArrivals(app, refs.secrets, (o) => o.metadata.name.startsWith("creds-")),
  );
  await Promise.all(secretWatches.map((w) => w.ready));
  const secretAt = new Map<string, number>();
  const requestsBeforeSecrets = await sync.requests();
  await inParallel(
    Array.from({ length: secretCount }, (_, k) => k),
    async (k) => {
      const at = place("creds", k);
      secretAt.set(`${at.namespace}/${at.name}`, performance.now());
      await control.create(refs.secrets, {
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: at.name, namespace: providerNs(at.binding, at.namespace) },
        stringData: { password: at.name },
      });
    },
  );
  const secretsArrived = () => secretWatches.reduce((sum, w) => sum + w.seen.size, 0);
  await until(`${secretCount} secrets down`, () => secretsArrived() >= secretCount);
  const secretArrivals = new Map(secretWatches.flatMap((w) => [...w.seen]));
  const secretLatency = stats([...secretAt].map(([key, t]) => (secretArrivals.get(key) ?? Number.NaN) - t));
  const secretRequests = (await sync.requests()) - requestsBeforeSecrets;
  for (const w of secretWatches) w.stop();
  say(`secrets down: ${secretCount}, p50 ${secretLatency.p50ms} ms`);

  // --- steady rates: objects created at a fixed rate; each copy's status written as soon as it arrives --
  // At each rate the sync's run, then the same run against the minimal controller (bench/minimal-controller.ts:
  // exactly the sync's writes for minRef, which no binding exports, on the first app cluster): the machine's limit.
  type Lane = { app: KubeClient; ref: ResourceRef; isCopy: (o: KubeObject) => boolean };
  type SteadyPlace = { app: KubeClient; ref: ResourceRef; name: string; namespace: string; copyKey: string };
  /** one open-loop run: creates at rate for rateSeconds, statuses written as copies arrive, until all are back */
  async function steadyRun(
    what: string,
    rate: number,
    prefix: string,
    lanes: Lane[],
    at: (k: number) => SteadyPlace,
    start = async () => {},
  ) {
    const createdAt = new Map<string, number>();
    const statusWrittenAt = new Map<string, number>();
    const ours = (o: KubeObject) => o.metadata.name.startsWith(`${prefix}-`);
    let statusFailed = 0;
    const ups = lanes.map((lane) =>
      watchArrivals(
        control,
        lane.ref,
        (o) => ours(o) && lane.isCopy(o),
        (o) => {
          const key = `${o.metadata.annotations?.[annotations.consumerNamespace] ?? ""}/${o.metadata.name}`;
          statusWrittenAt.set(key, performance.now());
          void control
            .mergePatch(lane.ref, o.metadata.name, o.metadata.namespace, { status: { ready: true } }, "status")
            .catch((err: unknown) => {
              // past the API servers' limit: that object's status is not waited for, only counted
              statusWrittenAt.delete(key);
              if (statusFailed++ === 0) say(`steady ${rate}/s, ${what}: a status write failed: ${String(err)}`);
            });
        },
      ),
    );
    const downs = lanes.map((lane) =>
      watchArrivals(
        lane.app,
        lane.ref,
        (o) => ours(o) && (o.status as { ready?: boolean } | undefined)?.ready === true,
      ),
    );
    await Promise.all([...ups, ...downs].map((w) => w.ready));
    await start();
    const started = performance.now();
    const machineBefore = machineCpu();
    const sent = await atRate(rate, rateSeconds, async (k) => {
      const p = at(k);
      createdAt.set(p.copyKey, performance.now());
      await p.app.create(p.ref, widget(p.name, p.namespace, p.ref.group, k)).catch((err) => {
        createdAt.delete(p.copyKey); // its latency is not measured; it may still arrive
        throw err;
      });
    });
    if (sent.failed > 0)
      say(`steady ${rate}/s, ${what}: ${sent.failed} of ${sent.sent} app creates failed (past the API servers' limit)`);
    const total = sent.succeeded;
    const upCount = () => ups.reduce((sum, w) => sum + w.seen.size, 0);
    const downCount = () => downs.reduce((sum, w) => sum + w.seen.size, 0);
    await until(
      `${total} objects at ${rate}/s synced both ways by the ${what}`,
      () => upCount() >= total && downCount() >= total - statusFailed,
    );
    if (statusFailed > 0)
      say(`steady ${rate}/s, ${what}: ${statusFailed} status writes failed (past the API servers' limit)`);
    const seconds = (performance.now() - started) / 1000;
    const machineCores = machineCoresBusy(machineBefore, machineCpu());
    say(
      `steady ${rate}/s, ${what}: ${total} objects synced both ways in ${seconds.toFixed(1)} s; the machine busy ${machineCores} cores`,
    );
    const upAt = new Map(ups.flatMap((w) => [...w.seen]));
    const downAt = new Map(downs.flatMap((w) => [...w.seen]));
    for (const w of [...ups, ...downs]) w.stop();
    return {
      seconds,
      machineCores,
      objects: total,
      failedCreates: sent.failed,
      failedStatusWrites: statusFailed,
      specUp: stats([...createdAt].map(([key, t]) => (upAt.get(key) ?? Number.NaN) - t)),
      statusDown: stats([...statusWrittenAt].map(([key, t]) => (downAt.get(key) ?? Number.NaN) - t)),
    };
  }
  const syncLanes: Lane[] = bindings.map((b) => ({
    app: b.app,
    ref: b.ref,
    isCopy: (o) => o.metadata.namespace !== ns,
  }));
  const minimalApp = apps[0] as KubeClient;
  const minimalNamespaces = appNamespaces.filter((t) => t.binding.app === minimalApp).map((t) => t.name);
  const minimalLanes: Lane[] = [{ app: minimalApp, ref: minRef, isCopy: (o) => o.metadata.namespace === ns }];
  const minimalController = rates.length > 0 ? await startMinimalController(minRef.group) : undefined;
  const steady = [];
  // the bench's own event loop: it timestamps creates and arrivals, so its delays are in the latencies
  const benchLoop = monitorEventLoopDelay({ resolution: loopResolutionMs });
  benchLoop.enable();
  const waitAndReconcile = (text: string) => ({
    queueWait: bucketsFromMetrics(text, "klutch_bind_queue_wait_seconds"),
    reconcile: bucketsFromMetrics(text, "klutch_bind_reconcile_seconds"),
    requests: requestHistograms(text),
    requestWait: {
      app: bucketsFromMetrics(text, "klutch_bind_api_request_wait_seconds", { cluster: "app" }),
      control: bucketsFromMetrics(text, "klutch_bind_api_request_wait_seconds", { cluster: "control" }),
    },
  });
  // the control API server's own timing of the run's writes (kubectl get --raw /metrics before and after)
  const sampleControl = serverSampler(join(dev, "bin", "kubectl"), join(dev, "control.kubeconfig"));
  const controlSample = async () =>
    sampleControl?.().catch((err: unknown) => {
      say(`the control API server's metrics: ${String(err)}`);
      return undefined;
    });
  const controlView = (before: ServerSample | undefined, after: ServerSample | undefined): ServerView | undefined =>
    before && after ? viewBetween(before, after) : undefined;
  const cpuMsPerObject = (cpuBefore: number, cpuAfter: number, objects: number) =>
    Number((((cpuAfter - cpuBefore) * 1000) / Math.max(1, objects)).toFixed(2));
  for (const rate of rates) {
    let requestsBefore = 0;
    let syncCpuBefore = 0;
    let controlBefore: ServerSample | undefined;
    let inSyncBefore = waitAndReconcile("");
    const syncRun = await steadyRun(
      "sync",
      rate,
      `r${rate}`,
      syncLanes,
      (k) => {
        const p = place(`r${rate}`, k);
        const { app, ref } = p.binding;
        return {
          app,
          ref,
          name: p.name,
          namespace: p.namespace,
          copyKey: `${providerNs(p.binding, p.namespace)}/${p.name}`,
        };
      },
      async () => {
        requestsBefore = await sync.requests();
        controlBefore = await controlSample();
        syncCpuBefore = cpuSeconds(sync);
        // also starts the sync's event-loop figures anew (prom-client resets them at each scrape)
        inSyncBefore = waitAndReconcile(await sync.scrape());
        benchLoop.reset();
      },
    );
    const syncCpuMs = cpuMsPerObject(syncCpuBefore, cpuSeconds(sync), syncRun.objects);
    const syncControlView = controlView(controlBefore, await controlSample());
    const benchLag = { p99: loopDelayMs(benchLoop.percentile(99)), max: loopDelayMs(benchLoop.max) };
    const syncText = await sync.scrape();
    const inSync = waitAndReconcile(syncText);
    const syncLag = eventLoopFromMetrics(syncText);
    const requestsPerObject = Number((((await sync.requests()) - requestsBefore) / syncRun.objects).toFixed(2));
    let minimalCpuBefore = 0;
    const minimalCpu = () => (minimalController ? cpuSample(minimalController.pid).cpuSeconds : 0);
    const minimal = await steadyRun(
      "minimal controller",
      rate,
      `m${rate}`,
      minimalLanes,
      (k) => {
        const name = `m${rate}-${k}`;
        const namespace = minimalNamespaces[k % minimalNamespaces.length] as string;
        return { app: minimalApp, ref: minRef, name, namespace, copyKey: `${ns}/${name}` };
      },
      async () => {
        controlBefore = await controlSample();
        minimalCpuBefore = minimalCpu();
        await minimalController?.stats();
      },
    );
    const minimalCpuMs = cpuMsPerObject(minimalCpuBefore, minimalCpu(), minimal.objects);
    const minimalControlView = controlView(controlBefore, await controlSample());
    const minimalStats = await minimalController?.stats();
    const row = {
      rate,
      seconds: Number(syncRun.seconds.toFixed(1)),
      objects: syncRun.objects,
      failedCreates: syncRun.failedCreates,
      failedStatusWrites: syncRun.failedStatusWrites,
      achievedPerSecond: Math.round(syncRun.objects / syncRun.seconds),
      specUp: syncRun.specUp,
      statusDown: syncRun.statusDown,
      requestsPerObject,
      queueWait: quantilesBetween(inSyncBefore.queueWait, inSync.queueWait),
      reconcile: quantilesBetween(inSyncBefore.reconcile, inSync.reconcile),
      apiRequests: requestsBetween(inSyncBefore.requests, inSync.requests),
      apiRequestWait: {
        app: quantilesBetween(inSyncBefore.requestWait.app, inSync.requestWait.app),
        control: quantilesBetween(inSyncBefore.requestWait.control, inSync.requestWait.control),
      },
      eventLoopLagP99Ms: syncLag?.p99Ms,
      eventLoopLagMaxMs: syncLag?.maxMs,
      benchEventLoopLagP99Ms: benchLag.p99,
      benchEventLoopLagMaxMs: benchLag.max,
      machineCores: syncRun.machineCores,
      syncCpuMsPerObject: syncCpuMs,
      ...(syncControlView ? { controlServer: syncControlView } : {}),
      minimal: {
        specUp: minimal.specUp,
        statusDown: minimal.statusDown,
        failedCreates: minimal.failedCreates,
        machineCores: minimal.machineCores,
        cpuMsPerObject: minimalCpuMs,
        ...(minimalStats ?? {}),
        ...(minimalControlView ? { controlServer: minimalControlView } : {}),
      },
    } satisfies SteadyRow;
    steady.push(row);
    const p = (l: Latency | undefined) => (l ? `p50 ${l.p50ms} p99 ${l.p99ms} ms` : "-");
    say(
      `steady ${rate}/s for ${rateSeconds} s: spec up p50 ${row.specUp.p50ms} p99 ${row.specUp.p99ms} ms, status down p50 ${row.statusDown.p50ms} p99 ${row.statusDown.p99ms} ms, ${row.requestsPerObject} requests per object; in the sync: queue wait ${p(row.queueWait)}, reconcile ${p(row.reconcile)}, event loop lag p99 ${row.eventLoopLagP99Ms ?? "-"} max ${row.eventLoopLagMaxMs ?? "-"} ms; the bench's event loop lag p99 ${benchLag.p99} max ${benchLag.max} ms; the minimal controller: spec up ${p(minimal.specUp)}, status down ${p(minimal.statusDown)}; CPU per object: the sync ${syncCpuMs} ms, the minimal controller ${minimalCpuMs} ms`,
    );
    say(
      `steady ${rate}/s: the sync's API requests: ${describeRequests(row.apiRequests)}; waited before sending: app ${p(row.apiRequestWait.app)}, control ${p(row.apiRequestWait.control)}`,
    );
    const served = (v: ServerView | undefined) =>
      v ? `${v.writes} widget writes, ${v.meanMs} ms each on average, ${v.executing} at once, ${v.cores} cores` : "-";
    say(
      `steady ${rate}/s: the control API server's own timing: the sync's run ${served(syncControlView)}; the minimal controller's run ${served(minimalControlView)}`,
    );
    if (minimalStats)
      say(
        `steady ${rate}/s: the minimal controller's API requests: ${Object.entries(minimalStats.requests)
          .map(([key, l]) => `${key}: ${l.n}, ${p(l)}`)
          .join(
            "; ",
          )}; its event loop lag p99 ${minimalStats.eventLoopLagP99Ms} max ${minimalStats.eventLoopLagMaxMs} ms`,
      );
  }
  benchLoop.disable();
  await minimalController?.stop();

  // --- the first object of a new binding: alone, and behind objects an earlier binding left ---------------
  const firstApp = apps[0] as KubeClient;
  const firstNs = (appNamespaces.find((t) => t.binding.app === firstApp) as (typeof appNamespaces)[number]).name;
  const boundHere = bindings.filter((b) => b.app === firstApp).map((b) => b.name);
  /** a new export bound by a new binding on the first app cluster; returns the binding's name and ref */
  async function newExport(name: string) {
    const ref: ResourceRef = { ...rawRef, group: `${name}.bench${run}.klutch-bind.dev` };
    extraGroups.push(ref.group);
    for (const client of [control, firstApp]) {
      // in the app cluster beforehand, so that objects can wait there for the binding
      await client.apply(refs.crds, widgetCrd(ref.group), "bench", true);
      await until(`CRD widgets.${ref.group} established`, async () =>
        isEstablished(await client.get(refs.crds, `widgets.${ref.group}`)),
      );
    }
    await control.apply(
      refs.templates,
      {
        apiVersion: "example-backend.klutch.anynines.com/v1alpha1",
        kind: "APIServiceExportTemplate",
        metadata: { name: `widgets-${name}`, namespace: ns },
        spec: { APIServiceSelector: { group: ref.group, resource: "widgets", version: "v1" } },
      },
      "bench",
      true,
    );
    boundHere.push(name);
    await control.mergePatch(refs.secrets, appNames[0] as string, ns, {
      metadata: {
        annotations: {
          [kubeconfigForAnnotation]: boundHere
            .map((n) => markOf({ group: refs.bindings.group, namespace: ns, name: n }))
            .join(","),
        },
      },
    });
    return ref;
  }
  const uids = new Map<string, string>();
  const bindNow = async (name: string, ref: ResourceRef) => {
    const created = await control.create(refs.bindings, {
      apiVersion: "bind.klutch.dev/v1alpha1",
      kind: "AppClusterBinding",
      metadata: { name, namespace: ns },
      spec: {
        kubeconfigSecretRef: { name: appNames[0] as string },
        exports: [{ group: ref.group, resource: "widgets" }],
      },
    });
    uids.set(name, created.metadata.uid ?? "");
  };
  const newBinding: number[] = [];
  /** each new binding's create and its first copy's arrival, epoch ms (the sync's log has epoch times) */
  const firstCopies: Array<{ name: string; createdAt: number; copySeenAt: number }> = [];
  const epoch = (t: number) => performance.timeOrigin + t;
  for (let i = 0; i < 3; i++) {
    const ref = await newExport(`f${i}`);
    await firstApp.create(ref, widget("first", firstNs, ref.group, 1));
    const watch = watchArrivals(control, ref, (o) => o.metadata.name === "first");
    await watch.ready;
    const t0 = performance.now();
    await bindNow(`f${i}`, ref);
    await until(`the first object of binding f${i}`, () => watch.seen.size > 0, 60_000);
    const seenAt = watch.seen.values().next().value as number;
    newBinding.push(Math.round(seenAt - t0));
    firstCopies.push({ name: `f${i}`, createdAt: epoch(t0), copySeenAt: epoch(seenAt) });
    watch.stop();
  }
  say(`first object of a new binding: ${newBinding.join(", ")} ms`);
  // objects an earlier binding let go of (released: no finalizer, no label), then a new binding
  async function behindBacklog(): Promise<BacklogResult> {
    const backlogRef = await newExport("bl");
    await inParallel(
      Array.from({ length: backlog }, (_, k) => k),
      (k) => firstApp.create(backlogRef, widget(`old-${k}`, firstNs, backlogRef.group, k)),
    );
    const blWatch = watchArrivals(control, backlogRef, () => true);
    await blWatch.ready;
    const t0 = performance.now();
    await bindNow("bl", backlogRef);
    await until("the first copy behind the backlog", () => blWatch.seen.size > 0, 60_000);
    const firstCopyAt = Math.min(...blWatch.seen.values());
    const firstCopyMs = Math.round(firstCopyAt - t0);
    firstCopies.push({ name: "bl", createdAt: epoch(t0), copySeenAt: epoch(firstCopyAt) });
    // new objects while the backlog is worked through: one every 100 ms
    const liveAt = new Map<string, number>();
    let liveSent = 0;
    while (blWatch.seen.size < backlog * 0.9 && liveSent < 50) {
      const name = `new-${liveSent++}`;
      liveAt.set(`${providerNamespace(uids.get("bl") ?? "", firstNs)}/${name}`, performance.now());
      await firstApp.create(backlogRef, widget(name, firstNs, backlogRef.group, 1));
      await sleep(100);
    }
    await until("the backlog drained", () => blWatch.seen.size >= backlog + liveSent);
    const drainedSeconds = Number(((performance.now() - t0) / 1000).toFixed(1));
    const liveDuringBacklog = stats([...liveAt].map(([key, t]) => (blWatch.seen.get(key) ?? Number.NaN) - t));
    blWatch.stop();
    say(
      `backlog of ${backlog}: first copy ${firstCopyMs} ms after the binding, drained in ${drainedSeconds} s; ${liveSent} new objects meanwhile p50 ${liveDuringBacklog.p50ms} p99 ${liveDuringBacklog.p99ms} ms`,
    );
    return { objects: backlog, firstCopyMs, drainedSeconds, liveDuringBacklog };
  }
  const backlogResult = backlog > 0 ? await behindBacklog() : undefined;
  const timelines = syncLog ? await readTimelines(firstCopies) : undefined;
  for (const t of timelines ?? []) say(describeTimeline(t));
  bindings.push(
    ...["f0", "f1", "f2", ...(backlogResult ? ["bl"] : [])].map((name, i) => ({
      name,
      ref: { ...rawRef, group: extraGroups[i + 1] as string },
      app: firstApp,
      uid: uids.get(name) ?? "",
      namespaces: [firstNs],
    })),
  );

  phases = {
    specUp: {
      ...specLatency,
      perSecond: Math.round(stream / specSeconds),
      ratioToRaw: Number((stream / specSeconds / rawPerSecond).toFixed(2)),
      ratioToMinimal: ratio(stream / specSeconds),
      requestsPerObject: Number((streamRequests / Math.max(1, stream)).toFixed(2)),
      // the rate above cannot pass the bench's own creates: how long they took, and how far behind
      // the last of them the last copy came
      createSeconds: Number(streamSeconds.toFixed(1)),
      lastCopyAfterLastCreateMs: Math.round(specSeconds * 1000 - streamSeconds * 1000),
    },
    statusDown: {
      ...statusLatency,
      perSecond: Math.round(stormTargets.length / stormSeconds),
      requestsPerObject: Number((stormRequests / Math.max(1, stormTargets.length)).toFixed(2)),
    },
    secretDown: { ...secretLatency, requestsPerObject: Number((secretRequests / Math.max(1, secretCount)).toFixed(2)) },
    steady,
    firstObject: { newBinding, ...(backlogResult ? { backlog: backlogResult } : {}) },
    ...(timelines ? { firstObjectTimeline: timelines } : {}),
  };
} else for (const c of copies) c.stop();

const result = {
  topology: {
    bindings: bindingCount,
    appClusters: clusterCount,
    namespaces: namespaceCount,
    concurrency,
    workers,
    replicas,
    syncEnv: deployedSyncEnv,
  },
  ...limits,
  coldStart,
  ...phases,
  syncPeakRssMiB: { bindingsReady: readyPeakRssMiB, end: peakRssMiB(sync) },
  syncMemory: { bindingsReady: readyMemory, coldStart: coldMemory, end: await sync.memory() },
  note: "the sync runs in its own process (or --replicas processes with --shards auto); requests per object are its own (klutch_bind_api_requests_total), CPU share is its CPU seconds over the wall time of the cold start (1.0 = one core); memory per replica",
};
if (values.out) writeFileSync(values.out, `${JSON.stringify(result, null, 2)}\n`);
else console.log(JSON.stringify(result, null, 2));

// --- clean up: bindings first (the sync lets go), then every object's finalizer, then the APIs ----------
for (const b of bindings) await control.delete(refs.bindings, b.name, ns);
await sleep(2000);
await sync.stop();
for (const ref of [...bindings.map((b) => b.ref), minRef]) {
  for (const client of [control, ...apps]) {
    const all = (await client.list(ref).catch(() => ({ items: [] as KubeObject[] }))).items;
    await inParallel(all, (o) =>
      o.metadata.finalizers?.length
        ? client
            .mergePatch(ref, o.metadata.name, o.metadata.namespace, { metadata: { finalizers: null } })
            .catch(() => undefined)
        : Promise.resolve(),
    );
    await client.delete(refs.crds, `widgets.${ref.group}`);
  }
}
for (const app of apps)
  for (const t of appNamespaces.filter((x) => x.binding.app === app)) await app.delete(refs.namespaces, t.name);
for (const b of bindings)
  for (const appNs of b.namespaces) if (b.uid) await control.delete(refs.namespaces, providerNs(b, appNs));
await control.delete(refs.namespaces, ns);
control.close();
for (const app of apps) app.close();
