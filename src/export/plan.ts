// XRD + export request -> APIServiceExportTemplate and the sync's least-privilege RBAC.
import { klutchClaims, klutchResource } from "./klutch-shape.ts";
import { exportNames } from "./names.ts";
import { checkPolicy, type RequestFields, specFields } from "./policy.ts";
import type { ExportDefaults, ExportPlan, ExportRequest, Manifest, PermissionClaim, Xrd } from "./types.ts";
import { selectVersion } from "./xrd.ts";

export const templateApiVersion = "example-backend.klutch.anynines.com/v1alpha1";
export const templateKind = "APIServiceExportTemplate";
export const exportAnnotation = "bind.klutch.dev/export";
/** on the template: the ClusterRole the sync binds in each provider namespace for the claims */
export const claimsRoleAnnotation = "bind.klutch.dev/claims-role";
const managedBy = { "app.kubernetes.io/managed-by": "function-klutch-bind" };

const allVerbs = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"];
const statusVerbs = ["get", "update", "patch"];
const claimVerbs = ["get", "list", "watch", "create", "update", "patch", "delete"];

/**
 * `fields` names where the parts of the request came from, for errors. Refuses what the function
 * input does not allow (policy.ts), and selectors klutch-bind would read otherwise (klutch-shape.ts).
 */
export function buildExport(
  xrd: Xrd,
  request: ExportRequest,
  defaults: ExportDefaults,
  fields: RequestFields = specFields,
): ExportPlan {
  const version = selectVersion(xrd, request.version, fields.version);
  const templateNamespace = request.templateNamespace ?? defaults.templateNamespace;
  checkPolicy(request.permissionClaims, templateNamespace, defaults, fields);
  const names = exportNames(request.name);
  const annotations = { [exportAnnotation]: request.name };
  const exported = { group: xrd.group, resource: xrd.plural, version, kind: xrd.kind, scope: xrd.scope };

  // klutch-bind's fields only, each as klutch-bind reads it (klutch-shape.ts)
  const spec: Record<string, unknown> = {
    APIServiceSelector: {
      group: xrd.group,
      resource: klutchResource(xrd.plural, `XRD ${xrd.name} spec.names.plural`),
      version,
    },
  };
  if (request.permissionClaims.length > 0) {
    spec.permissionClaims = klutchClaims(request.permissionClaims, fields.permissionClaims);
  }
  const hasClaims = request.permissionClaims.length > 0;
  const template: Manifest = {
    apiVersion: templateApiVersion,
    kind: templateKind,
    metadata: {
      name: names.template,
      namespace: templateNamespace,
      labels: { ...managedBy },
      annotations: hasClaims ? { ...annotations, [claimsRoleAnnotation]: names.claimsRole } : annotations,
    },
    spec,
  };

  const clusterRole: Manifest = {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRole",
    metadata: { name: names.clusterRole, labels: { ...managedBy }, annotations },
    rules: [
      { apiGroups: [xrd.group], resources: [xrd.plural], verbs: allVerbs },
      { apiGroups: [xrd.group], resources: [`${xrd.plural}/status`], verbs: statusVerbs },
      // Claimed resources (secrets, say) are granted per provider namespace, never cluster-wide:
      // the sync may only bind the claims role there.
      ...(hasClaims
        ? [
            {
              apiGroups: ["rbac.authorization.k8s.io"],
              resources: ["clusterroles"],
              resourceNames: [names.claimsRole],
              verbs: ["bind"],
            },
          ]
        : []),
      {
        apiGroups: ["apiextensions.k8s.io"],
        resources: ["customresourcedefinitions"],
        resourceNames: [`${xrd.plural}.${xrd.group}`],
        verbs: ["get"],
      },
    ],
  };

  const account = defaults.syncServiceAccount;
  const clusterRoleBinding: Manifest = {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRoleBinding",
    metadata: { name: names.clusterRoleBinding, labels: { ...managedBy }, annotations },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: names.clusterRole },
    subjects: [{ kind: "ServiceAccount", name: account.name, namespace: account.namespace }],
  };

  const plan: ExportPlan = { exported, template, clusterRole, clusterRoleBinding };
  if (hasClaims) {
    plan.claimsRole = {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: names.claimsRole, labels: { ...managedBy }, annotations },
      rules: claimRules(request.permissionClaims),
    };
  }
  return plan;
}

/** One rule per API group, resources sorted, so equal claims always give equal roles. */
function claimRules(claims: PermissionClaim[]) {
  const byGroup = new Map<string, Set<string>>();
  for (const claim of claims) {
    const resources = byGroup.get(claim.group) ?? new Set<string>();
    resources.add(claim.resource);
    byGroup.set(claim.group, resources);
  }
  return [...byGroup.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([group, resources]) => ({ apiGroups: [group], resources: [...resources].sort(), verbs: claimVerbs }));
}

/** What an export reports about itself: the ServiceExport's status, or an Operation step's output. */
export function exportSummary(plan: ExportPlan) {
  const { name, namespace = "" } = plan.template.metadata;
  return { exported: { ...plan.exported }, template: { name, namespace } };
}
