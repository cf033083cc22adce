import type { ResourceRef } from "../kube/client.ts";

export const refs = {
  namespaces: { group: "", version: "v1", resource: "namespaces", namespaced: false },
  secrets: { group: "", version: "v1", resource: "secrets", namespaced: true },
  configMaps: { group: "", version: "v1", resource: "configmaps", namespaced: true },
  serviceAccounts: { group: "", version: "v1", resource: "serviceaccounts", namespaced: true },
  events: { group: "", version: "v1", resource: "events", namespaced: true },
  crds: { group: "apiextensions.k8s.io", version: "v1", resource: "customresourcedefinitions", namespaced: false },
  roleBindings: { group: "rbac.authorization.k8s.io", version: "v1", resource: "rolebindings", namespaced: true },
  clusterRoles: { group: "rbac.authorization.k8s.io", version: "v1", resource: "clusterroles", namespaced: false },
  clusterRoleBindings: {
    group: "rbac.authorization.k8s.io",
    version: "v1",
    resource: "clusterrolebindings",
    namespaced: false,
  },
  leases: { group: "coordination.k8s.io", version: "v1", resource: "leases", namespaced: true },
  deployments: { group: "apps", version: "v1", resource: "deployments", namespaced: true },
  xrds: {
    group: "apiextensions.crossplane.io",
    version: "v2",
    resource: "compositeresourcedefinitions",
    namespaced: false,
  },
  serviceExports: { group: "bind.klutch.dev", version: "v1alpha1", resource: "serviceexports", namespaced: false },
  bindings: { group: "bind.klutch.dev", version: "v1alpha1", resource: "appclusterbindings", namespaced: true },
  /** klutch-bind's own AppClusterBinding: served as ours is */
  klutchBindings: {
    group: "klutch.anynines.com",
    version: "v1alpha1",
    resource: "appclusterbindings",
    namespaced: true,
  },
  templates: {
    group: "example-backend.klutch.anynines.com",
    version: "v1alpha1",
    resource: "apiserviceexporttemplates",
    namespaced: true,
  },
} as const satisfies Record<string, ResourceRef>;

export function apiVersionOf(ref: ResourceRef): string {
  return ref.group === "" ? ref.version : `${ref.group}/${ref.version}`;
}
