// klutch-bind's own binding kind (klutch.anynines.com AppClusterBinding) of a SyncEnv's API, as
// `klutch-bind bind` writes it, and a kubeconfig Secret beside it carrying the marks a test gives.

import { refs } from "../../src/api/resources.ts";
import type { KubeObject } from "../../src/kube/client.ts";
import type { SyncEnv } from "./sync-env.ts";

/** The Secret NAME-kubeconfig in env's binding namespace holding kubeconfig, with these labels and annotations. */
export async function markedKubeconfigSecret(
  env: SyncEnv,
  name: string,
  kubeconfig: string,
  marks: { labels?: Record<string, string>; annotations?: Record<string, string> },
): Promise<KubeObject> {
  return env.controlClient.create(refs.secrets, {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: `${name}-kubeconfig`, namespace: env.bindingNamespace, ...marks },
    data: { kubeconfig: Buffer.from(kubeconfig).toString("base64") },
  });
}

/** klutch-bind's AppClusterBinding NAME of env's API, its kubeconfig in the Secret NAME-kubeconfig. */
export async function klutchBinding(env: SyncEnv, name: string): Promise<KubeObject> {
  const namespace = env.bindingNamespace;
  return env.controlClient.create(refs.klutchBindings, {
    apiVersion: "klutch.anynines.com/v1alpha1",
    kind: "AppClusterBinding",
    metadata: { name, namespace },
    spec: {
      kubeconfigSecretRef: { name: `${name}-kubeconfig`, namespace, key: "kubeconfig" },
      apiExports: [{ group: env.ref.group, resource: env.ref.resource }],
    },
  });
}
