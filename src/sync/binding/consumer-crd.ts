// The app cluster's copy of an exported CRD, and the roles that open it to the app team.
import { aggregatedRoles } from "../../api/aggregated-roles.ts";
import { annotations, fieldManager, labels, managedByValue } from "../../api/naming.ts";
import { refs } from "../../api/resources.ts";
import { KubeApiError, type KubeClient, type KubeObject } from "../../kube/client.ts";
import { isEstablished } from "../../kube/conditions.ts";
import type { Named } from "./cluster-owners.ts";

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

/**
 * Installs (or updates) the exported API in the app cluster; the CRD there as it is afterwards. The
 * apply leaves the holder's mark alone: it never sets it, and so never takes it away.
 */
export async function installApi(app: KubeClient, providerCrd: KubeObject): Promise<KubeObject | undefined> {
  const spec = providerCrd.spec as CrdSpec;
  await app.apply(refs.crds, consumerCrd(providerCrd), fieldManager, true);
  for (const role of aggregatedRoles(spec.group, String(spec.names.plural))) {
    await app.apply(refs.clusterRoles, role, fieldManager, true);
  }
  return app.get(refs.crds, providerCrd.metadata.name);
}

/**
 * Marks the API's CRD crd in the app cluster as held by the binding owner (cluster-owners.ts), if
 * it did not change since it was read (a 409 Conflict otherwise): of two bindings marking at once,
 * one wins. The CRD as marked.
 */
export function markApi(app: KubeClient, crd: KubeObject, owner: Required<Named>): Promise<KubeObject> {
  const patch = {
    metadata: {
      resourceVersion: crd.metadata.resourceVersion,
      labels: { [labels.binding]: owner.uid },
      annotations: { [annotations.boundBy]: owner.key },
    },
  };
  return app.mergePatch(refs.crds, crd.metadata.name, undefined, patch);
}

/**
 * The bindings the app cluster names as holding the API of its CRD crd (undefined: not installed):
 * the CRD's mark, else (an API installed before marks) the owner labels of its objects other than
 * myUid's.
 */
export async function namedOwners(app: KubeClient, crd: KubeObject | undefined, myUid: string): Promise<Named[]> {
  if (crd === undefined) return [];
  const mark = crd.metadata.labels?.[labels.binding];
  if (mark !== undefined) {
    const key = crd.metadata.annotations?.[annotations.boundBy];
    return [key === undefined ? { uid: mark } : { uid: mark, key }];
  }
  const spec = crd.spec as Partial<CrdSpec> | undefined;
  const version = spec?.versions?.find((v) => v.storage)?.name;
  const plural = spec?.names?.plural;
  if (spec?.group === undefined || version === undefined || typeof plural !== "string" || !isEstablished(crd)) {
    return [];
  }
  const ref = { group: spec.group, version, resource: plural, namespaced: spec.scope === "Namespaced" };
  const labelled = await app
    .list(ref, { labelSelector: `${labels.binding},${labels.binding}!=${myUid}` })
    .catch((err: unknown) => {
      if (err instanceof KubeApiError && err.code === 404) return { items: [] };
      throw err;
    });
  const uids = new Set(labelled.items.flatMap((o) => o.metadata.labels?.[labels.binding] ?? []));
  return [...uids].map((uid) => ({ uid }));
}
