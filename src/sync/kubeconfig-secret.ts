// Which Secrets the sync may use as an app cluster's kubeconfig. A binding names a Secret, and
// whoever may create bindings might name one they cannot read (a provider's credentials, another
// team's kubeconfig). So by default (`--kubeconfig-secrets marked`) a Secret serves only the
// bindings it names itself, a mark that only someone who could write (and so read) the Secret can
// have put there: the label app.kubernetes.io/managed-by=klutch-bind and the annotation
// bind.klutch.dev/kubeconfig-for listing the binding names (comma-separated). `klutch-bind bind`
// and the web page set both when they create the Secret.
//
// klutch-bind itself uses any Secret a binding names. `--kubeconfig-secrets same-namespace` comes
// closer for platforms where a namespace is one tenant: an unmarked Secret of the binding's own
// namespace serves it too (whoever binds there is trusted with every Secret there); a Secret of
// another namespace must still be marked.
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

/** The label and annotation that let binding bindingName use a Secret. */
export function kubeconfigSecretMarks(bindingName: string) {
  return { labels: { ...kubeconfigSecretLabels }, annotations: { [kubeconfigForAnnotation]: bindingName } };
}

/**
 * Why the Secret may not serve the binding bindingNamespace/bindingName, or undefined when it may.
 * An entry "NAME" names a binding of the Secret's own namespace, "NAMESPACE/NAME" one of any.
 */
export function notMarkedFor(
  secret: KubeObject,
  bindingName: string,
  bindingNamespace: string,
  policy: KubeconfigSecretPolicy = "marked",
): string | undefined {
  const sameNamespace = secret.metadata.namespace === bindingNamespace;
  if (policy === "same-namespace" && sameNamespace) return undefined;
  const where = `secret ${secret.metadata.namespace}/${secret.metadata.name}`;
  const mark = sameNamespace ? bindingName : `${bindingNamespace}/${bindingName}`;
  const fix =
    `label it ${labels.managedBy}=klutch-bind and annotate it ${kubeconfigForAnnotation}=${mark} (klutch-bind bind does both)` +
    (sameNamespace
      ? ", or run the sync with --kubeconfig-secrets same-namespace to use any Secret of the binding's namespace"
      : "; a Secret of another namespace than the binding's must be marked, also with --kubeconfig-secrets same-namespace");
  if (secret.metadata.labels?.[labels.managedBy] !== kubeconfigSecretLabels[labels.managedBy]) {
    return `${where} is not a klutch-bind kubeconfig Secret: ${fix}`;
  }
  const names = (secret.metadata.annotations?.[kubeconfigForAnnotation] ?? "").split(",").map((n) => n.trim());
  const marked = names.includes(`${bindingNamespace}/${bindingName}`) || (sameNamespace && names.includes(bindingName));
  if (!marked) return `${where} is not marked for AppClusterBinding ${bindingNamespace}/${bindingName}: ${fix}`;
  return undefined;
}
