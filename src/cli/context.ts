// The control plane a command talks to, chosen as kubectl chooses: --kubeconfig or KUBECONFIG or
// ~/.kube/config (or in-cluster), and --namespace or the context's namespace or "default".
import { KubeConfig } from "@kubernetes/client-node";
import { KubeClient } from "../kube/client.ts";

export const contextFlags = {
  kubeconfig: { type: "string" },
  namespace: { type: "string", short: "n" },
} as const;

export type CommandContext = { client: KubeClient; namespace: string };

export function controlPlane(values: {
  kubeconfig?: string | undefined;
  namespace?: string | undefined;
}): CommandContext {
  const kc = new KubeConfig();
  const path = values.kubeconfig ?? process.env.KUBECONFIG;
  if (path) kc.loadFromFile(path);
  else kc.loadFromDefault();
  const context = kc.getContextObject(kc.getCurrentContext());
  const client = KubeClient.fromKubeConfig(kc, { userAgent: "klutch-bind-cli" });
  return { client, namespace: values.namespace ?? context?.namespace ?? "default" };
}
