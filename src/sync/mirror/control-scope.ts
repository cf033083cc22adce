// Where the mirroring of one export looks on the control plane: its binding's provider namespaces,
// and the provider copies (and objects to adopt) of the bound resource in them. The sync (push
// mode) holds cluster-wide rights and watches both across the cluster, by label, shared by every
// export; a konnector's per-binding account may list nothing cluster-wide (pull mode), so it hands
// in a scope of its own (src/konnector/control-scope.ts) that knows its provider namespaces from its
// APIServiceNamespaces and watches the copies namespace by namespace (namespaced-copies.ts).
import { labels } from "../../api/naming.ts";
import { refs } from "../../api/resources.ts";
import type { KubeClient, KubeObject, ResourceRef } from "../../kube/client.ts";
import type { Informer, InformerHandlers } from "../../kube/informer.ts";
import type { InformerRegistry } from "../informers.ts";

/** What the mirroring reads of a cache: an Informer, or a view joining several. */
export type ObjectCache = Pick<
  Informer,
  "get" | "list" | "hasSynced" | "onSynced" | "firstList" | "failing" | "lastError"
>;

/** A cache held with handlers; release() removes the handlers at once (as InformerRegistry.acquire). */
export type HeldCache = { informer: ObjectCache; release: () => Promise<void> };

export type ControlScope = {
  /**
   * The binding's provider namespaces, as Namespaces labelled with the binding's uid and the app
   * namespace each mirrors (naming.ts labels.binding, labels.consumerNamespace); the cache may hold
   * other bindings' too (the mirroring looks at the labels).
   */
  namespaces(handlers: InformerHandlers): HeldCache;
  /** the objects of ref on the control plane the mirroring looks at: wherever its provider namespaces are */
  copies(ref: ResourceRef, handlers: InformerHandlers): HeldCache;
  /** a provider namespace the cache lacks (a copy just made, known only from our write), read from the control plane */
  readNamespace(name: string): Promise<KubeObject | undefined>;
};

/** The sync's scope: one watch of every binding's provider namespaces, one of the bound resource across the cluster. */
export function clusterWideScope(registry: InformerRegistry, control: KubeClient): ControlScope {
  return {
    namespaces: (handlers) => registry.acquire(refs.namespaces, { labelSelector: labels.binding }, handlers),
    // Bound objects are cached lean (no last-applied annotation): they are written back as patches only.
    copies: (ref, handlers) => registry.acquire(ref, { lean: true }, handlers),
    readNamespace: (name) => control.get(refs.namespaces, name),
  };
}
