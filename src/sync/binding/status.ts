// A binding's status: its conditions (conditions.ts computes them) and per export what is bound,
// written only when it changed.
import { isDeepStrictEqual } from "node:util";
import { type Condition, kindOf } from "../../api/binding-spec.ts";
import type { KubeClient, KubeObject } from "../../kube/client.ts";
import { kubeTime } from "../../kube/time.ts";

export type ExportStatus = {
  group: string;
  resource: string;
  /** the template's claims this binding has not accepted as they are now (not synced) */
  claimsPending?: string;
  /** fields of accepted claims the sync does not act on yet */
  claimsNotActedOn?: string;
  /** what the app cluster answered wrongly (only in memory: it becomes the Connected condition) */
  appError?: string;
  /** the app cluster stopped answering (only in memory: it becomes the Connected condition) */
  appUnreachable?: Condition;
  version?: string;
  template?: string;
  objects?: number;
  lastSync?: string;
  message?: string;
};

/** Writes the binding's status when it differs from what it says now (lastTransitionTime kept while a status holds). */
export async function writeStatus(
  control: KubeClient,
  binding: KubeObject,
  conditions: Condition[],
  exports: ExportStatus[],
  clusterUid: string | undefined,
  /** the replica serving the binding, when several share the bindings */
  servedBy?: string,
): Promise<void> {
  const current = (binding.status ?? {}) as {
    conditions?: Condition[];
    exports?: ExportStatus[];
    appCluster?: { uid?: string };
    servedBy?: string;
  };
  const now = kubeTime(new Date());
  const stamped = conditions.map((c) => {
    const before = current.conditions?.find((p) => p.type === c.type);
    return {
      ...c,
      lastTransitionTime: before && before.status === c.status ? (before.lastTransitionTime ?? now) : now,
    };
  });
  const appCluster = clusterUid ?? current.appCluster?.uid;
  const next = {
    conditions: stamped,
    exports,
    ...(appCluster ? { appCluster: { uid: appCluster } } : {}),
    ...(servedBy ? { servedBy } : {}),
  };
  const before = {
    conditions: current.conditions,
    exports: current.exports,
    ...(current.appCluster ? { appCluster: current.appCluster } : {}),
    ...(current.servedBy ? { servedBy: current.servedBy } : {}),
  };
  if (isDeepStrictEqual(next, before)) return;
  await control.updateStatus(kindOf(binding).ref, { ...binding, status: next });
}
