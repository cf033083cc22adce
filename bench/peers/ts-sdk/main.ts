// The export function on @crossplane-org/function-sdk-typescript: the same pure core as ours
// (src/export), served by the SDK, so bench/function compares the servers, not the logic.
import {
  type ComposeFunction,
  fatal,
  getObservedCompositeResource,
  getRequiredResource,
  Resource,
  requireResource,
  serve,
} from "@crossplane-org/function-sdk-typescript";
import { buildExport } from "../../../src/export/plan.ts";
import { builtinDefaults, parseServiceExportSpec } from "../../../src/export/request.ts";
import { parseXrd } from "../../../src/export/xrd.ts";

const compose: ComposeFunction = (req, rsp) => {
  try {
    const xr = getObservedCompositeResource(req)?.resource as
      | { metadata?: { name?: string }; spec?: unknown }
      | undefined;
    const request = parseServiceExportSpec(xr?.metadata?.name ?? "", xr?.spec);
    requireResource(rsp, "xrd", {
      apiVersion: "apiextensions.crossplane.io/v2",
      kind: "CompositeResourceDefinition",
      matchName: request.xrd,
    });
    const [found, resolved] = getRequiredResource(req, "xrd");
    if (!resolved || found.length === 0) return rsp;
    const plan = buildExport(parseXrd(found[0]?.resource), request, builtinDefaults);
    const composed = [
      plan.template,
      plan.clusterRole,
      plan.clusterRoleBinding,
      ...(plan.claimsRole ? [plan.claimsRole] : []),
    ];
    const keys = ["apiserviceexporttemplate", "sync-clusterrole", "sync-clusterrolebinding", "sync-claims-clusterrole"];
    composed.forEach((manifest, i) => {
      rsp.desired ??= { resources: {} };
      rsp.desired.resources[keys[i] ?? `r${i}`] = Resource.fromJSON({ resource: manifest });
    });
  } catch (err) {
    fatal(rsp, err instanceof Error ? err.message : String(err));
  }
  return rsp;
};

serve(compose);
