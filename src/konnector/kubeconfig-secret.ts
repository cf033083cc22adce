// The control plane's kubeconfig of a binding, from the app cluster Secret its APIServiceBinding
// names: bounded in size, self-contained (no exec plugin, no file), and with a namespace in its
// current context (the binding's cluster namespace on the control plane). What is wrong is a
// reason and a message for the binding's Ready condition, never an exception.
import { createHash } from "node:crypto";
import { maxKubeconfigBytes } from "../api/pull-binding.ts";
import type { KubeObject } from "../kube/client.ts";
import { parseKubeconfig } from "../kube/kubeconfig.ts";
import { assertSelfContained } from "../kube/self-contained.ts";
import type { SecretRef } from "./binding-spec.ts";

export type ProviderKubeconfig = {
  text: string;
  /** the current context's namespace: the cluster namespace */
  namespace: string;
  /** of the text: one connection per distinct kubeconfig */
  hash: string;
};

export type KubeconfigProblem = { reason: string; message: string };

export function providerKubeconfig(
  secret: KubeObject | undefined,
  ref: SecretRef,
): ProviderKubeconfig | KubeconfigProblem {
  const where = `secret ${ref.namespace}/${ref.name}`;
  if (secret === undefined) return { reason: "KubeconfigMissing", message: `${where} does not exist` };
  const encoded = (secret.data as Record<string, unknown> | undefined)?.[ref.key];
  if (typeof encoded !== "string" || encoded === "") {
    return { reason: "KubeconfigMissing", message: `${where} has no key "${ref.key}"` };
  }
  // base64 grows by a third: a bound on the encoded text bounds the decoded one
  if (encoded.length > Math.ceil((maxKubeconfigBytes * 4) / 3) + 4) {
    return {
      reason: "KubeconfigInvalid",
      message: `${where} key "${ref.key}": larger than ${maxKubeconfigBytes / 1024} KiB`,
    };
  }
  const text = Buffer.from(encoded, "base64").toString("utf8");
  try {
    assertSelfContained(text);
    const parsed = parseKubeconfig(text);
    const current = parsed.currentContext ?? "";
    const context = parsed.contexts.get(current);
    if (context === undefined) throw new Error(`current-context "${current}" names no context`);
    const namespace = context.namespace;
    if (namespace === undefined || namespace === "") {
      throw new Error(`context "${current}" names no namespace (the binding's cluster namespace)`);
    }
    return { text, namespace, hash: kubeconfigHash(text) };
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    return { reason: "KubeconfigInvalid", message: `${where} key "${ref.key}": ${why}` };
  }
}

export function kubeconfigHash(text: string): string {
  return createHash("sha256").update(text).digest("hex").slice(0, 16);
}

export function isProblem(value: ProviderKubeconfig | KubeconfigProblem): value is KubeconfigProblem {
  return "reason" in value;
}
