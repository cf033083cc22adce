// Service accounts on a test cluster, with tokens from TokenRequest: real users for RBAC tests.
import { KubeConfig } from "@kubernetes/client-node";
import { refs } from "../../src/api/resources.ts";
import type { KubeClient } from "../../src/kube/client.ts";

export type Account = { name: string; namespace: string; username: string; token: string };

export async function serviceAccount(admin: KubeClient, namespace: string, name: string): Promise<Account> {
  await admin.apply(
    refs.serviceAccounts,
    { apiVersion: "v1", kind: "ServiceAccount", metadata: { name, namespace } },
    "test",
  );
  const minted = await admin.request<{ status: { token: string } }>(
    "POST",
    `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`,
    { body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenRequest", spec: { expirationSeconds: 3600 } } },
  );
  return { name, namespace, username: `system:serviceaccount:${namespace}:${name}`, token: minted.status.token };
}

/** Binds a ClusterRole to the account, in one namespace or (namespace undefined) cluster-wide. */
export async function grant(admin: KubeClient, account: Account, clusterRole: string, namespace?: string) {
  const subjects = [{ kind: "ServiceAccount", name: account.name, namespace: account.namespace }];
  const roleRef = { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: clusterRole };
  const name = `${account.namespace}-${account.name}-${clusterRole.replaceAll(":", "-")}`;
  if (namespace === undefined) {
    await admin.apply(
      refs.clusterRoleBindings,
      { apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRoleBinding", metadata: { name }, roleRef, subjects },
      "test",
    );
    return;
  }
  await admin.apply(
    refs.roleBindings,
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name, namespace },
      roleRef,
      subjects,
    },
    "test",
  );
}

/** A kubeconfig for the account against the admin's cluster. */
export function accountKubeconfig(admin: KubeConfig, account: Account): KubeConfig {
  const cluster = admin.getCurrentCluster();
  if (cluster === null) throw new Error("admin kubeconfig has no cluster");
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [cluster],
    users: [{ name: account.name, token: account.token }],
    contexts: [{ name: account.name, cluster: cluster.name, user: account.name }],
    currentContext: account.name,
  });
  return kc;
}
