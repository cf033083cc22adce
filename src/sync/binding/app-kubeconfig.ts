// The kubeconfig an AppClusterBinding names, read from its Secret under the kubeconfig Secret
// policy (api/kubeconfig-secret.ts), and the client for the app cluster behind it.
import { markedBinding, specOf } from "../../api/binding-spec.ts";
import { type KubeconfigSecretPolicy, notMarkedFor } from "../../api/kubeconfig-secret.ts";
import { refs } from "../../api/resources.ts";
import { type ClientOptions, KubeClient, type KubeObject } from "../../kube/client.ts";

/** an app cluster answers each request within this, unless the options say otherwise */
export const defaultAppTimeoutMs = 10_000;

export type Kubeconfig =
  | { ok: true; secret: KubeObject; key: string; text: string }
  | { ok: false; secret: KubeObject | undefined; reason: string; message: string };

/**
 * The kubeconfig a binding names: from a Secret that names the binding itself, or with policy
 * same-namespace any Secret of the binding's namespace (see api/kubeconfig-secret.ts), or why there is
 * none to use.
 */
export async function readKubeconfig(
  control: KubeClient,
  binding: KubeObject,
  policy: KubeconfigSecretPolicy = "marked",
): Promise<Kubeconfig> {
  const ref = specOf(binding).kubeconfigSecretRef;
  const name = ref?.name;
  const key = ref?.key ?? "kubeconfig";
  // klutch-bind's binding may name a Secret of another namespace: the Secret must then name the
  // binding with its namespace (see api/kubeconfig-secret.ts)
  const namespace = ref?.namespace || binding.metadata.namespace;
  if (!name) {
    return {
      ok: false,
      secret: undefined,
      reason: "InvalidSpec",
      message: "spec.kubeconfigSecretRef.name is required",
    };
  }
  const secret = await control.get(refs.secrets, name, namespace);
  const encoded = (secret?.data as Record<string, unknown> | undefined)?.[key];
  if (secret === undefined || typeof encoded !== "string") {
    const what = secret === undefined ? "does not exist" : `has no key "${key}"`;
    return {
      ok: false,
      secret,
      reason: "KubeconfigMissing",
      message: `secret ${namespace}/${name} ${what}`,
    };
  }
  const unmarked = notMarkedFor(secret, markedBinding(binding), policy);
  if (unmarked !== undefined) return { ok: false, secret, reason: "KubeconfigNotMarked", message: unmarked };
  return { ok: true, secret, key, text: Buffer.from(encoded, "base64").toString("utf8") };
}

/** A client for the app cluster behind a kubeconfig someone else wrote; throws saying what is wrong with it. */
export function appClient(kubeconfig: Extract<Kubeconfig, { ok: true }>, options: ClientOptions = {}): KubeClient {
  try {
    return KubeClient.fromUntrustedKubeconfig(kubeconfig.text, { timeoutMs: defaultAppTimeoutMs, ...options });
  } catch (err) {
    const { namespace, name } = kubeconfig.secret.metadata;
    const why = err instanceof Error ? err.message : String(err);
    throw new Error(`secret ${namespace}/${name} key "${kubeconfig.key}": ${why}`);
  }
}
