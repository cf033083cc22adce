// What the in-process sync counted (its own metrics), for tests that assert something did NOT
// happen: they wait until the sync has provably looked again, never for a fixed time.
import type { RunningSync } from "../../src/sync/manager.ts";
import { eventually } from "./eventually.ts";
import type { SyncEnv } from "./sync-env.ts";

/** The sum of metric's samples (a histogram's: its _count) whose labels include these. */
async function counted(sync: RunningSync, metric: string, labels: Record<string, string>): Promise<number> {
  const read = await sync.metrics.registry.getSingleMetric(metric)?.get();
  let sum = 0;
  for (const sample of read?.values ?? []) {
    const name = (sample as { metricName?: string }).metricName;
    if (name !== undefined && name !== metric && name !== `${metric}_count`) continue;
    if (Object.entries(labels).every(([k, v]) => sample.labels[k] === v)) sum += sample.value;
  }
  return sum;
}

function running(env: SyncEnv): RunningSync {
  if (env.sync === undefined)
    throw new Error("these counts are the in-process sync's: syncEnv without inProcess: false");
  return env.sync;
}

/** Reconciles of binding NAME (of env's namespace) the sync finished, failed ones too. */
export function bindingReconciles(env: SyncEnv, name: string): Promise<number> {
  return counted(running(env), "klutch_bind_binding_reconciles_total", { binding: `${env.bindingNamespace}/${name}` });
}

/** Reconciles of the bound and claimed objects of binding NAME the sync finished: done, or failed unexpectedly. */
export async function objectReconciles(env: SyncEnv, name: string): Promise<number> {
  const binding = { binding: `${env.bindingNamespace}/${name}` };
  const sync = running(env);
  return (
    (await counted(sync, "klutch_bind_reconcile_seconds", binding)) +
    (await counted(sync, "klutch_bind_sync_errors_total", binding))
  );
}

/**
 * Waits until binding NAME was reconciled from start to end after this call: two more finished
 * (one may have been under way already; the queue never runs one binding twice at once).
 */
export async function bindingReconciledAgain(env: SyncEnv, name: string): Promise<void> {
  const from = await bindingReconciles(env, name);
  await eventually(`binding ${name} reconciled again`, async () => {
    const now = await bindingReconciles(env, name);
    if (now < from + 2) throw new Error(`${now - from} reconcile(s) since`);
  });
}

/** Waits until the sync finished `more` reconciles of binding NAME's objects beyond `from` (objectReconciles). */
export async function objectsReconciled(env: SyncEnv, name: string, from: number, more: number): Promise<void> {
  await eventually(`${more} more reconciles of ${name}'s objects`, async () => {
    const now = await objectReconciles(env, name);
    if (now < from + more) throw new Error(`${now - from} since`);
  });
}
