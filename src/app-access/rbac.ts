// The app-side RBAC of a binding's service account (see account.ts for why each rule is
// there): pure, from the bound exports and the claims accepted for them.

import { aggregatedRoles } from "../api/aggregated-roles.ts";
import { labels, managedByValue } from "../api/naming.ts";
import type { PermissionClaim } from "../export/types.ts";
import type { KubeObject } from "../kube/client.ts";
import { type AppAccount, accountObjects } from "./account.ts";

export type BoundExport = { group: string; resource: string; claims: readonly PermissionClaim[] };

export type PolicyRule = { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] };

const rbacGroup = "rbac.authorization.k8s.io";
const allVerbs = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"];
const readVerbs = ["get", "list", "watch"];
const writeVerbs = ["get", "list", "watch", "create", "update", "patch", "delete"];

/** What the sync does cluster-wide in the app cluster for these exports. */
export function mainRules(account: AppAccount, exports: readonly BoundExport[]): PolicyRule[] {
  const names = accountObjects(account);
  const sorted = [...exports].sort((a, b) => `${a.resource}.${a.group}`.localeCompare(`${b.resource}.${b.group}`));
  const rules: PolicyRule[] = [];
  if (sorted.length > 0) {
    rules.push(
      {
        apiGroups: ["apiextensions.k8s.io"],
        resources: ["customresourcedefinitions"],
        // a server-side apply that creates authorizes create with the name: these CRDs and no other
        verbs: ["get", "create", "update", "patch"],
        resourceNames: sorted.map((e) => `${e.resource}.${e.group}`),
      },
      {
        apiGroups: [rbacGroup],
        resources: ["clusterroles"],
        verbs: ["get", "create", "update", "patch"],
        resourceNames: sorted.flatMap((e) => aggregatedRoles(e.group, e.resource).map((r) => r.metadata.name)),
      },
    );
  }
  for (const e of sorted) {
    // all the aggregated admin role grants: creating that role needs each of them
    rules.push({ apiGroups: [e.group], resources: [e.resource], verbs: [...allVerbs] });
    rules.push({ apiGroups: [e.group], resources: [`${e.resource}/status`], verbs: ["get", "update", "patch"] });
  }
  rules.push(
    { apiGroups: [""], resources: ["namespaces"], verbs: ["get"], resourceNames: ["kube-system"] },
    { apiGroups: [rbacGroup], resources: ["clusterroles"], verbs: ["bind"], resourceNames: [names.claimsRole] },
    {
      apiGroups: [rbacGroup],
      resources: ["rolebindings"],
      verbs: ["get", "create", "update", "patch", "delete"],
      resourceNames: [names.claimsRoleBinding],
    },
    // its uid for the owner references, and the account's removal (the rest follows by them)
    { apiGroups: [rbacGroup], resources: ["clusterroles"], verbs: ["get", "delete"], resourceNames: [names.mainRole] },
  );
  return rules;
}

/**
 * The claimed resources of the accepted claims: written where the provider owns them (copies into
 * the app namespaces), read where the consumer does. Bound per app namespace, never cluster-wide.
 */
export function claimsRules(exports: readonly BoundExport[]): PolicyRule[] {
  const verbs = new Map<string, Set<string>>();
  for (const claim of exports.flatMap((e) => e.claims)) {
    const key = `${claim.group}\n${claim.resource}`;
    const set = verbs.get(key) ?? new Set<string>();
    // an owner-less claim's originals may be on either side: copies may be written here too
    for (const verb of claim.selector.owner === "Consumer" ? readVerbs : writeVerbs) set.add(verb);
    verbs.set(key, set);
  }
  return [...verbs.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([key, set]) => {
      const [group = "", resource = ""] = key.split("\n");
      return { apiGroups: [group], resources: [resource], verbs: writeVerbs.filter((v) => set.has(v)) };
    });
}

export function hasClaims(exports: readonly BoundExport[]): boolean {
  return exports.some((e) => e.claims.length > 0);
}

const marks = { labels: { [labels.managedBy]: managedByValue } };

/** The owner reference every object of the account carries but the main role itself. */
export function ownedBy(account: AppAccount, mainRoleUid: string) {
  return [
    { apiVersion: `${rbacGroup}/v1`, kind: "ClusterRole", name: accountObjects(account).mainRole, uid: mainRoleUid },
  ];
}

/**
 * Everything bind creates in the app cluster, in the order to create it: the namespace (shared,
 * never deleted), the main role first (the owner of the rest once its uid is known).
 */
export function appRbac(account: AppAccount, exports: readonly BoundExport[]): KubeObject[] {
  const names = accountObjects(account);
  const subject = { kind: "ServiceAccount", name: account.name, namespace: account.namespace };
  return [
    { apiVersion: "v1", kind: "Namespace", metadata: { name: account.namespace, ...marks } },
    {
      apiVersion: `${rbacGroup}/v1`,
      kind: "ClusterRole",
      metadata: { name: names.mainRole, ...marks },
      rules: mainRules(account, exports),
    },
    {
      apiVersion: "v1",
      kind: "ServiceAccount",
      metadata: { name: account.name, namespace: account.namespace, ...marks },
      automountServiceAccountToken: false,
    },
    {
      apiVersion: `${rbacGroup}/v1`,
      kind: "ClusterRole",
      metadata: { name: names.claimsRole, ...marks },
      rules: claimsRules(exports),
    },
    {
      apiVersion: `${rbacGroup}/v1`,
      kind: "ClusterRoleBinding",
      metadata: { name: names.clusterRoleBinding, ...marks },
      roleRef: { apiGroup: rbacGroup, kind: "ClusterRole", name: names.mainRole },
      subjects: [subject],
    },
    {
      apiVersion: `${rbacGroup}/v1`,
      kind: "Role",
      metadata: { name: names.tokenRole, namespace: account.namespace, ...marks },
      rules: [
        { apiGroups: [""], resources: ["serviceaccounts/token"], verbs: ["create"], resourceNames: [account.name] },
      ],
    },
    {
      apiVersion: `${rbacGroup}/v1`,
      kind: "RoleBinding",
      metadata: { name: names.tokenRoleBinding, namespace: account.namespace, ...marks },
      roleRef: { apiGroup: rbacGroup, kind: "Role", name: names.tokenRole },
      subjects: [subject],
    },
  ];
}

/** The RoleBinding that gives the account the claimed resources in one app namespace. */
export function claimsRoleBinding(account: AppAccount, namespace: string, mainRoleUid: string): KubeObject {
  const names = accountObjects(account);
  return {
    apiVersion: `${rbacGroup}/v1`,
    kind: "RoleBinding",
    metadata: {
      name: names.claimsRoleBinding,
      namespace,
      ...marks,
      ownerReferences: ownedBy(account, mainRoleUid),
    },
    roleRef: { apiGroup: rbacGroup, kind: "ClusterRole", name: names.claimsRole },
    subjects: [{ kind: "ServiceAccount", name: account.name, namespace: account.namespace }],
  };
}
