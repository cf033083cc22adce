// What the binding controller keeps per binding, in memory only (everything durable lives in the
// clusters), and stopping it: a binding's export syncs, its app informers and its app client.

import type { AppNamespaceAccess } from "../../app-access/namespace-access.ts";
import type { AppAccess } from "../../app-access/token-renewal.ts";
import type { KubeClient } from "../../kube/client.ts";
import type { InformerRegistry } from "../informers.ts";
import type { BindingRef } from "../mirror/export-context.ts";
import type { ExportSync } from "../mirror/export-sync.ts";
import { NotServedError } from "../replicas/fence.ts";
import type { StageLog } from "../stages.ts";
import { AppProbe } from "./app-probe.ts";

export type BindingState = {
  /** bindingKey: group/namespace/name */
  key: string;
  ref: BindingRef;
  /**
   * what the app client was made from (clientSource): a change restarts the binding; other changes
   * to its Secret (a label, someone's annotation) leave the client, its caches and watches alone
   */
  clientSource?: string;
  app?: KubeClient;
  /** the client app is a view of (fence.ts, --leader-elect), or app itself: closing it ends the connections */
  appOwner?: KubeClient;
  appInformers?: InformerRegistry;
  exports: Map<string, { sync: ExportSync; signature: string; crdVersion: string }>;
  /** provider namespaces and claims access made so far */
  namespaces: Set<string>;
  /** the last look at the app cluster: reachable, and which cluster it is */
  probe: AppProbe;
  /** a service account whose token the sync renews (a binding made by klutch-bind bind), if it is one */
  access?: AppAccess;
  /** when its token was last renewed (Date.now()); kept across restarts of the binding's client */
  lastRenewal?: number;
  namespaceAccess?: AppNamespaceAccess;
  /** performance.now() when the controller first saw this binding object */
  seenAt: number;
  /**
   * aborted when a hand-over stopped waiting for this binding's work (or the controller stops): its
   * clients are closed, its writes refused, and a reconcile still under way starts nothing more
   */
  cancelled: AbortController;
  /** the stages of its start, with debug lines only (stages.ts) */
  stage?: StageLog;
};

/** Throws when the binding's work was cancelled (a hand-over stopped waiting for it). */
export function assertLive(state: BindingState): void {
  if (state.cancelled.signal.aborted) throw new NotServedError(`binding ${state.key}`);
}

export async function stopExport(state: BindingState, id: string): Promise<void> {
  const running = state.exports.get(id);
  if (running === undefined) return;
  await running.sync.stop();
  state.exports.delete(id);
}

/**
 * Stops the binding's syncs, informers and client; what it stops is taken off state at once (a
 * cancel and a reconcile may both call it). retire is told the requests of the client it drops.
 */
export async function stopBinding(state: BindingState, retire: (requests: number) => void): Promise<void> {
  const syncs = [...state.exports.values()].map((e) => e.sync);
  const informers = state.appInformers;
  const owner = state.appOwner;
  state.exports.clear();
  retire(state.app?.requests ?? 0);
  state.app = undefined;
  state.appOwner = undefined;
  state.appInformers = undefined;
  state.probe = new AppProbe();
  state.clientSource = undefined;
  state.access = undefined;
  state.namespaceAccess = undefined;
  // a cancel while the syncs stop (they may wait on the cluster) closes the client at once
  const close = () => owner?.close();
  state.cancelled.signal.addEventListener("abort", close, { once: true });
  try {
    await Promise.all(syncs.map((sync) => sync.stop()));
    await informers?.stopAll();
  } finally {
    state.cancelled.signal.removeEventListener("abort", close);
    close();
  }
}
