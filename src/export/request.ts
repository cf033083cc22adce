import { parseClaims } from "./claims.ts";
import { dnsSubdomain, namespaceName, object, optionalString, versionName } from "./decode.ts";
import type { ExportDefaults, ExportRequest } from "./types.ts";

/** Decodes the spec of a ServiceExport named `name`. */
export function parseServiceExportSpec(name: string, value: unknown, field = "spec"): ExportRequest {
  const spec = object(value, field);
  const request: ExportRequest = {
    name,
    xrd: dnsSubdomain(spec.xrd, `${field}.xrd`),
    permissionClaims: parseClaims(spec.permissionClaims, `${field}.permissionClaims`),
  };
  const version = optionalString(spec.version, `${field}.version`);
  if (version !== undefined && version !== "") request.version = versionName(version, `${field}.version`);
  if (spec.templateNamespace !== undefined && spec.templateNamespace !== "") {
    request.templateNamespace = namespaceName(spec.templateNamespace, `${field}.templateNamespace`);
  }
  return request;
}

export const builtinDefaults: ExportDefaults = {
  templateNamespace: "crossplane-system",
  syncServiceAccount: { name: "klutch-bind-sync", namespace: "crossplane-system" },
  allowedClaims: [],
  allowedClaimGroups: [],
  allowedTemplateNamespaces: ["crossplane-system"],
};
