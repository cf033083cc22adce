// What an AppClusterBinding says, read strictly enough for the controller: its spec, its
// conditions, its kind, and the key it goes by. Reading the kubeconfig it names is the sync's
// (sync/binding/app-kubeconfig.ts).
import type { KubeObject, ResourceRef } from "../kube/client.ts";
import type { MarkedBinding } from "./kubeconfig-secret.ts";
import { refs } from "./resources.ts";

export type Condition = {
  type: string;
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
  lastTransitionTime?: string;
};

/** What happens to the provider copies when a binding or an export goes (sync/binding/release.ts). */
export type DeletionPolicy = "Orphan" | "Delete";

/** A binding's spec, the same for both kinds (klutch-bind's apiExports read as exports). */
export type BindingSpec = {
  kubeconfigSecretRef?: { name?: string; namespace?: string; key?: string };
  exports?: Array<{ group?: string; resource?: string; permissionClaims?: unknown }>;
  deletionPolicy?: DeletionPolicy;
  konnector?: { deploy?: boolean };
};

/**
 * The two binding APIs the sync serves alike: ours (bind.klutch.dev) and klutch-bind's own
 * (klutch.anynines.com), whose list of exports is called apiExports.
 */
export type BindingKind = { ref: ResourceRef; exportsField: "exports" | "apiExports" };
export const bindingKinds: readonly BindingKind[] = [
  { ref: refs.bindings, exportsField: "exports" },
  { ref: refs.klutchBindings, exportsField: "apiExports" },
];

export function kindOf(binding: { apiVersion?: string }): BindingKind {
  const group = (binding.apiVersion ?? "").split("/")[0];
  return bindingKinds.find((k) => k.ref.group === group) ?? (bindingKinds[0] as BindingKind);
}

export function specOf(binding: KubeObject): BindingSpec {
  const raw = (binding.spec ?? {}) as Record<string, unknown>;
  return { ...raw, exports: raw[kindOf(binding).exportsField] as BindingSpec["exports"] } as BindingSpec;
}

/**
 * A binding's exports, each group and resource once (as its first entry has it): a binding that
 * lists one export many times costs one sync, not one per entry. repeated: the entries left out.
 */
export function distinctExports(binding: KubeObject): {
  exports: Array<{ group: string; resource: string }>;
  repeated: number;
} {
  const listed = specOf(binding).exports;
  const entries = Array.isArray(listed) ? listed : [];
  const distinct = new Map<string, { group: string; resource: string }>();
  for (const e of entries) {
    const entry = { group: e?.group ?? "", resource: e?.resource ?? "" };
    const id = `${entry.resource}.${entry.group}`;
    if (!distinct.has(id)) distinct.set(id, entry);
  }
  return { exports: [...distinct.values()], repeated: entries.length - distinct.size };
}

/** "group/namespace/name": unique across both kinds; the key of a binding in queues and logs. */
export function bindingKey(binding: { apiVersion?: string; metadata: { namespace?: string; name: string } }): string {
  return `${kindOf(binding).ref.group}/${binding.metadata.namespace ?? ""}/${binding.metadata.name}`;
}

/** The binding as a kubeconfig Secret's mark names it: its kind's group, namespace and name. */
export function markedBinding(binding: {
  apiVersion?: string;
  metadata: { namespace?: string; name: string };
}): MarkedBinding {
  return { group: kindOf(binding).ref.group, namespace: binding.metadata.namespace ?? "", name: binding.metadata.name };
}

/** The kind, namespace and name of a bindingKey. */
export function parseBindingKey(key: string): { kind: BindingKind; namespace: string; name: string } {
  const [group = "", namespace = "", name = ""] = key.split("/");
  return { kind: kindOf({ apiVersion: `${group}/v1alpha1` }), namespace, name };
}

/** How a binding is named in messages: "AppClusterBinding namespace/name", and the group when it is klutch-bind's. */
export function describeBinding(key: string): string {
  const { kind, namespace, name } = parseBindingKey(key);
  const group = kind.ref.group === refs.bindings.group ? "" : ` (${kind.ref.group})`;
  return `AppClusterBinding ${namespace}/${name}${group}`;
}
