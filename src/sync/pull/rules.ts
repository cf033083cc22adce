// The rights of a pull binding's konnector on the control plane, as RBAC rules: in its cluster
// namespace (what provision.ts grants once), and in each of its provider namespaces (what the
// pull controller keeps in step with the binding's APIServiceExports). Nothing is cluster-wide.

import { binderAccount } from "../../api/pull-binding.ts";
import type { PermissionClaim } from "../../export/types.ts";

export type PolicyRule = { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] };

/** klutch-bind's verbs on bound objects and claimed resources */
export const objectVerbs = ["get", "list", "watch", "create", "update", "patch", "delete"];

const klutch = "klutch.anynines.com";

/**
 * In the cluster namespace: its ClusterBinding read and its status written (the heartbeat), the
 * exports read and their status written, namespaces and exports asked for (and withdrawn), and a
 * new token for its own account only. Nothing on Secrets, nothing on its own RBAC.
 */
export function clusterNamespaceRules(account = binderAccount): PolicyRule[] {
  return [
    { apiGroups: [klutch], resources: ["clusterbindings", "apiserviceexports"], verbs: ["get", "list", "watch"] },
    {
      apiGroups: [klutch],
      resources: ["clusterbindings/status", "apiserviceexports/status"],
      verbs: ["get", "update", "patch"],
    },
    {
      apiGroups: [klutch],
      resources: ["apiservicenamespaces", "apiserviceexportrequests"],
      verbs: ["get", "list", "watch", "create", "delete"],
    },
    { apiGroups: [""], resources: ["serviceaccounts/token"], verbs: ["create"], resourceNames: [account] },
  ];
}

export type ExportedApi = { group: string; resource: string; namespaced: boolean; claims: readonly PermissionClaim[] };

/**
 * Resources a Role must never grant, whatever a template claims: in a namespace they would reach
 * the namespace itself (delete it) or the RBAC that fences the konnector in.
 */
function refused(group: string, resource: string): boolean {
  return (group === "" && resource === "namespaces") || group === "rbac.authorization.k8s.io";
}

/**
 * In each provider namespace: klutch's seven verbs on the bound APIs' objects and on the granted
 * claims' resources, one rule per API group. A cluster-scoped API or claim has no place in a Role
 * and is left out (its objects would need cluster-wide rights).
 */
export function providerNamespaceRules(apis: readonly ExportedApi[]): PolicyRule[] {
  const byGroup = new Map<string, Set<string>>();
  const add = (group: string, resource: string) => {
    if (refused(group, resource)) return;
    let resources = byGroup.get(group);
    if (resources === undefined) {
      resources = new Set();
      byGroup.set(group, resources);
    }
    resources.add(resource);
  };
  for (const api of apis) {
    if (api.namespaced) add(api.group, api.resource);
    for (const claim of api.claims) {
      // a claim for a cluster-scoped resource says so with namespaces: [] (klutch-bind's convention)
      if (claim.selector.namespaces !== undefined && claim.selector.namespaces.length === 0) continue;
      add(claim.group, claim.resource);
    }
  }
  return [...byGroup.keys()].sort().map((group) => ({
    apiGroups: [group],
    resources: [...(byGroup.get(group) ?? [])].sort(),
    verbs: [...objectVerbs],
  }));
}
