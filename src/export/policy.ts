// What an export may not do unless the operator says so by name, in the function input.
//
// Claims become RBAC: the sync gets get/list/watch/create/update/patch/delete on each claimed
// resource in the provider namespaces it makes, and copies such objects between clusters. For some
// resources that is as good as cluster-admin, so they are refused unless the function input lists
// them (group and resource, exactly) in allowedClaims. Wildcards and subresources are refused
// always, by the decoders (decode.ts), and an XRD in a denied group is never exported (xrd.ts).
// Secrets and configmaps stay allowed: they are what claims are for.
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

function allowed(ref: ClaimRef, allowedClaims: readonly ClaimRef[]): boolean {
  return allowedClaims.some((a) => a.group === ref.group && a.resource === ref.resource);
}

/** Where the parts of a request came from, for errors. */
export type RequestFields = { version: string; permissionClaims: string; templateNamespace: string };

export const specFields: RequestFields = {
  version: "spec.version",
  permissionClaims: "spec.permissionClaims",
  templateNamespace: "spec.templateNamespace",
};

/**
 * Refuses what the operator did not allow: an escalation-prone claim not in allowedClaims, and a
 * template namespace not in allowedTemplateNamespaces.
 */
export function checkPolicy(
  claims: readonly PermissionClaim[],
  templateNamespace: string,
  defaults: ExportDefaults,
  fields: RequestFields,
): void {
  claims.forEach((claim, i) => {
    const why = escalation(claim);
    if (why !== undefined && !allowed(claim, defaults.allowedClaims)) {
      throw new InputError(
        `${fields.permissionClaims}[${i}]`,
        `claims ${resourceId(claim)}, which is escalation-prone (${why}); ` +
          `the function input must list {group: "${claim.group}", resource: ${claim.resource}} in allowedClaims to export it`,
      );
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
    const why = escalation(claim);
    return why === undefined ? [] : [`${field}[${i}] claims ${resourceId(claim)} (${why})`];
  });
  if (risky.length === 0) return undefined;
  return `${risky.join("; ")}: escalation-prone, so the function refuses the export unless its input lists each in allowedClaims`;
}
