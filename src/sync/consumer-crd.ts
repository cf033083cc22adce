// The app cluster's copy of an exported CRD, and the roles that open it to the app team.
import type { KubeClient, KubeObject } from "../kube/client.ts";
import { isEstablished } from "../kube/conditions.ts";
import { fieldManager, labels, managedByValue } from "./naming.ts";
import { refs } from "./resources.ts";

type CrdVersion = { name: string; served?: boolean; storage?: boolean; [field: string]: unknown };
type CrdSpec = { group: string; names: Record<string, unknown>; scope: string; versions: CrdVersion[] };

/**
 * Every served version with its schema, subresources and printer columns; no conversion webhook
 * (the app cluster cannot reach the provider's), so one storage version among the served ones.
 */
export function consumerCrd(provider: KubeObject): KubeObject {
  const spec = provider.spec as CrdSpec;
  const served = spec.versions.filter((v) => v.served);
  const storage = served.find((v) => v.storage)?.name ?? served[0]?.name;
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: provider.metadata.name, labels: { [labels.managedBy]: managedByValue } },
    spec: {
      group: spec.group,
      names: spec.names,
      scope: spec.scope,
      versions: served.map((v) => ({ ...v, storage: v.name === storage })),
    },
  };
}

const roles = {
  admin: ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"],
  edit: ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"],
  view: ["get", "list", "watch"],
} as const;

/** ClusterRoles aggregating the bound API into the app cluster's admin, edit and view. */
export function aggregatedRoles(group: string, plural: string): KubeObject[] {
  return Object.entries(roles).map(([role, verbs]) => ({
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRole",
    metadata: {
      name: `klutch-bind:${plural}.${group}:${role}`,
      labels: { [`rbac.authorization.k8s.io/aggregate-to-${role}`]: "true", [labels.managedBy]: managedByValue },
    },
    rules: [{ apiGroups: [group], resources: [plural], verbs: [...verbs] }],
  }));
}

/** Installs (or updates) the exported API in the app cluster; true once its CRD is established there. */
export async function installApi(app: KubeClient, providerCrd: KubeObject): Promise<boolean> {
  const spec = providerCrd.spec as CrdSpec;
  await app.apply(refs.crds, consumerCrd(providerCrd), fieldManager, true);
  for (const role of aggregatedRoles(spec.group, String(spec.names.plural))) {
    await app.apply(refs.clusterRoles, role, fieldManager, true);
  }
  return isEstablished(await app.get(refs.crds, providerCrd.metadata.name));
}
