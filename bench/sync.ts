// bench/sync: propagation latency and throughput of the sync between two real API servers, beside
// the raw create rate of a plain client loop against the same control plane (the limit).
//   make dev-clusters && node bench/sync.ts [--objects 1000] [--secrets 200] [--concurrency 20] [--out FILE]
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { pino } from "pino";
import { KubeClient, type KubeObject, type ResourceRef } from "../src/kube/client.ts";
import { startSync } from "../src/sync/manager.ts";
import { providerNamespace } from "../src/sync/naming.ts";
import { refs } from "../src/sync/resources.ts";
import { widgetCrd } from "../test/fixtures/crds.ts";

const { values } = parseArgs({
  options: {
    objects: { type: "string", default: "1000" },
    secrets: { type: "string", default: "200" },
    concurrency: { type: "string", default: "20" },
    out: { type: "string" },
  },
});
const count = Number(values.objects);
const secrets = Number(values.secrets);
const concurrency = Number(values.concurrency);
const dev = join(import.meta.dirname, "..", ".dev");
const control = KubeClient.fromKubeconfigText(readFileSync(join(dev, "control.kubeconfig"), "utf8"));
const app = KubeClient.fromKubeconfigText(readFileSync(join(dev, "app.kubeconfig"), "utf8"));
const run = Math.random().toString(36).slice(2, 8);
const group = `bench${run}.klutch-bind.dev`;
const ref: ResourceRef = { group, version: "v1", resource: "widgets", namespaced: true };
const say = (text: string) => console.error(`[bench] ${text}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function inParallel<T>(items: T[], fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

function stats(latencies: number[]) {
  const sorted = [...latencies].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? Number.NaN;
  return { n: sorted.length, p50ms: Math.round(at(0.5)), p99ms: Math.round(at(0.99)) };
}

/** Waits until `expected` keys have been seen by a watch-like poll of `seen`, bounded. */
async function waitFor(seen: Map<string, number>, expected: number, what: string, timeoutMs = 300_000) {
  const started = Date.now();
  while (seen.size < expected) {
    if (Date.now() - started > timeoutMs)
      throw new Error(`${what}: ${seen.size}/${expected} after ${timeoutMs / 1000}s`);
    await sleep(50);
  }
}

function watchArrivals(
  client: KubeClient,
  watched: ResourceRef,
  namespace: string,
  accept: (o: KubeObject) => boolean,
) {
  const seen = new Map<string, number>();
  const abort = new AbortController();
  const loop = async () => {
    let rv = (await client.list(watched, { namespace })).resourceVersion;
    while (!abort.signal.aborted) {
      await client
        .watch(
          watched,
          { namespace, resourceVersion: rv, allowBookmarks: true, timeoutSeconds: 60 },
          (e) => {
            rv = e.object.metadata.resourceVersion ?? rv;
            if (
              e.type !== "BOOKMARK" &&
              e.type !== "DELETED" &&
              accept(e.object) &&
              !seen.has(e.object.metadata.name)
            ) {
              seen.set(e.object.metadata.name, performance.now());
            }
          },
          abort.signal,
        )
        .catch(() => sleep(100));
    }
  };
  void loop();
  return { seen, stop: () => abort.abort() };
}

// --- setup: an exported API, a template, a binding, the sync ------------------------------------
const crd = widgetCrd(group);
await control.apply(refs.crds, crd, "bench", true);
for (const client of [control, app]) {
  await client.apply(
    refs.namespaces,
    { apiVersion: "v1", kind: "Namespace", metadata: { name: `bench-${run}` } },
    "bench",
    true,
  );
}
await sleep(2000); // new CRD: watch cache warm-up
const ns = `bench-${run}`;
await control.apply(
  refs.templates,
  {
    apiVersion: "example-backend.klutch.anynines.com/v1alpha1",
    kind: "APIServiceExportTemplate",
    metadata: { name: "widgets", namespace: ns },
    spec: {
      APIServiceSelector: { group, resource: "widgets", version: "v1" },
      permissionClaims: [{ group: "", resource: "secrets", version: "v1", selector: { owner: "Provider" } }],
    },
  },
  "bench",
  true,
);
await control.apply(
  refs.secrets,
  {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: "app", namespace: ns },
    stringData: { kubeconfig: readFileSync(join(dev, "app.kubeconfig"), "utf8") },
  },
  "bench",
  true,
);
const rssBefore = process.memoryUsage().rss;
const sync = await startSync({ control, logger: pino({ level: "warn" }), workers: 16, namespace: ns, resyncMs: 5000 });
const binding = await control.apply(
  refs.bindings,
  {
    apiVersion: "bind.klutch.dev/v1alpha1",
    kind: "AppClusterBinding",
    metadata: { name: "bench", namespace: ns },
    spec: { kubeconfigSecretRef: { name: "app" }, exports: [{ group, resource: "widgets" }] },
  },
  "bench",
  true,
);
for (;;) {
  const b = await control.get(refs.bindings, "bench", ns);
  if (
    (b?.status as { conditions?: Array<{ type: string; status: string }> } | undefined)?.conditions?.some(
      (c) => c.type === "Ready" && c.status === "True",
    )
  )
    break;
  await sleep(100);
}
const appNs = `bench-app-${run}`;
const pns = providerNamespace(binding.metadata.uid ?? "", appNs);
await app.apply(refs.namespaces, { apiVersion: "v1", kind: "Namespace", metadata: { name: appNs } }, "bench", true);
say(`binding ready; ${count} objects, ${secrets} secrets, concurrency ${concurrency}`);

// --- raw limit: a plain client loop creating the same objects on the same API server --------------
const names = Array.from({ length: count }, (_, i) => `w-${i}`);
const widget = (name: string, namespace: string): KubeObject => ({
  apiVersion: `${group}/v1`,
  kind: "Widget",
  metadata: { name, namespace },
  spec: { n: 1 },
});
let t = performance.now();
await inParallel(names, (name) => control.create(ref, widget(`raw-${name}`, ns)));
const rawSeconds = (performance.now() - t) / 1000;
say(`raw limit: ${count} creates in ${rawSeconds.toFixed(1)} s`);

// --- spec up: creation in the app cluster to provider copy ------------------------------------------
const created = new Map<string, number>();
const upstream = watchArrivals(control, ref, pns, () => true);
const requestsBefore = control.requests + app.requests;
await app.create(ref, widget("warmup", appNs)); // makes the provider namespace exist
await sleep(1000);
t = performance.now();
await inParallel(names, async (name) => {
  created.set(name, performance.now());
  await app.create(ref, widget(name, appNs));
});
await waitFor(upstream.seen, count + 1, "provider copies");
const specSeconds = (performance.now() - t) / 1000;
const specLatency = stats(names.map((n) => (upstream.seen.get(n) ?? Number.NaN) - (created.get(n) ?? 0)));
upstream.stop();

// --- status down: provider status to consumer status -------------------------------------------------
const downstream = watchArrivals(app, ref, appNs, (o) => (o.status as { ready?: boolean } | undefined)?.ready === true);
const statusAt = new Map<string, number>();
const copies = (await control.list(ref, { namespace: pns })).items.filter((o) => o.metadata.name !== "warmup");
t = performance.now();
await inParallel(copies, async (copy) => {
  statusAt.set(copy.metadata.name, performance.now());
  await control.mergePatch(ref, copy.metadata.name, pns, { status: { ready: true } }, "status");
});
await waitFor(downstream.seen, copies.length, "statuses down");
const statusSeconds = (performance.now() - t) / 1000;
const statusLatency = stats(
  copies.map((c) => (downstream.seen.get(c.metadata.name) ?? Number.NaN) - (statusAt.get(c.metadata.name) ?? 0)),
);
downstream.stop();

// --- secrets down -----------------------------------------------------------------------------------
const secretNames = Array.from({ length: secrets }, (_, i) => `creds-${i}`);
const secretsDown = watchArrivals(app, refs.secrets, appNs, (o) => o.metadata.name.startsWith("creds-"));
const secretAt = new Map<string, number>();
t = performance.now();
await inParallel(secretNames, async (name) => {
  secretAt.set(name, performance.now());
  await control.create(refs.secrets, {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name, namespace: pns },
    stringData: { password: name },
  });
});
await waitFor(secretsDown.seen, secrets, "secrets down");
const secretLatency = stats(secretNames.map((n) => (secretsDown.seen.get(n) ?? Number.NaN) - (secretAt.get(n) ?? 0)));
secretsDown.stop();
const requestsPerObject = (control.requests + app.requests - requestsBefore) / (count * 2 + secrets);

const result = {
  objects: count,
  rawCreatesPerSecond: Math.round(count / rawSeconds),
  specUp: {
    ...specLatency,
    perSecond: Math.round(count / specSeconds),
    ratioToRaw: Number((rawSeconds / specSeconds).toFixed(2)),
  },
  statusDown: { ...statusLatency, perSecond: Math.round(copies.length / statusSeconds) },
  secretDown: secretLatency,
  apiRequestsPerObjectSynced: Number(requestsPerObject.toFixed(2)),
  rssMiB: Math.round(process.memoryUsage().rss / 1048576),
  rssGrowthMiB: Math.round((process.memoryUsage().rss - rssBefore) / 1048576),
  note: "requests per object counts the benchmark's own creates and status writes too",
};
if (values.out) writeFileSync(values.out, `${JSON.stringify(result, null, 2)}\n`);
else console.log(JSON.stringify(result, null, 2));

// --- clean up ---------------------------------------------------------------------------------------
await control.delete(refs.bindings, "bench", ns);
await sync.stop();
for (const client of [app, control]) {
  const all = (await client.list(ref)).items;
  await inParallel(all, (o) =>
    o.metadata.finalizers?.length
      ? client.update(ref, { ...o, metadata: { ...o.metadata, finalizers: [] } })
      : Promise.resolve(),
  );
  await client.delete(refs.crds, crd.metadata.name);
}
for (const n of [ns, pns]) await control.delete(refs.namespaces, n);
await app.delete(refs.namespaces, appNs);
control.close();
app.close();
