// The cluster a command talks to, chosen as kubectl chooses: --kubeconfig or KUBECONFIG or
// ~/.kube/config (or in-cluster). For the control plane, --namespace or the context's namespace or
// "default"; for an app cluster (bind URL, unbind --app), -n is the konnector's namespace.
import { defaultKonnectorNamespace } from "../app-bind/app-objects.ts";
import { KubeClient } from "../kube/client.ts";
import { clusterAccess, defaultKubeconfig, readKubeconfigFile } from "../kube/kubeconfig.ts";
import type { FlagDefinitions } from "./help.ts";

export const contextFlags = {
  kubeconfig: {
    type: "string",
    value: "FILE",
    description: "the control plane's kubeconfig; without it, the files in KUBECONFIG, merged as kubectl does",
    env: "KUBECONFIG",
    defaultText: "~/.kube/config, else the pod's service account",
  },
  namespace: {
    type: "string",
    short: "n",
    value: "NAMESPACE",
    description: "the namespace of the bindings on the control plane",
    defaultText: 'the kubeconfig context\'s namespace, else "default"',
  },
} as const satisfies FlagDefinitions;

export type CommandContext = { client: KubeClient; namespace: string };

export function controlPlane(values: {
  kubeconfig?: string | undefined;
  namespace?: string | undefined;
}): CommandContext {
  const config = values.kubeconfig ? readKubeconfigFile(values.kubeconfig) : defaultKubeconfig();
  const client = KubeClient.fromConfig(config, { userAgent: "klutch-bind-cli" });
  return { client, namespace: values.namespace ?? clusterAccess(config).namespace ?? "default" };
}

/** --kubeconfig and -n of a command run against an app cluster; why: what the kubeconfig is for. */
export function appClusterFlags(why: string, namespaceOf: string) {
  return {
    kubeconfig: {
      type: "string",
      value: "FILE",
      description: `the app cluster's kubeconfig${why}`,
      env: "KUBECONFIG",
      defaultText: "~/.kube/config",
    },
    namespace: {
      type: "string",
      short: "n",
      value: "NAMESPACE",
      default: defaultKonnectorNamespace,
      description: `the app cluster namespace of the konnector${namespaceOf}`,
    },
  } as const satisfies FlagDefinitions;
}

/** The app cluster of --kubeconfig (or KUBECONFIG, or ~/.kube/config). */
export function appCluster(kubeconfig: string | undefined): KubeClient {
  const config = kubeconfig ? readKubeconfigFile(kubeconfig) : defaultKubeconfig();
  return KubeClient.fromConfig(config, { userAgent: "klutch-bind-cli" });
}
