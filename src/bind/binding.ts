// Making an AppClusterBinding, shared by `klutch-bind bind` and the web page: the app cluster's
// kubeconfig as a Secret, and the binding that names it and the exports.
import { isDnsLabel } from "../export/decode.ts";
import { KubeClient, type KubeObject } from "../kube/client.ts";
import { labels } from "../sync/naming.ts";
import { refs } from "../sync/resources.ts";
import type { BindableApi } from "./bindable.ts";
import { explain } from "./explain.ts";

/** On the kubeconfig Secrets that bind makes (CLI or web page), so unbind knows them. */
export const bindingSecretLabels = { [labels.managedBy]: "klutch-bind" };

export function isBindingSecret(secret: KubeObject | undefined): secret is KubeObject {
  return secret?.metadata.labels?.[labels.managedBy] === bindingSecretLabels[labels.managedBy];
}

/** A binding name that works for the binding and for its Secret (NAME-kubeconfig). */
export function checkBindingName(name: string): void {
  if (!isDnsLabel(name) || name.length > 52) {
    throw new Error(
      `binding name "${name}" must be lower-case letters, digits and '-', start and end with a letter or digit, at most 52 characters`,
    );
  }
}

/**
 * Checks that the kubeconfig is usable by the sync (self-contained) and that its cluster answers.
 * Returns the server and its version.
 */
export async function checkAppCluster(kubeconfig: string): Promise<{ server: string; version: string }> {
  const app = KubeClient.fromUntrustedKubeconfig(kubeconfig, { timeoutMs: 10_000 });
  try {
    const { gitVersion } = await app.serverVersion();
    return { server: app.server, version: gitVersion };
  } catch (err) {
    throw new Error(`app cluster ${app.server} unreachable: ${(err as Error).message}`);
  } finally {
    app.close();
  }
}

export type NewBinding = { name: string; namespace: string; kubeconfig: string; exports: BindableApi[] };

/** Stores the kubeconfig and creates (or updates) the binding; returns the Secret's name. */
export async function createBinding(client: KubeClient, binding: NewBinding, fieldManager: string): Promise<string> {
  const secretName = `${binding.name}-kubeconfig`;
  // known only when the caller may read secrets; then a failed binding takes a new Secret back
  const existed = await client.get(refs.secrets, secretName, binding.namespace).then(
    (s) => s !== undefined,
    () => undefined,
  );
  await client
    .apply(
      refs.secrets,
      {
        apiVersion: "v1",
        kind: "Secret",
        metadata: {
          name: secretName,
          namespace: binding.namespace,
          labels: bindingSecretLabels,
        },
        type: "Opaque",
        data: { kubeconfig: Buffer.from(binding.kubeconfig).toString("base64") },
      },
      fieldManager,
      true,
    )
    .catch((err: unknown) => {
      throw explain(err, `store the app kubeconfig as Secret ${secretName}`, client.server, binding.namespace);
    });
  await client
    .apply(
      refs.bindings,
      {
        apiVersion: "bind.klutch.dev/v1alpha1",
        kind: "AppClusterBinding",
        metadata: { name: binding.name, namespace: binding.namespace },
        spec: {
          kubeconfigSecretRef: { name: secretName, key: "kubeconfig" },
          exports: binding.exports.map((e) => ({ group: e.group, resource: e.resource })),
        },
      },
      fieldManager,
      true,
    )
    .catch(async (err: unknown) => {
      if (existed === false) await client.delete(refs.secrets, secretName, binding.namespace).catch(() => undefined);
      throw explain(err, `create AppClusterBinding ${binding.name}`, client.server, binding.namespace);
    });
  return secretName;
}
