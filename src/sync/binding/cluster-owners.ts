// One owner per app object: an app cluster binds each API through one binding only. Two bindings
// of the same cluster and API would both put their finalizer and their status on the same objects
// and keep two provider copies of each.
//
// The owner is named in the app cluster itself, never by what a binding's cluster says it is: the
// API's CRD there carries the owning binding's uid (its mark), and before any mark (clusters bound
// by an older version) the bound objects carry it in their label. Only a sync that reaches the
// cluster can write either, so a hostile app cluster, which may report any kube-system uid, cannot
// take another tenant's API away; and no binding waits for another one's cluster to answer.

/** What the binding controller knows of one binding, for deciding owners. */
export type BindingView = {
  /** namespace/name, for messages */
  key: string;
  uid: string;
  /** "resource.group" of each export */
  exports: string[];
  deleting: boolean;
  /** the app cluster's kube-system uid, as the binding last saw it (in this process or on its status) */
  clusterUid: string | undefined;
};

/** A binding the app cluster names as holding an API: its uid, and its key where the mark says it. */
export type Named = { uid: string; key?: string };

/** by: the holder's key; seen: whether this sync sees that binding (else it is outside its namespace) */
export type Ownership = { owner: true } | { owner: false; by: string; seen: boolean };

/**
 * Whether the binding myUid may sync exportId of an app cluster that says it is clusterUid.
 * named: the bindings the cluster names as holding the API (the CRD's mark, else the labels of its
 * objects); all: every binding this sync sees, of every namespace when seesAll. A binding named
 * there holds the API while it exists, is not being deleted, still exports it, and was not seen on
 * another cluster since (a kubeconfig pointed elsewhere). A marked binding this sync cannot see
 * (one of another namespace, when it serves one) holds it too: only a sync that sees every
 * namespace knows that it is gone.
 */
export function ownership(
  myUid: string,
  clusterUid: string | undefined,
  exportId: string,
  named: readonly Named[],
  all: readonly BindingView[],
  seesAll: boolean,
): Ownership {
  for (const { uid, key } of named) {
    if (uid === myUid) continue;
    const other = all.find((b) => b.uid === uid);
    if (other === undefined) {
      if (!seesAll && key !== undefined) return { owner: false, by: key, seen: false };
      continue;
    }
    if (other.deleting || !other.exports.includes(exportId)) continue;
    if (other.clusterUid !== undefined && clusterUid !== undefined && other.clusterUid !== clusterUid) continue;
    return { owner: false, by: other.key, seen: true };
  }
  return { owner: true };
}

/** What a binding that may not sync an export says on its status; describe names a binding by its key. */
export function refusal(
  verdict: Exclude<Ownership, { owner: true }>,
  exportId: string,
  describe: (key: string) => string,
): string {
  const holder = verdict.seen ? describe(verdict.by) : `binding ${JSON.stringify(verdict.by.slice(0, 200))}`;
  const text = `this app cluster already binds ${exportId} through ${holder} (the API's CRD there names it): one binding per app cluster and API`;
  if (verdict.seen) return text;
  return `${text}; that binding is outside the namespace this sync serves: if it is gone, remove the label bind.klutch.dev/binding from CRD ${exportId} in the app cluster`;
}
