// bench/sync: the sync sidecar between real API servers at scale, beside the raw create rate of a
// plain client loop on the same control plane (the limit). B bindings over A app clusters, each
// binding its own exported API; objects spread over NS app namespaces.
//   make dev-clusters CLUSTERS="control app app2" && node bench/sync.ts [--objects 10000] [--stream 1000]
//     [--namespaces 100] [--bindings 20] [--app-clusters 2] [--storm 1000] [--secrets 500]
//     [--concurrency 20] [--out FILE]
// Phases: cold start (objects created while the sync is down, then the time to converge), spec up
// while running (latency per object), a status storm, claimed secrets down.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { parseAllDocuments } from "yaml";
import { KubeClient, type KubeObject, type ResourceRef } from "../src/kube/client.ts";
import { conditionOf, isEstablished } from "../src/kube/conditions.ts";
import { Informer } from "../src/kube/informer.ts";
import { kubeconfigForAnnotation, kubeconfigSecretLabels } from "../src/sync/kubeconfig-secret.ts";
import { providerNamespace } from "../src/sync/naming.ts";
import { refs } from "../src/sync/resources.ts";
import { widgetCrd } from "../test/fixtures/crds.ts";
import { cpuSample, percentile } from "./support.ts";

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

const dev = join(import.meta.dirname, "..", ".dev");
const kubeconfigText = (name: string) => {
  try {
    return readFileSync(join(dev, `${name}.kubeconfig`), "utf8");
  } catch {
    throw new Error(`no .dev/${name}.kubeconfig: run make dev-clusters CLUSTERS="control app app2"`);
  }
};
const appNames = Array.from({ length: clusterCount }, (_, i) => (i === 0 ? "app" : `app${i + 1}`));
const control = KubeClient.fromKubeconfigText(kubeconfigText("control"));
const apps = appNames.map((name) => KubeClient.fromKubeconfigText(kubeconfigText(name)));
const run = Math.random().toString(36).slice(2, 8);
const ns = `bench-${run}`;
const say = (text: string) => console.error(`[bench] ${text}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function inParallel<T>(items: T[], fn: (item: T) => Promise<unknown>): Promise<number> {
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
  return (performance.now() - started) / 1000;
}

function stats(latencies: number[]) {
  const sorted = latencies.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  return { n: sorted.length, p50ms: Math.round(percentile(sorted, 50)), p99ms: Math.round(percentile(sorted, 99)) };
}

/** First arrival time of each object (namespace/name) that accept() takes, on one resource everywhere. */
function watchArrivals(client: KubeClient, watched: ResourceRef, accept: (o: KubeObject) => boolean) {
  const seen = new Map<string, number>();
  const note = (o: KubeObject) => {
    const key = `${o.metadata.namespace}/${o.metadata.name}`;
    if (accept(o) && !seen.has(key)) seen.set(key, performance.now());
  };
  // an informer, so an expired watch (410) relists instead of stalling the measurement
  const informer = new Informer(client, watched);
  informer.addHandlers({ add: note, update: (_old, o) => note(o) });
  informer.start();
  return { seen, ready: informer.waitForSync(), stop: () => void informer.stop() };
}

async function until(what: string, done: () => boolean | Promise<boolean>, timeoutMs = 600_000): Promise<void> {
  const started = Date.now();
  while (!(await done())) {
    if (Date.now() - started > timeoutMs) throw new Error(`${what}: not done after ${timeoutMs / 1000} s`);
    await sleep(20);
  }
}

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
for (const file of ["apiserviceexporttemplate-crd.yaml", "appclusterbinding-crd.yaml"]) {
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
            .map((b) => b.name)
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
for (const b of bindings) {
  await control.apply(refs.crds, widgetCrd(b.ref.group), "bench", true);
  await until(`CRD widgets.${b.ref.group} established`, async () =>
    isEstablished(await control.get(refs.crds, `widgets.${b.ref.group}`)),
  );
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

// the sync runs as in production, in a process of its own: its requests are read from its metrics,
// its CPU time and memory from /proc
type SyncProcess = { child: ChildProcess; pid: number; requests: () => Promise<number>; stop: () => Promise<void> };
async function startSyncProcess(): Promise<SyncProcess> {
  const child = spawn(
    process.execPath,
    [
      join(import.meta.dirname, "..", "src/cli/main.ts"),
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
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const metricsPort = await new Promise<number>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`the sync exited with ${code} before it started`)));
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      const entry = JSON.parse(line) as { msg?: string; metrics?: number; level?: number };
      if (entry.msg === "sync started" && entry.metrics) resolve(entry.metrics);
      if ((entry.level ?? 0) >= 40) console.error(`[sync] ${line}`); // warnings and errors stay visible
    });
  });
  return {
    child,
    pid: child.pid as number,
    requests: async () => {
      const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      return [...text.matchAll(/^klutch_bind_api_requests_total\{[^}]*\} (\d+)/gm)].reduce(
        (sum, m) => sum + Number(m[1]),
        0,
      );
    },
    stop: async () => {
      child.kill("SIGTERM");
      await once(child, "exit");
    },
  };
}
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

// --- raw limit: a plain client loop creating objects on the control plane ------------------------
const rawCount = Math.max(stream, 1000);
const rawRef = (bindings[0] as Binding).ref;
const rawSeconds = await inParallel(
  Array.from({ length: rawCount }, (_, k) => k),
  (k) => control.create(rawRef, widget(`raw-${k}`, ns, rawRef.group, k)),
);
const rawPerSecond = Math.round(rawCount / rawSeconds);
say(`raw limit: ${rawCount} creates in ${rawSeconds.toFixed(1)} s (${rawPerSecond}/s)`);

// --- cold start: objects made while the sync is down; time until every provider copy exists -------
const copies = bindings.map((b) => watchArrivals(control, b.ref, (o) => o.metadata.namespace !== ns));
await Promise.all(copies.map((c) => c.ready));
const arrived = () => copies.reduce((sum, c) => sum + c.seen.size, 0);
const readyPeakRssMiB = Math.round(cpuSample(sync.pid).peakRssKiB / 1024);
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
sync = await startSyncProcess();
await until(`${objects} provider copies`, () => arrived() >= objects);
const coldSeconds = (performance.now() - coldStarted) / 1000;
// a fresh process: its counters cover the whole cold start, the initial lists included
const coldRequests = await sync.requests();
const coldCpu = cpuSample(sync.pid).cpuSeconds;
say(`cold start converged on ${objects} objects in ${coldSeconds.toFixed(1)} s`);

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
const secretWatches = apps.map((app) => watchArrivals(app, refs.secrets, (o) => o.metadata.name.startsWith("creds-")));
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

const result = {
  topology: { bindings: bindingCount, appClusters: clusterCount, namespaces: namespaceCount, concurrency, workers },
  rawCreatesPerSecond: rawPerSecond,
  coldStart: {
    objects,
    seconds: Number(coldSeconds.toFixed(1)),
    objectsPerSecond: Math.round(objects / coldSeconds),
    ratioToRaw: Number((objects / coldSeconds / rawPerSecond).toFixed(2)),
    requestsPerObject: Number((coldRequests / Math.max(1, objects)).toFixed(2)),
    syncCpuSeconds: Number(coldCpu.toFixed(1)),
    syncCpuShare: Number((coldCpu / coldSeconds).toFixed(2)),
  },
  specUp: {
    ...specLatency,
    perSecond: Math.round(stream / specSeconds),
    ratioToRaw: Number((stream / specSeconds / rawPerSecond).toFixed(2)),
    requestsPerObject: Number((streamRequests / Math.max(1, stream)).toFixed(2)),
  },
  statusDown: {
    ...statusLatency,
    perSecond: Math.round(stormTargets.length / stormSeconds),
    requestsPerObject: Number((stormRequests / Math.max(1, stormTargets.length)).toFixed(2)),
  },
  secretDown: { ...secretLatency, requestsPerObject: Number((secretRequests / Math.max(1, secretCount)).toFixed(2)) },
  syncPeakRssMiB: { bindingsReady: readyPeakRssMiB, end: Math.round(cpuSample(sync.pid).peakRssKiB / 1024) },
  note: "the sync runs in its own process; requests per object are its own (klutch_bind_api_requests_total), CPU share is its CPU seconds over the wall time of the cold start (1.0 = one core)",
};
if (values.out) writeFileSync(values.out, `${JSON.stringify(result, null, 2)}\n`);
else console.log(JSON.stringify(result, null, 2));

// --- clean up: bindings first (the sync lets go), then every object's finalizer, then the APIs ----------
for (const b of bindings) await control.delete(refs.bindings, b.name, ns);
await sleep(2000);
await sync.stop();
for (const b of bindings) {
  for (const client of [b.app, control]) {
    const all = (await client.list(b.ref).catch(() => ({ items: [] as KubeObject[] }))).items;
    await inParallel(all, (o) =>
      o.metadata.finalizers?.length
        ? client.update(b.ref, { ...o, metadata: { ...o.metadata, finalizers: [] } }).catch(() => undefined)
        : Promise.resolve(),
    );
    await client.delete(refs.crds, `widgets.${b.ref.group}`);
  }
}
for (const app of apps)
  for (const t of appNamespaces.filter((x) => x.binding.app === app)) await app.delete(refs.namespaces, t.name);
for (const b of bindings) for (const appNs of b.namespaces) await control.delete(refs.namespaces, providerNs(b, appNs));
await control.delete(refs.namespaces, ns);
control.close();
for (const app of apps) app.close();
