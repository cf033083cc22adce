// The control plane a command talks to, chosen as kubectl chooses: --kubeconfig or KUBECONFIG or
// ~/.kube/config (or in-cluster), and --namespace or the context's namespace or "default".
import { KubeClient } from "../kube/client.ts";
import { clusterAccess, defaultKubeconfig, readKubeconfigFile } from "../kube/kubeconfig.ts";

export const contextFlags = {
  kubeconfig: { type: "string" },
  namespace: { type: "string", short: "n" },
} as const;

export type CommandContext = { client: KubeClient; namespace: string };

export function controlPlane(values: {
  kubeconfig?: string | undefined;
  namespace?: string | undefined;
}): CommandContext {
  const config = values.kubeconfig ? readKubeconfigFile(values.kubeconfig) : defaultKubeconfig();
  const client = KubeClient.fromConfig(config, { userAgent: "klutch-bind-cli" });
  return { client, namespace: values.namespace ?? clusterAccess(config).namespace ?? "default" };
}
