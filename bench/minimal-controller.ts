// bench/minimal-controller: the smallest controller making exactly the sync's writes for one API, one
// app cluster and the control plane, so bench/sync can set its latency beside the sync's at the same
// steady rates. No cache and no queue: each watch event becomes its writes at once, at most WORKERS
// in flight (the sync's --workers, 16). Spec up: a new app object gets the finalizer (patched with its
// resourceVersion), then its copy in one control-plane namespace; status down: a copy's status is
// merge-patched onto the app object's status.
//   node bench/minimal-controller.ts CONTROL_KUBECONFIG APP_KUBECONFIG GROUP COPY_NAMESPACE [WORKERS]
// Prints "ready" on stdout once its watches have their starting versions (no later event is missed);
// on SIGUSR2 prints one "stats {json}" line (its requests' p50/p99 by cluster and method, and its
// event-loop lag since the last SIGUSR2) and starts those figures anew; exits on SIGTERM.
import { readFileSync } from "node:fs";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { annotations, finalizer } from "../src/api/naming.ts";
import {
  KubeApiError,
  KubeClient,
  type KubeObject,
  type ResourceRef,
  resourcePath,
  type WatchEvent,
} from "../src/kube/client.ts";
import { loopDelayMs, loopResolutionMs, stats } from "./sync-phases.ts";

const [controlPath, appPath, group, copyNs, workers = "16"] = process.argv.slice(2);
if (!controlPath || !appPath || !group || !copyNs)
  throw new Error("usage: minimal-controller.ts CONTROL_KUBECONFIG APP_KUBECONFIG GROUP COPY_NAMESPACE [WORKERS]");
const control = KubeClient.fromKubeconfigText(readFileSync(controlPath, "utf8"));
const app = KubeClient.fromKubeconfigText(readFileSync(appPath, "utf8"));
const ref: ResourceRef = { group, version: "v1", resource: "widgets", namespaced: true };
const stopping = new AbortController();

// what the bench sets beside the sync's own metrics: the time of each request and of the event loop
const requestMs = new Map<string, number[]>();
for (const [cluster, client] of [
  ["control", control],
  ["app", app],
] as const) {
  client.observeRequests(({ method, seconds }) => {
    const key = `${cluster} ${method}`;
    let times = requestMs.get(key);
    if (times === undefined) {
      times = [];
      requestMs.set(key, times);
    }
    times.push(seconds * 1000);
  });
}
const loop = monitorEventLoopDelay({ resolution: loopResolutionMs });
loop.enable();
process.on("SIGUSR2", () => {
  const requests = Object.fromEntries([...requestMs].map(([key, ms]) => [key, stats(ms)]));
  const lag = { eventLoopLagP99Ms: loopDelayMs(loop.percentile(99)), eventLoopLagMaxMs: loopDelayMs(loop.max) };
  console.log(`stats ${JSON.stringify({ requests, ...lag })}`);
  requestMs.clear();
  loop.reset();
});

const inFlight = Math.max(1, Number(workers));
let running = 0;
const waiting: Array<() => void> = [];
async function bounded(work: () => Promise<unknown>): Promise<void> {
  if (running >= inFlight) await new Promise<void>((resolve) => waiting.push(resolve));
  running++;
  try {
    await work();
  } catch (err) {
    if (!stopping.signal.aborted) console.error(`[minimal-controller] ${String(err)}`);
  } finally {
    running--;
    waiting.shift()?.();
  }
}

/** a write retried with backoff as the sync requeues a failed key (past the API servers' limit writes time out) */
async function write(fn: () => Promise<unknown>, done: (err: KubeApiError) => boolean = () => false): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await fn();
      return;
    } catch (err) {
      // a retry after an answer that was lost: the earlier attempt did the write
      if (err instanceof KubeApiError && done(err)) return;
      if (attempt >= 5 || stopping.signal.aborted) throw err;
      await sleep(100 * 2 ** attempt);
    }
  }
}

function spec(o: KubeObject) {
  const { name, namespace, resourceVersion } = o.metadata;
  return bounded(async () => {
    await write(
      () => app.mergePatch(ref, name, namespace, { metadata: { resourceVersion, finalizers: [finalizer] } }),
      // only this controller changes an app object before its copy exists: a conflict is its own earlier patch
      (err) => err.code === 409,
    );
    await write(
      () =>
        control.create(ref, {
          apiVersion: o.apiVersion,
          kind: o.kind,
          metadata: { name, namespace: copyNs, annotations: { [annotations.consumerNamespace]: namespace ?? "" } },
          spec: o.spec,
        }),
      (err) => err.code === 409,
    );
  });
}

function status(copy: KubeObject) {
  const namespace = copy.metadata.annotations?.[annotations.consumerNamespace];
  if (copy.status === undefined || namespace === undefined) return;
  return bounded(() =>
    write(() => app.mergePatch(ref, copy.metadata.name, namespace, { status: copy.status }, "status")),
  );
}

/**
 * Watches in the background from the current resourceVersion (what exists already is not this run's),
 * again from the last version seen when a watch ends; after a 410 from the newest (runs are shorter).
 */
async function follow(client: KubeClient, namespace: string | undefined, onEvent: (e: WatchEvent) => void) {
  const now = async () =>
    (
      await client.request<{ metadata: { resourceVersion: string } }>("GET", resourcePath(ref, namespace), {
        query: { limit: "1" },
      })
    ).metadata.resourceVersion;
  let resourceVersion = await now();
  void (async () => {
    while (!stopping.signal.aborted) {
      try {
        await client.watch(
          ref,
          { namespace, resourceVersion },
          (e) => {
            resourceVersion = e.object.metadata.resourceVersion ?? resourceVersion;
            if (e.type !== "BOOKMARK") onEvent(e);
          },
          stopping.signal,
        );
      } catch (err) {
        if (stopping.signal.aborted) return;
        console.error(`[minimal-controller] watch: ${String(err)}`);
        if (err instanceof KubeApiError && err.code === 410) resourceVersion = await now().catch(() => resourceVersion);
        await sleep(200);
      }
    }
  })();
}

// a copy changes only when the bench writes its status (this controller creates it and never touches it again)
await follow(control, copyNs, (e) => {
  if (e.type === "MODIFIED") void status(e.object);
});
await follow(app, undefined, (e) => {
  if (e.type === "ADDED") void spec(e.object);
});
console.log("ready");

process.once("SIGTERM", () => {
  stopping.abort();
  control.close();
  app.close();
  process.exit(0);
});
