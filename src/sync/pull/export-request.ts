// The answer to one APIServiceExportRequest: the APIServiceExports it asks for, made from the
// control plane's CRD of each API and the claims the request accepted; or why it fails. A requested
// API needs a template (found as push bindings find theirs, template-choice.ts), and each claim
// named must be one of that template's claims exactly as the template states it.
import { isDeepStrictEqual } from "node:util";
import { decodeExportRequest, pullApiVersion, type RequestedResource } from "../../api/pull-binding.ts";
import { exportTemplate } from "../../api/template-choice.ts";
import { parseClaims } from "../../export/claims.ts";
import { InputError } from "../../export/errors.ts";
import type { PermissionClaim } from "../../export/types.ts";
import type { KubeObject } from "../../kube/client.ts";

export type RequestAnswer =
  | { phase: "Succeeded"; exports: KubeObject[] }
  | { phase: "Failed"; reason: string; message: string }
  /** not decidable yet (a CRD missing or not served): asked again later */
  | { phase: "Pending"; message: string };

type CrdVersion = {
  name: string;
  served?: boolean;
  storage?: boolean;
  deprecated?: boolean;
  deprecationWarning?: string;
  schema?: { openAPIV3Schema?: unknown };
  subresources?: unknown;
  additionalPrinterColumns?: unknown;
};

function failed(reason: string, message: string): RequestAnswer {
  return { phase: "Failed", reason, message };
}

/**
 * request: the APIServiceExportRequest; templates: those the sync reads; crdOf: the control plane's
 * CRD of resource.group, undefined when there is none; bound: the APIs provisioning bound to the
 * cluster namespace and the claims accepted for each, when it recorded them (a request for another
 * API, or a claim not accepted, fails).
 */
export async function answerRequest(
  request: KubeObject,
  templates: readonly KubeObject[],
  crdOf: (group: string, resource: string) => Promise<KubeObject | undefined>,
  bound?: ReadonlyMap<string, readonly PermissionClaim[]>,
): Promise<RequestAnswer> {
  const clusterNamespace = request.metadata.namespace ?? "";
  let wanted: RequestedResource[];
  try {
    wanted = decodeExportRequest(request);
  } catch (err) {
    if (err instanceof InputError) return failed("InvalidRequest", err.message);
    throw err;
  }
  const exports: KubeObject[] = [];
  for (const [i, want] of wanted.entries()) {
    const id = `${want.resource}.${want.group}`;
    const accepted = bound?.get(id);
    if (bound !== undefined && accepted === undefined) {
      return failed(
        "NotBound",
        `spec.resources[${i}]: ${id} was not bound to this cluster namespace (bound: ${[...bound.keys()].sort().join(", ") || "none"}); bind it from the page`,
      );
    }
    for (const [j, claim] of want.claims.entries()) {
      if (accepted !== undefined && !accepted.some((a) => isDeepStrictEqual(a, claim))) {
        return failed(
          "ClaimNotAccepted",
          `spec.resources[${i}].permissionClaims[${j}]: ${claim.resource}.${claim.group} was not accepted when ${id} was bound; bind it again from the page to accept it`,
        );
      }
    }
    const chosen = exportTemplate(templates, want.group, want.resource, clusterNamespace);
    if ("message" in chosen) return failed(chosen.conflict ? "TemplateConflict" : "NoTemplate", chosen.message);
    const template = chosen.template;
    const where = `template ${template.metadata.namespace}/${template.metadata.name}`;
    let offered: PermissionClaim[];
    try {
      offered = parseClaims(
        (template.spec as { permissionClaims?: unknown }).permissionClaims,
        `${where} spec.permissionClaims`,
      );
    } catch (err) {
      if (err instanceof InputError) return failed("InvalidTemplate", err.message);
      throw err;
    }
    for (const [j, claim] of want.claims.entries()) {
      if (!offered.some((o) => isDeepStrictEqual(o, claim))) {
        return failed(
          "ClaimNotOffered",
          `spec.resources[${i}].permissionClaims[${j}]: ${claim.resource}.${claim.group} as requested is not one of the claims of ${where} (claims are accepted as the template states them)`,
        );
      }
    }
    const crd = await crdOf(want.group, want.resource);
    if (crd === undefined) return { phase: "Pending", message: `the control plane has no CRD ${id} yet` };
    const spec = crd.spec as {
      group: string;
      scope: string;
      names: Record<string, unknown>;
      versions?: CrdVersion[];
    };
    if (spec.scope !== "Namespaced") {
      return failed("ClusterScoped", `${id} is cluster-scoped: pull bindings export namespaced APIs only (yet)`);
    }
    const versions = (spec.versions ?? []).filter((v) => v.served !== false);
    for (const v of want.versions) {
      if (!versions.some((s) => s.name === v)) {
        return failed("UnknownVersion", `spec.resources[${i}].versions: ${id} has no served version ${v}`);
      }
    }
    const chosenVersions = want.versions.length > 0 ? versions.filter((v) => want.versions.includes(v.name)) : versions;
    if (chosenVersions.length === 0) return failed("UnknownVersion", `${id} serves no version`);
    // exactly one storage version among those exported (the app cluster's CRD needs one)
    const storage = chosenVersions.find((v) => v.storage === true)?.name ?? chosenVersions[0]?.name;
    exports.push({
      apiVersion: pullApiVersion,
      kind: "APIServiceExport",
      metadata: { name: id, namespace: clusterNamespace },
      spec: {
        group: spec.group,
        names: spec.names,
        scope: "Namespaced",
        informerScope: "Namespaced",
        versions: chosenVersions.map((v) => ({
          name: v.name,
          served: true,
          storage: v.name === storage,
          ...(v.deprecated ? { deprecated: true } : {}),
          ...(v.deprecationWarning ? { deprecationWarning: v.deprecationWarning } : {}),
          schema: {
            openAPIV3Schema: v.schema?.openAPIV3Schema ?? {
              type: "object",
              "x-kubernetes-preserve-unknown-fields": true,
            },
          },
          ...(v.subresources ? { subresources: v.subresources } : {}),
          ...(v.additionalPrinterColumns ? { additionalPrinterColumns: v.additionalPrinterColumns } : {}),
        })),
        permissionClaims: want.claims,
      },
    });
  }
  return { phase: "Succeeded", exports };
}
