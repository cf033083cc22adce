// Which Secrets the sync may use as an app cluster's kubeconfig. A binding names a Secret, and
// whoever may create bindings might name one they cannot read (a provider's credentials, another
// team's kubeconfig). So by default (`--kubeconfig-secrets marked`) a Secret serves only the
// bindings it names itself, a mark that only someone who could write (and so read) the Secret can
// have put there: the label app.kubernetes.io/managed-by=klutch-bind and the annotation
// bind.klutch.dev/kubeconfig-for listing the bindings as GROUP/NAMESPACE/NAME (comma-separated).
// The group tells the two binding kinds apart (ours, bind.klutch.dev, and klutch-bind's,
// klutch.anynines.com): a binding of the other kind with the same name is another binding, and
// gets neither the Secret nor, when it is deleted, the Secret's deletion. The old mark (NAME, or
// NAMESPACE/NAME) serves no binding any more; the refusal says how to re-mark. `klutch-bind bind`
// and the web page set the mark when they create the Secret, and re-mark an old one.
//
// klutch-bind itself uses any Secret a binding names. `--kubeconfig-secrets same-namespace` comes
// closer for platforms where a namespace is one tenant: an unmarked Secret of the binding's own
// namespace serves it too (whoever binds there is trusted with every Secret there); a Secret of
// another namespace must still be marked. Either way a Secret goes with a binding (and so does the
// app account its kubeconfig holds) only when its mark names that binding and no other.
import type { KubeObject } from "../kube/client.ts";
import { labels } from "./naming.ts";

export const kubeconfigForAnnotation = "bind.klutch.dev/kubeconfig-for";
export const kubeconfigSecretLabels = { [labels.managedBy]: "klutch-bind" } as const;

/** Which kubeconfig Secrets the sync uses: marked ones only, or also unmarked ones of the binding's namespace. */
export type KubeconfigSecretPolicy = "marked" | "same-namespace";
export const kubeconfigSecretPolicies: readonly KubeconfigSecretPolicy[] = ["marked", "same-namespace"];

export function isKubeconfigSecretPolicy(value: string): value is KubeconfigSecretPolicy {
  return (kubeconfigSecretPolicies as readonly string[]).includes(value);
}

/** A binding as a mark names it: its kind's API group, its namespace, its name. */
export type MarkedBinding = { group: string; namespace: string; name: string };

/** "GROUP/NAMESPACE/NAME": one entry of the kubeconfig-for annotation. */
export function markOf(binding: MarkedBinding): string {
  return `${binding.group}/${binding.namespace}/${binding.name}`;
}

/** The bindings a Secret's mark names: new entries (GROUP/NAMESPACE/NAME) and old ones (NAME, NAMESPACE/NAME). */
function entries(secret: KubeObject): { marks: string[]; old: string[] } {
  const listed = (secret.metadata.annotations?.[kubeconfigForAnnotation] ?? "")
    .split(",")
    .map((n) => n.trim())
    .filter((n) => n !== "");
  return {
    marks: listed.filter((n) => n.split("/").length === 3),
    old: listed.filter((n) => n.split("/").length < 3),
  };
}

/** The label and annotation that let the given bindings use a Secret. */
export function kubeconfigSecretMarks(...bindings: MarkedBinding[]) {
  return {
    labels: { ...kubeconfigSecretLabels },
    annotations: { [kubeconfigForAnnotation]: bindings.map(markOf).join(",") },
  };
}

/**
 * The kubeconfig-for annotation of a Secret re-marked for binding: its entry added, an old entry
 * that named it (NAME in the Secret's namespace, or NAMESPACE/NAME) dropped, other entries kept.
 */
export function remarked(secret: KubeObject, binding: MarkedBinding): string {
  const { marks, old } = entries(secret);
  const stale = new Set([`${binding.namespace}/${binding.name}`]);
  if (secret.metadata.namespace === binding.namespace) stale.add(binding.name);
  const kept = [...marks, ...old.filter((n) => !stale.has(n))].filter((n) => n !== markOf(binding));
  return [...kept, markOf(binding)].join(",");
}

/** The Secret's mark names binding and no other binding: it (and the app account it holds) may go with the binding. */
export function markedForOnly(secret: KubeObject, binding: MarkedBinding): boolean {
  if (secret.metadata.labels?.[labels.managedBy] !== kubeconfigSecretLabels[labels.managedBy]) return false;
  const { marks, old } = entries(secret);
  return old.length === 0 && marks.length === 1 && marks[0] === markOf(binding);
}

/** Why the Secret may not serve binding, or undefined when it may. */
export function notMarkedFor(
  secret: KubeObject,
  binding: MarkedBinding,
  policy: KubeconfigSecretPolicy = "marked",
): string | undefined {
  const sameNamespace = secret.metadata.namespace === binding.namespace;
  if (policy === "same-namespace" && sameNamespace) return undefined;
  const where = `secret ${secret.metadata.namespace}/${secret.metadata.name}`;
  const mark = markOf(binding);
  const fix =
    `label it ${labels.managedBy}=klutch-bind and annotate it ${kubeconfigForAnnotation}=${mark} (klutch-bind bind does both)` +
    (sameNamespace
      ? ", or run the sync with --kubeconfig-secrets same-namespace to use any Secret of the binding's namespace"
      : "; a Secret of another namespace than the binding's must be marked, also with --kubeconfig-secrets same-namespace");
  if (secret.metadata.labels?.[labels.managedBy] !== kubeconfigSecretLabels[labels.managedBy]) {
    return `${where} is not a klutch-bind kubeconfig Secret: ${fix}`;
  }
  const { marks, old } = entries(secret);
  if (marks.includes(mark)) return undefined;
  const oldMark = old.includes(`${binding.namespace}/${binding.name}`) || (sameNamespace && old.includes(binding.name));
  if (oldMark) {
    return `${where} carries the old mark ${kubeconfigForAnnotation}, which names the binding without its kind (API group) and so serves no binding: re-mark it ${kubeconfigForAnnotation}=${mark} (kubectl annotate --overwrite; entries for other bindings comma-separated, each GROUP/NAMESPACE/NAME), or run klutch-bind bind again`;
  }
  return `${where} is not marked for AppClusterBinding ${binding.namespace}/${binding.name} (${binding.group}): ${fix}`;
}
