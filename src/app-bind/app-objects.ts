// What `klutch-bind bind URL` installs in the app cluster, pure: the APIServiceBinding API, the
// konnector's namespace, the Secret with the control plane's kubeconfig, the konnector's
// ServiceAccount and only the rights it needs, its Deployment, and the APIServiceBinding itself.
//
// The konnector's rights are those of a push binding's app account (app-access/rbac.ts: the bound
// CRDs and their aggregated roles by name, the bound resources, the claimed resources per app
// namespace through a RoleBinding it makes there, never cluster-wide), for every API bound in the
// cluster, plus reading the APIServiceBindings (and putting its finalizer on them) and writing their status, and in its own namespace
// its Lease and its kubeconfig Secrets (read, and written back when it renews the token). Both
// peers grant their konnector `*` on `*`.
import { createHash } from "node:crypto";
import { bindingRef } from "../api/pull-binding.ts";
import { type AppAccount, accountObjects } from "../app-access/account.ts";
import { type BoundExport, claimsRules, mainRules, type PolicyRule } from "../app-access/rbac.ts";
import type { PermissionClaim } from "../export/types.ts";
import type { KubeObject } from "../kube/client.ts";

export const defaultKonnectorNamespace = "klutch-bind";
export const konnectorAccountName = "konnector";
export const konnectorDeploymentName = "klutch-bind-konnector";
/** the Lease one konnector replica holds while it serves (klutch-bind konnector; unbind --app waits for it) */
export const konnectorLeaseName = "klutch-bind-konnector";
export const konnectorLabel = { "app.kubernetes.io/name": "klutch-bind-konnector" } as const;
const managed = { "app.kubernetes.io/managed-by": "klutch-bind" } as const;
const rbacGroup = "rbac.authorization.k8s.io";

export type AppBinding = {
  /** RESOURCE.GROUP: the APIServiceExport on the control plane and the APIServiceBinding here */
  name: string;
  group: string;
  resource: string;
  /** the claims accepted, as the export defines them */
  claims: readonly PermissionClaim[];
};

export type AppInstall = {
  namespace: string;
  image: string;
  /** the binding made now */
  binding: AppBinding;
  /** every binding the konnector serves once this one is added (this one included) */
  served: readonly AppBinding[];
  /** the control plane's kubeconfig; undefined on a dry run (the Secret shows a placeholder) */
  kubeconfig?: { text: string; server: string; clusterNamespace: string };
  replicas?: number;
};

export function konnectorAccount(namespace: string): AppAccount {
  return { namespace, name: konnectorAccountName };
}

/** One Secret per control plane and cluster namespace: binding more APIs of one reuses it. */
export function kubeconfigSecretName(server: string, clusterNamespace: string): string {
  return `kubeconfig-${createHash("sha256").update(`${server}\n${clusterNamespace}`).digest("hex").slice(0, 10)}`;
}

/** The rules the konnector holds cluster-wide: a push binding's account's, and the APIServiceBindings. */
export function konnectorRules(account: AppAccount, served: readonly AppBinding[]): PolicyRule[] {
  return [
    ...mainRules(account, served.map(boundExport)),
    // patch: its finalizer on each, held until a deleted one's export is released
    { apiGroups: [bindingRef.group], resources: [bindingRef.resource], verbs: ["get", "list", "watch", "patch"] },
    { apiGroups: [bindingRef.group], resources: [`${bindingRef.resource}/status`], verbs: ["get", "update", "patch"] },
  ];
}

function boundExport(b: AppBinding): BoundExport {
  return { group: b.group, resource: b.resource, claims: b.claims };
}

/** In its own namespace: its Lease, and its kubeconfig Secrets (read; written back on renewal). */
export function konnectorNamespaceRules(): PolicyRule[] {
  return [
    {
      apiGroups: ["coordination.k8s.io"],
      resources: ["leases"],
      verbs: ["get", "list", "watch", "create", "update", "patch"],
    },
    { apiGroups: [""], resources: ["secrets"], verbs: ["get", "list", "watch", "patch", "update"] },
  ];
}

export function appObjects(install: AppInstall, bindingCrd: KubeObject): KubeObject[] {
  const { namespace } = install;
  const account = konnectorAccount(namespace);
  const names = accountObjects(account);
  const subject = { kind: "ServiceAccount", name: account.name, namespace };
  const meta = (name: string, ns?: string) => ({ name, ...(ns ? { namespace: ns } : {}), labels: { ...managed } });
  const secretName = install.kubeconfig
    ? kubeconfigSecretName(install.kubeconfig.server, install.kubeconfig.clusterNamespace)
    : "kubeconfig-dry-run";
  const konnectorRole = `${names.mainRole}:namespace`;
  return [
    bindingCrd,
    { apiVersion: "v1", kind: "Namespace", metadata: meta(namespace) },
    {
      apiVersion: "v1",
      kind: "Secret",
      metadata: meta(secretName, namespace),
      type: "Opaque",
      stringData: {
        kubeconfig: install.kubeconfig?.text ?? "# dry run: the control plane's kubeconfig for the binding goes here",
      },
    },
    { apiVersion: "v1", kind: "ServiceAccount", metadata: meta(account.name, namespace) },
    {
      apiVersion: `${rbacGroup}/v1`,
      kind: "ClusterRole",
      metadata: meta(names.mainRole),
      rules: konnectorRules(account, install.served),
    },
    {
      apiVersion: `${rbacGroup}/v1`,
      kind: "ClusterRole",
      metadata: meta(names.claimsRole),
      rules: claimsRules(install.served.map(boundExport)),
    },
    {
      apiVersion: `${rbacGroup}/v1`,
      kind: "ClusterRoleBinding",
      metadata: meta(names.clusterRoleBinding),
      roleRef: { apiGroup: rbacGroup, kind: "ClusterRole", name: names.mainRole },
      subjects: [subject],
    },
    {
      apiVersion: `${rbacGroup}/v1`,
      kind: "Role",
      metadata: meta(konnectorRole, namespace),
      rules: konnectorNamespaceRules(),
    },
    {
      apiVersion: `${rbacGroup}/v1`,
      kind: "RoleBinding",
      metadata: meta(konnectorRole, namespace),
      roleRef: { apiGroup: rbacGroup, kind: "Role", name: konnectorRole },
      subjects: [subject],
    },
    konnectorDeployment(install),
    {
      apiVersion: `${bindingRef.group}/${bindingRef.version}`,
      kind: "APIServiceBinding",
      metadata: meta(install.binding.name),
      spec: {
        kubeconfigSecretRef: { namespace, name: secretName, key: "kubeconfig" },
        permissionClaims: install.binding.claims.map((c) => ({ ...c, state: "Accepted" })),
      },
    },
  ];
}

function konnectorDeployment(install: AppInstall): KubeObject {
  const fieldRef = (fieldPath: string) => ({ valueFrom: { fieldRef: { fieldPath } } });
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: {
      name: konnectorDeploymentName,
      namespace: install.namespace,
      labels: { ...managed, ...konnectorLabel },
    },
    spec: {
      // one serves at a time (its Lease); the other takes over within the lease duration
      replicas: install.replicas ?? 2,
      selector: { matchLabels: { ...konnectorLabel } },
      template: {
        metadata: { labels: { ...konnectorLabel } },
        spec: {
          serviceAccountName: konnectorAccountName,
          terminationGracePeriodSeconds: 30,
          containers: [
            {
              name: "konnector",
              image: install.image,
              args: [
                "konnector",
                `--app-account=${install.namespace}/${konnectorAccountName}`,
                "--metrics-address=:8080",
                "--health-address=:8081",
              ],
              env: [
                { name: "POD_NAMESPACE", ...fieldRef("metadata.namespace") },
                { name: "POD_NAME", ...fieldRef("metadata.name") },
              ],
              ports: [
                { name: "metrics", containerPort: 8080 },
                { name: "health", containerPort: 8081 },
              ],
              readinessProbe: { httpGet: { path: "/readyz", port: "health" } },
              livenessProbe: { httpGet: { path: "/healthz", port: "health" } },
              resources: { requests: { cpu: "50m", memory: "96Mi" }, limits: { memory: "512Mi" } },
              securityContext: {
                runAsNonRoot: true,
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ["ALL"] },
              },
            },
          ],
        },
      },
    },
  };
}
