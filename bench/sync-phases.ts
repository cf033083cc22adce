// Phases of bench/sync beyond the first ones: the minimal-writes limit, steady rates, the first
// object of a new binding, and the sync process's memory as its own metrics tell it.
import { setTimeout as sleep } from "node:timers/promises";
import type { KubeClient, KubeObject, ResourceRef } from "../src/kube/client.ts";
import { Informer } from "../src/kube/informer.ts";
import { percentile } from "./support.ts";

export type Latency = { n: number; p50ms: number; p99ms: number };

export function stats(latencies: number[]): Latency {
  const sorted = latencies.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  return { n: sorted.length, p50ms: Math.round(percentile(sorted, 50)), p99ms: Math.round(percentile(sorted, 99)) };
}

export async function inParallel<T>(
  concurrency: number,
  items: T[],
  fn: (item: T) => Promise<unknown>,
): Promise<number> {
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
  return (performance.now() - started) / 1000;
}

export async function until(what: string, done: () => boolean | Promise<boolean>, timeoutMs = 600_000): Promise<void> {
  const started = Date.now();
  while (!(await done())) {
    if (Date.now() - started > timeoutMs) throw new Error(`${what}: not done after ${timeoutMs / 1000} s`);
    await sleep(20);
  }
}

/** First arrival time of each object (namespace/name) that accept() takes, on one resource everywhere. */
export function watchArrivals(
  client: KubeClient,
  watched: ResourceRef,
  accept: (o: KubeObject) => boolean,
  onArrival?: (o: KubeObject) => void,
) {
  const seen = new Map<string, number>();
  const note = (o: KubeObject) => {
    const key = `${o.metadata.namespace}/${o.metadata.name}`;
    if (accept(o) && !seen.has(key)) {
      seen.set(key, performance.now());
      onArrival?.(o);
    }
  };
  // an informer, so an expired watch (410) relists instead of stalling the measurement
  const informer = new Informer(client, watched);
  informer.addHandlers({ add: note, update: (_old, o) => note(o) });
  informer.start();
  return { seen, ready: informer.waitForSync(), stop: () => void informer.stop() };
}

/**
 * The minimal writes of one bound object, by a plain client at the same concurrency: the finalizer
 * patch on the app object and the create of its copy on the control plane. The app objects exist
 * beforehand (made untimed); returns objects per second.
 */
export async function minimalWrites(
  concurrency: number,
  control: KubeClient,
  objects: Array<{ app: KubeClient; appObject: KubeObject; copy: KubeObject }>,
  ref: ResourceRef,
  finalizer: string,
): Promise<number> {
  const seconds = await inParallel(concurrency, objects, async ({ app, appObject, copy }) => {
    await app.mergePatch(ref, appObject.metadata.name, appObject.metadata.namespace, {
      metadata: { resourceVersion: appObject.metadata.resourceVersion, finalizers: [finalizer] },
    });
    await control.create(ref, copy);
  });
  return Math.round(objects.length / seconds);
}

/**
 * Sends fire() at rate per second for seconds (open loop: late answers do not slow the schedule).
 * Past the API servers' limit some calls fail (timeouts, connections reset): those are counted,
 * not fatal, and the answer says how many of the sent calls succeeded.
 */
export async function atRate(
  rate: number,
  seconds: number,
  fire: (k: number) => Promise<unknown>,
): Promise<{ sent: number; succeeded: number; failed: number }> {
  const total = Math.round(rate * seconds);
  const started = performance.now();
  const sent: Promise<boolean>[] = [];
  for (let k = 0; k < total; k++) {
    const due = started + (k * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    sent.push(
      fire(k).then(
        () => true,
        () => false,
      ),
    );
  }
  const succeeded = (await Promise.all(sent)).filter(Boolean).length;
  return { sent: total, succeeded, failed: total - succeeded };
}

export type SyncMemory = {
  rssMiB: number;
  heapUsedMiB: number;
  /** what V8 holds for its heap, used or not */
  heapTotalMiB?: number;
  externalMiB: number;
  handles: Record<string, number>;
};

/** The sync's memory from its own metrics (prom-client's defaults): resident, V8 heap, off-heap, open handles. */
export function memoryFromMetrics(text: string): SyncMemory {
  const one = (name: string) =>
    Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)`, "m").exec(text)?.[1] ?? Number.NaN);
  const mib = (bytes: number) => Math.round(bytes / 1024 / 1024);
  const handles: Record<string, number> = {};
  for (const m of text.matchAll(/^nodejs_active_handles\{type="([^"]+)"\} (\d+)/gm))
    handles[m[1] as string] = Number(m[2]);
  return {
    rssMiB: mib(one("process_resident_memory_bytes")),
    heapUsedMiB: mib(one("nodejs_heap_size_used_bytes")),
    heapTotalMiB: mib(one("nodejs_heap_size_total_bytes")),
    externalMiB: mib(one("nodejs_external_memory_bytes")),
    handles,
  };
}

/**
 * A histogram's cumulative bucket counts by upper bound in seconds (+Inf included), summed over its
 * label sets (those with every label of only, when given).
 */
export function bucketsFromMetrics(text: string, name: string, only: Record<string, string> = {}): Map<number, number> {
  const buckets = new Map<number, number>();
  const wanted = Object.entries(only).map(([k, v]) => `${k}="${v}"`);
  for (const m of text.matchAll(new RegExp(`^${name}_bucket\\{([^}]*)\\} (\\S+)`, "gm"))) {
    const labels = (m[1] as string).split(",");
    if (!wanted.every((w) => labels.includes(w))) continue;
    const le = /le="([^"]+)"/.exec(m[1] as string)?.[1];
    if (le === undefined) continue;
    const bound = le === "+Inf" ? Number.POSITIVE_INFINITY : Number(le);
    buckets.set(bound, (buckets.get(bound) ?? 0) + Number(m[2]));
  }
  return buckets;
}

/**
 * p50 and p99 in ms of what a histogram observed between two scrapes, from its bucket deltas: linear
 * between the bounds of the bucket the quantile falls in (as Prometheus' histogram_quantile does), so
 * only as exact as the buckets; past the last finite bound, that bound. Undefined when nothing was observed.
 */
export function quantilesBetween(before: Map<number, number>, after: Map<number, number>): Latency | undefined {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const count = (bound: number) => (after.get(bound) ?? 0) - (before.get(bound) ?? 0);
  const n = count(Number.POSITIVE_INFINITY);
  if (!(n > 0)) return undefined;
  const quantile = (q: number) => {
    let lower = 0;
    let below = 0;
    for (const bound of bounds) {
      const upTo = count(bound);
      if (upTo >= q * n) {
        if (bound === Number.POSITIVE_INFINITY) return lower;
        return lower + ((bound - lower) * (q * n - below)) / (upTo - below);
      }
      lower = bound;
      below = upTo;
    }
    return lower;
  };
  const ms = (seconds: number) => Number((seconds * 1000).toFixed(1));
  return { n, p50ms: ms(quantile(0.5)), p99ms: ms(quantile(0.99)) };
}

/** Where the sync's API requests went over a phase: count, p50/p99 and the failed ones, per cluster and method. */
export type RequestBreakdown = Record<string, Latency & { failed: Record<string, number> }>;

/** The sync's API request histogram (klutch_bind_api_request_seconds) at one scrape, by "cluster method" and code. */
export function requestHistograms(text: string): Map<string, Map<string, Map<number, number>>> {
  const byKind = new Map<string, Map<string, Map<number, number>>>();
  const name = "klutch_bind_api_request_seconds";
  for (const m of text.matchAll(new RegExp(`^${name}_bucket\\{([^}]*)\\}`, "gm"))) {
    const label = (key: string) => new RegExp(`${key}="([^"]*)"`).exec(m[1] as string)?.[1] ?? "";
    const kind = `${label("cluster")} ${label("method")}`;
    const code = label("code");
    const codes = byKind.get(kind) ?? new Map<string, Map<number, number>>();
    byKind.set(kind, codes);
    if (!codes.has(code))
      codes.set(code, bucketsFromMetrics(text, name, { cluster: label("cluster"), method: label("method"), code }));
  }
  return byKind;
}

/** The requests between two scrapes of requestHistograms: latency over every code, and the count of each failed code (not 2xx). */
export function requestsBetween(
  before: Map<string, Map<string, Map<number, number>>>,
  after: Map<string, Map<string, Map<number, number>>>,
): RequestBreakdown {
  const out: RequestBreakdown = {};
  for (const [kind, codes] of after) {
    const sum = (scrape: Map<string, Map<number, number>> | undefined) => {
      const total = new Map<number, number>();
      for (const buckets of scrape?.values() ?? []) {
        for (const [bound, n] of buckets) total.set(bound, (total.get(bound) ?? 0) + n);
      }
      return total;
    };
    const latency = quantilesBetween(sum(before.get(kind)), sum(codes));
    if (latency === undefined) continue;
    const failed: Record<string, number> = {};
    for (const [code, buckets] of codes) {
      if (code.startsWith("2")) continue;
      const n =
        (buckets.get(Number.POSITIVE_INFINITY) ?? 0) -
        (before.get(kind)?.get(code)?.get(Number.POSITIVE_INFINITY) ?? 0);
      if (n > 0) failed[code] = n;
    }
    out[kind] = { ...latency, failed };
  }
  return out;
}

/** "app PATCH: 3,000, p50 12 / p99 340 ms (409: 5)" per kind, busiest first. */
export function describeRequests(breakdown: RequestBreakdown | undefined): string {
  const kinds = Object.entries(breakdown ?? {}).sort(([, a], [, b]) => b.n - a.n);
  if (kinds.length === 0) return "-";
  return kinds
    .map(([kind, r]) => {
      const failed = Object.entries(r.failed).map(([code, n]) => `${code}: ${n}`);
      return `${kind}: ${r.n}, p50 ${r.p50ms} / p99 ${r.p99ms} ms${failed.length ? ` (${failed.join(", ")})` : ""}`;
    })
    .join("; ");
}

/** the timer of monitorEventLoopDelay, prom-client's default too: an idle loop reports about this much */
export const loopResolutionMs = 10;
/** event-loop delay beyond the sampling timer, in ms, from monitorEventLoopDelay's nanoseconds */
export const loopDelayMs = (nanoseconds: number) =>
  Number(Math.max(0, nanoseconds / 1e6 - loopResolutionMs).toFixed(1));

/**
 * The sync's event-loop delay (prom-client's defaults, worst replica): p99 and max since the previous
 * scrape, for prom-client 15 resets its monitorEventLoopDelay histogram at every scrape.
 */
export function eventLoopFromMetrics(text: string): { p99Ms: number; maxMs: number } | undefined {
  const worst = (name: string) => {
    const values = [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)`, "gm"))].map((m) => Number(m[1]));
    return values.length ? loopDelayMs(Math.max(...values) * 1e9) : undefined;
  };
  const p99Ms = worst("nodejs_eventloop_lag_p99_seconds");
  const maxMs = worst("nodejs_eventloop_lag_max_seconds");
  return p99Ms === undefined || maxMs === undefined ? undefined : { p99Ms, maxMs };
}
