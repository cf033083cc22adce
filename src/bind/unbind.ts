// Unbinding, as `klutch-bind unbind` and the web page both begin it: the binding's deletionPolicy
// set when it changes, then the binding deleted (this very binding: a uid precondition). The sync
// does the rest, as for a binding deleted with kubectl (sync/binding/release.ts): it releases the
// app objects, keeps or deletes the provider copies as the policy says, then takes its finalizer off.
import { type DeletionPolicy, kindOf, specOf } from "../api/binding-spec.ts";
import type { KubeClient, KubeObject } from "../kube/client.ts";

/** What each policy does, in one sentence (the CLI's flags and the web page's choice say the same). */
export const deletionPolicyWords: Record<DeletionPolicy, string> = {
  Orphan:
    "keeps the provider copies (the services behind them) and the app cluster's objects; they are no longer synced",
  Delete:
    "deletes the provider copies (the services behind them!) and the binding's provider namespaces; the app cluster's objects are released",
};

export function isDeletionPolicy(value: unknown): value is DeletionPolicy {
  return value === "Orphan" || value === "Delete";
}

/** The binding's policy as the sync reads it: Orphan unless it says Delete. */
export function deletionPolicyOf(binding: KubeObject): DeletionPolicy {
  return specOf(binding).deletionPolicy === "Delete" ? "Delete" : "Orphan";
}

/** Sets spec.deletionPolicy unless the binding has it already (as written, not as defaulted). */
export async function setDeletionPolicy(
  client: KubeClient,
  binding: KubeObject,
  policy: DeletionPolicy,
): Promise<void> {
  if (specOf(binding).deletionPolicy === policy) return;
  const { name, namespace } = binding.metadata;
  await client.mergePatch(kindOf(binding).ref, name, namespace, { spec: { deletionPolicy: policy } });
}

/** Deletes this binding (not one made again under its name since); false when it is gone already. */
export function deleteBinding(client: KubeClient, binding: KubeObject): Promise<boolean> {
  const { name, namespace, uid } = binding.metadata;
  return client.delete(kindOf(binding).ref, name, namespace, uid ? { uid } : {});
}
