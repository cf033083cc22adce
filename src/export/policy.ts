// What an export may claim: an allow list, since a deny list always trails new APIs.
//
// Claims become RBAC: the sync gets get/list/watch/create/update/patch/delete on each claimed
// resource in the provider namespaces it makes, and copies such objects between clusters. So a
// claim is allowed only when it is secrets or configmaps (what claims are for), a custom resource
// of a group the function input lists in allowedClaimGroups, or a resource the input lists (group
// and resource, exactly) in allowedClaims. Kubernetes', Crossplane's and this project's groups are
// never allowed as a group (reservedGroup), and neither are provider configs in an allowed group.
// Wildcards and subresources are refused always, by the decoders (decode.ts), and an XRD in a
// denied group is never exported (xrd.ts). deniedClaims says why the best-known ones are refused.
import { InputError } from "./errors.ts";
import type { ClaimRef, ExportDefaults, PermissionClaim } from "./types.ts";

type Denied = { group: string; resource?: string; why: string };

/** Escalation-prone claims: a whole API group (no resource) or one resource of it. */
export const deniedClaims: readonly Denied[] = [
  // whoever writes these grants permissions, or reviews them
  { group: "rbac.authorization.k8s.io", why: "RBAC: writing roles and bindings grants permissions" },
  { group: "authentication.k8s.io", why: "token and identity reviews" },
  { group: "authorization.k8s.io", why: "access reviews" },
  { group: "certificates.k8s.io", why: "certificate signing requests issue client certificates" },
  { group: "", resource: "serviceaccounts", why: "service accounts and their tokens are identities" },
  // whoever writes these runs code or changes how the API server behaves
  { group: "", resource: "pods", why: "pods run code with the namespace's secrets and service accounts" },
  { group: "", resource: "replicationcontrollers", why: "workloads run code" },
  { group: "", resource: "podtemplates", why: "pod templates feed workloads" },
  { group: "apps", why: "workloads (deployments, daemonsets, statefulsets, replicasets) run code" },
  { group: "batch", why: "jobs and cronjobs run code" },
  { group: "admissionregistration.k8s.io", why: "admission webhooks and policies see and change every request" },
  { group: "apiextensions.k8s.io", why: "custom resource definitions (and their conversion webhooks)" },
  { group: "apiregistration.k8s.io", why: "API services route API groups to any server" },
  { group: "flowcontrol.apiserver.k8s.io", why: "API priority and fairness can starve the API server" },
  { group: "node.k8s.io", why: "runtime classes choose how containers run" },
  { group: "scheduling.k8s.io", why: "priority classes preempt other workloads" },
  { group: "resource.k8s.io", why: "dynamic resource allocation hands out devices" },
  // whoever writes these reaches nodes, storage, or other tenants
  { group: "", resource: "nodes", why: "nodes" },
  { group: "", resource: "bindings", why: "pod bindings schedule pods onto nodes" },
  { group: "", resource: "namespaces", why: "namespace labels decide pod security" },
  { group: "", resource: "persistentvolumes", why: "persistent volumes can mount host paths" },
  { group: "storage.k8s.io", why: "storage classes, CSI drivers and volume attachments" },
  { group: "", resource: "services", why: "services with external IPs can intercept traffic (CVE-2020-8554)" },
  { group: "", resource: "endpoints", why: "endpoints can point services anywhere (CVE-2021-25740)" },
  { group: "discovery.k8s.io", why: "endpoint slices can point services anywhere (CVE-2021-25740)" },
  { group: "networking.k8s.io", why: "network policies and ingresses decide who reaches what" },
  { group: "gateway.networking.k8s.io", why: "gateways and routes decide who reaches what" },
  { group: "policy", why: "pod disruption budgets can block evictions and node drains" },
  { group: "coordination.k8s.io", why: "leases decide which controller leads" },
  // Crossplane and this project: composing, installing packages, exporting more
  { group: "apiextensions.crossplane.io", why: "Crossplane compositions and XRDs" },
  { group: "pkg.crossplane.io", why: "Crossplane packages run providers and functions" },
  { group: "ops.crossplane.io", why: "Crossplane operations run functions" },
  { group: "bind.klutch.dev", why: "exports and bindings of this project" },
  { group: "example-backend.klutch.anynines.com", why: "export templates name the roles the sync binds" },
];

export function resourceId({ group, resource }: ClaimRef): string {
  return group === "" ? resource : `${resource}.${group}`;
}

/** Why a claim on this resource is escalation-prone, or undefined when it is not. */
export function escalation(ref: ClaimRef): string | undefined {
  return deniedClaims.find((d) => d.group === ref.group && (d.resource === undefined || d.resource === ref.resource))
    ?.why;
}

/** What every export may claim. */
export const defaultClaims: readonly ClaimRef[] = [
  { group: "", resource: "secrets" },
  { group: "", resource: "configmaps" },
];

/** Crossplane providers' credentials: never allowed by their group alone. */
const providerConfigResources = new Set([
  "providerconfigs",
  "clusterproviderconfigs",
  "providerconfigusages",
  "clusterproviderconfigusages",
]);

/**
 * A group the input's allowedClaimGroups may not name: the core group and the other groups
 * without a dot (custom resources need one), Kubernetes' own (*.k8s.io, *.kubernetes.io), and
 * every group deniedClaims names.
 */
export function reservedGroup(group: string): string | undefined {
  if (group === "" || !group.includes(".")) return "a built-in Kubernetes API group";
  if (/(^|\.)(k8s|kubernetes)\.io$/.test(group)) return "a Kubernetes API group";
  return deniedClaims.find((d) => d.group === group)?.why;
}

/** Why a claim needs the input to name it in allowedClaims, whatever allowedClaimGroups says; undefined when it does not. */
export function needsNaming(ref: ClaimRef): string | undefined {
  if (isIn(ref, defaultClaims)) return undefined;
  return escalationOf(ref) ?? reservedGroup(ref.group);
}

/** Why the claim is refused under these defaults, or undefined when it is allowed. */
export function claimRefusal(
  ref: ClaimRef,
  defaults: Pick<ExportDefaults, "allowedClaims" | "allowedClaimGroups">,
): string | undefined {
  if (isIn(ref, defaultClaims) || isIn(ref, defaults.allowedClaims)) return undefined;
  const name = `{group: "${ref.group}", resource: ${ref.resource}} in allowedClaims to export it`;
  const why = escalationOf(ref);
  if (why !== undefined) return `which is escalation-prone (${why}); the function input must list ${name}`;
  const reserved = reservedGroup(ref.group);
  if (reserved !== undefined) {
    return `which is not allowed by default (${reserved}: allowed by name only); the function input must list ${name}`;
  }
  if (defaults.allowedClaimGroups.includes(ref.group)) return undefined;
  return (
    "which is not allowed by default (only secrets and configmaps are); the function input must list " +
    `its group "${ref.group}" in allowedClaimGroups or ${name}`
  );
}

/** A known reason, or a provider config's. */
function escalationOf(ref: ClaimRef): string | undefined {
  if (providerConfigResources.has(ref.resource)) {
    return "provider configs choose the credentials a Crossplane provider uses";
  }
  return escalation(ref);
}

function isIn(ref: ClaimRef, refs: readonly ClaimRef[]): boolean {
  return refs.some((a) => a.group === ref.group && a.resource === ref.resource);
}

/** Where the parts of a request came from, for errors. */
export type RequestFields = { version: string; permissionClaims: string; templateNamespace: string };

export const specFields: RequestFields = {
  version: "spec.version",
  permissionClaims: "spec.permissionClaims",
  templateNamespace: "spec.templateNamespace",
};

/**
 * Refuses what the operator did not allow: a claim the defaults do not allow (claimRefusal), and a
 * template namespace not in allowedTemplateNamespaces.
 */
export function checkPolicy(
  claims: readonly PermissionClaim[],
  templateNamespace: string,
  defaults: ExportDefaults,
  fields: RequestFields,
): void {
  claims.forEach((claim, i) => {
    const refused = claimRefusal(claim, defaults);
    if (refused !== undefined) {
      throw new InputError(`${fields.permissionClaims}[${i}]`, `claims ${resourceId(claim)}, ${refused}`);
    }
  });
  if (!defaults.allowedTemplateNamespaces.includes(templateNamespace)) {
    throw new InputError(
      fields.templateNamespace,
      `must be a namespace the function input allows (allowedTemplateNamespaces: ${defaults.allowedTemplateNamespaces.join(", ")})`,
      templateNamespace,
    );
  }
}

/** For the sync's auto-export, which does not know the function input: a warning, or undefined. */
export function escalationWarning(claims: readonly PermissionClaim[], field: string): string | undefined {
  const risky = claims.flatMap((claim, i) => {
    const why = needsNaming(claim);
    return why === undefined ? [] : [`${field}[${i}] claims ${resourceId(claim)} (${why})`];
  });
  if (risky.length === 0) return undefined;
  return `${risky.join("; ")}: escalation-prone, so the function refuses the export unless its input lists each in allowedClaims`;
}
