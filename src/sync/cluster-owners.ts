// One owner per app object: an app cluster (known by its kube-system namespace's uid) binds each
// API through one binding only. Two bindings of the same cluster and API would both put their
// finalizer and their status on the same objects and keep two provider copies of each. The oldest
// binding keeps the API; later ones are refused with a condition naming it.

/** What the binding controller knows of one binding, for deciding owners. */
export type BindingClaim = {
  /** namespace/name */
  key: string;
  created: string;
  /** the app cluster's kube-system uid, once seen (in this process or on the binding's status) */
  clusterUid: string | undefined;
  exports: string[];
  deleting: boolean;
  /** its cluster is not known yet, but may be soon: its first look at the cluster is under way */
  identifying: boolean;
};

/** Bindings younger than this whose cluster is not known yet may still turn out to own an API. */
export const identifyGraceMs = 30_000;

export type Ownership = { owner: true } | { owner: false; by: string } | { owner: false; waitingFor: string };

function older(a: BindingClaim, b: BindingClaim): boolean {
  if (a.created !== b.created) return a.created < b.created;
  return a.key < b.key;
}

/** Whether me may sync exportId of the cluster clusterUid, given every binding the controller sees. */
export function ownership(
  me: BindingClaim,
  clusterUid: string,
  exportId: string,
  all: BindingClaim[],
  now = Date.now(),
): Ownership {
  for (const other of all) {
    if (other.key === me.key || other.deleting || !other.exports.includes(exportId) || !older(other, me)) continue;
    if (other.clusterUid === clusterUid) return { owner: false, by: other.key };
    if (other.clusterUid === undefined && other.identifying && now - Date.parse(other.created) < identifyGraceMs) {
      return { owner: false, waitingFor: other.key };
    }
  }
  return { owner: true };
}

/**
 * A binding as ownership sees it: key unique across binding kinds, exports as "resource.group",
 * known what this process learnt of it, if it serves it.
 */
export function claimOf(
  key: string,
  binding: { metadata: { creationTimestamp?: string; deletionTimestamp?: string }; status?: unknown },
  exports: string[],
  known: { clusterUid: string | undefined; looked: boolean } | undefined,
): BindingClaim {
  const status = binding.status as { appCluster?: { uid?: string } } | undefined;
  return {
    key,
    created: binding.metadata.creationTimestamp ?? "",
    clusterUid: known?.clusterUid ?? status?.appCluster?.uid,
    // a binding this process has not looked at yet, or whose first look is under way
    identifying: known?.looked !== true,
    exports,
    deleting: binding.metadata.deletionTimestamp !== undefined,
  };
}

/** What a binding that may not sync an export says on its status; describe names a binding by its key. */
export function refusal(
  verdict: Exclude<Ownership, { owner: true }>,
  clusterUid: string,
  exportId: string,
  describe: (key: string) => string,
): string {
  if ("by" in verdict) {
    return `this app cluster (kube-system uid ${clusterUid}) already binds ${exportId} through ${describe(verdict.by)}: one binding per app cluster and API`;
  }
  return `waiting to learn which app cluster ${describe(verdict.waitingFor)} binds`;
}
