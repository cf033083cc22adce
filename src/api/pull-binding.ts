// The control-plane objects of a pull binding, klutch-bind's own (klutch.anynines.com/v1alpha1):
// per bound app cluster a cluster namespace holding its ClusterBinding ("cluster"), the
// APIServiceExportRequests its konnector makes, the APIServiceExports the sync answers with, and
// the APIServiceNamespaces asking for provider namespaces. Their CRDs are in deploy/control-plane/
// (klutch-*-crd.yaml). The decoders here read what a konnector (an untrusted writer) put there:
// strict, each error naming the field.
import { parseClaims } from "../export/claims.ts";
import { apiGroup, list, object, optionalList, optionalObject, resourceName, versionName } from "../export/decode.ts";
import { InputError } from "../export/errors.ts";
import type { PermissionClaim } from "../export/types.ts";
import type { KubeObject, ResourceRef } from "../kube/client.ts";

const group = "klutch.anynines.com";
const version = "v1alpha1";
export const pullApiVersion = `${group}/${version}`;

export const pullRefs = {
  clusterBindings: { group, version, resource: "clusterbindings", namespaced: true },
  exportRequests: { group, version, resource: "apiserviceexportrequests", namespaced: true },
  exports: { group, version, resource: "apiserviceexports", namespaced: true },
  serviceNamespaces: { group, version, resource: "apiservicenamespaces", namespaced: true },
  roles: { group: "rbac.authorization.k8s.io", version: "v1", resource: "roles", namespaced: true },
} as const satisfies Record<string, ResourceRef>;

/**
 * The app cluster's side: klutch-bind's APIServiceBinding, cluster-scoped, named after the
 * APIServiceExport it binds (its CRD: deploy/app-cluster/klutch-apiservicebinding-crd.yaml).
 */
export const bindingRef = {
  group,
  version,
  resource: "apiservicebindings",
  namespaced: false,
} as const satisfies ResourceRef;

/** a control plane's kubeconfig for a binding larger than this is refused (a token one with a CA is a few KiB) */
export const maxKubeconfigBytes = 64 * 1024;

/** the one ClusterBinding of a cluster namespace is named so (klutch-bind's CRD requires it) */
export const clusterBindingName = "cluster";
/** the konnector's ServiceAccount in its cluster namespace, and its Role and RoleBindings */
export const binderAccount = "klutch-binder";

export const pullLabels = {
  /** on a cluster namespace: "true"; the sync serves pull bindings only in namespaces so labelled */
  clusterNamespace: "bind.klutch.dev/pull-binding",
  /** on a provider namespace of a pull binding: its cluster namespace */
  ownedBy: "bind.klutch.dev/cluster-namespace",
} as const;

export const pullAnnotations = {
  /** on a cluster namespace: who bound it and from which cluster, "<identity>#<cluster id>" (klutch-bind's key) */
  identity: "example-backend.klutch.anynines.com/identity",
  /**
   * on a ClusterBinding (set by an administrator, never by the konnector, which cannot write its
   * spec or metadata): the binding key its provider namespaces are named after instead of its uid,
   * so that a push binding moving to pull keeps its namespaces
   */
  bindingUid: "bind.klutch.dev/binding-uid",
  /**
   * on a cluster namespace (set by provisioning, which the konnector cannot write): the APIs bound
   * there and the claims the person accepted for each, JSON {"RESOURCE.GROUP": [claims]}; export
   * requests for other APIs or other claims fail. Absent: any templated API and template claim
   */
  boundApis: "bind.klutch.dev/bound-apis",
  /**
   * on an APIServiceBinding: what its deletion does to the provider copies, Delete or Orphan (the
   * default: nothing is lost). An annotation: klutch-bind's APIServiceBinding has no such field.
   */
  deletionPolicy: "bind.klutch.dev/deletion-policy",
} as const;

/** APIs bound to a cluster namespace (RESOURCE.GROUP) and the claims accepted for each */
export type BoundApis = Map<string, PermissionClaim[]>;

/**
 * The APIs a cluster namespace's annotation bound (pullAnnotations.boundApis); undefined when it
 * has none, empty when it does not decode (then nothing is bound: the safe reading).
 */
export function boundApis(clusterNamespace: KubeObject | undefined): BoundApis | undefined {
  const text = clusterNamespace?.metadata.annotations?.[pullAnnotations.boundApis];
  if (text === undefined) return undefined;
  const bound: BoundApis = new Map();
  try {
    const record = object(JSON.parse(text) as unknown, pullAnnotations.boundApis);
    for (const [id, claims] of Object.entries(record)) {
      bound.set(id, parseClaims(claims, `${pullAnnotations.boundApis}.${id}`));
    }
  } catch {
    return new Map();
  }
  return bound;
}

/** The annotation's text for bound (pullAnnotations.boundApis), APIs in order. */
export function boundApisText(bound: BoundApis): string {
  return JSON.stringify(Object.fromEntries([...bound].sort(([a], [b]) => a.localeCompare(b))));
}

/** on an APIServiceBinding the konnector serves: held until the konnector released its export */
export const konnectorFinalizer = "bind.klutch.dev/konnector";

export type Heartbeat = { lastHeartbeatTime?: string; heartbeatInterval?: string; konnectorVersion?: string };

/** A ClusterBinding's heartbeat fields, checked: a malformed one is reported, never trusted. */
export function decodeHeartbeat(binding: KubeObject): Heartbeat {
  const status = optionalObject(binding.status, "status") ?? {};
  const out: Heartbeat = {};
  for (const field of ["lastHeartbeatTime", "heartbeatInterval", "konnectorVersion"] as const) {
    const value = status[field];
    if (value === undefined || value === null || value === "") continue;
    if (typeof value !== "string") throw new InputError(`status.${field}`, "must be a string", value);
    out[field] = value;
  }
  return out;
}

/** A Go duration (metav1.Duration, e.g. "5m0s", "30s", "1h"), in milliseconds. */
export function parseGoDuration(text: string, field: string): number {
  if (text === "0") return 0;
  if (!/^(?:\d+(?:\.\d+)?(?:ms|us|µs|ns|h|m|s))+$/.test(text)) {
    throw new InputError(field, "must be a duration such as 5m0s", text);
  }
  const units: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 1e-3, µs: 1e-3, ns: 1e-6 };
  let ms = 0;
  for (const part of text.matchAll(/(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)/g)) {
    ms += Number(part[1]) * (units[part[2] as string] ?? 0);
  }
  return ms;
}

export type RequestedResource = { group: string; resource: string; versions: string[]; claims: PermissionClaim[] };

/** An APIServiceExportRequest's spec.resources, strictly. */
export function decodeExportRequest(request: KubeObject): RequestedResource[] {
  const spec = object(request.spec, "spec");
  const resources = list(spec.resources, "spec.resources");
  if (resources.length === 0) throw new InputError("spec.resources", "must name at least one resource");
  const seen = new Set<string>();
  return resources.map((value, i) => {
    const field = `spec.resources[${i}]`;
    const entry = object(value, field);
    for (const key of Object.keys(entry)) {
      if (!["group", "resource", "versions", "permissionClaims"].includes(key)) {
        throw new InputError(`${field}.${key}`, "is not a field of a requested resource");
      }
    }
    const parsed: RequestedResource = {
      group: entry.group === undefined ? "" : apiGroup(entry.group, `${field}.group`),
      resource: resourceName(entry.resource, `${field}.resource`),
      versions: (optionalList(entry.versions, `${field}.versions`) ?? []).map((v, j) =>
        versionName(v, `${field}.versions[${j}]`),
      ),
      claims: parseClaims(entry.permissionClaims, `${field}.permissionClaims`),
    };
    const id = `${parsed.resource}.${parsed.group}`;
    if (seen.has(id)) throw new InputError(`${field}`, `requests ${id} twice`);
    seen.add(id);
    return parsed;
  });
}

/** The claims an APIServiceExport grants (spec.permissionClaims), strictly. */
export function decodeExportClaims(exported: KubeObject): PermissionClaim[] {
  const spec = object(exported.spec, "spec");
  return parseClaims(spec.permissionClaims, "spec.permissionClaims");
}

/** The API an APIServiceExport exports: its group, plural and scope. */
export function decodeExportApi(exported: KubeObject): { group: string; resource: string; namespaced: boolean } {
  const spec = object(exported.spec, "spec");
  const names = object(spec.names, "spec.names");
  const scope = spec.scope;
  if (scope !== "Namespaced" && scope !== "Cluster") {
    throw new InputError("spec.scope", 'must be "Namespaced" or "Cluster"', scope);
  }
  return {
    group: apiGroup(spec.group, "spec.group"),
    resource: resourceName(names.plural, "spec.names.plural"),
    namespaced: scope === "Namespaced",
  };
}

/**
 * The app cluster namespace an APIServiceNamespace asks a provider namespace for (its name): an
 * object name may hold dots and 253 characters, a namespace name neither.
 */
export function serviceNamespaceTarget(serviceNamespace: KubeObject): string {
  const name = serviceNamespace.metadata.name;
  if (name.length > 63 || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name)) {
    throw new InputError(
      "metadata.name",
      "must be the app cluster namespace it mirrors: a lowercase RFC 1123 label (a-z, 0-9, '-', at most 63)",
      name,
    );
  }
  return name;
}
