// The composition function: a ServiceExport XR in, an APIServiceExportTemplate and the sync's RBAC
// out; as an Operation step, a watched XRD in (operation.ts). A pure mapping from request to
// response; the server does all I/O.
import { InputError } from "../export/errors.ts";
import { buildExport, exportSummary } from "../export/plan.ts";
import { parseServiceExportSpec } from "../export/request.ts";
import type { ExportPlan } from "../export/types.ts";
import { parseXrd } from "../export/xrd.ts";
import { composedKeys } from "./composed-keys.ts";
import { defaultInput, type FunctionInput, parseInput } from "./input.ts";
import { exportWatchedXrd, watchedResourceRequirement } from "./operation.ts";
import { input, observedComposite, requiredResources, xrdWithoutSchemas } from "./request.ts";
import {
  fatal,
  requireResource,
  responseTo,
  setComposed,
  setCompositeStatus,
  setCondition,
  warning,
} from "./response.ts";
import type { JsonObject } from "./struct.ts";
import type { RunFunctionRequest, RunFunctionResponse } from "./wire.ts";

export const xrdRequirement = "xrd";
export const exportedCondition = "Exported";

export function runExportFunction(req: RunFunctionRequest): RunFunctionResponse {
  let options: FunctionInput;
  try {
    options = parseInput(input(req));
  } catch (err) {
    const rsp = responseTo(req, defaultInput.ttlSeconds);
    fatal(rsp, `invalid function input: ${message(err)}`, "InvalidInput");
    return rsp;
  }
  const rsp = responseTo(req, options.ttlSeconds);

  const xr = observedComposite(req);
  if (xr === undefined) {
    const watched = requiredResources(req, watchedResourceRequirement, xrdWithoutSchemas);
    if (watched !== undefined) {
      exportWatchedXrd(rsp, watched[0], options);
      return rsp;
    }
    fatal(
      rsp,
      "the request holds neither an observed composite resource (a Composition step) nor a watched resource (a WatchOperation step)",
      "NoComposite",
    );
    return rsp;
  }

  let plan: ExportPlan;
  try {
    const request = parseServiceExportSpec(compositeName(xr), xr.spec);
    requireResource(rsp, xrdRequirement, {
      api_version: options.xrdApiVersion,
      kind: "CompositeResourceDefinition",
      match_name: request.xrd,
    });
    const found = requiredResources(req, xrdRequirement, xrdWithoutSchemas);
    if (found === undefined) return rsp; // Crossplane fetches the XRD and calls again
    const [xrd] = found;
    if (xrd === undefined) {
      const text = `CompositeResourceDefinition ${request.xrd} not found; will retry`;
      setCondition(rsp, exportedCondition, false, "XRDNotFound", text);
      warning(rsp, text, "XRDNotFound");
      return rsp;
    }
    plan = buildExport(parseXrd(xrd, `XRD ${request.xrd}`), request, options.defaults);
  } catch (err) {
    if (!(err instanceof InputError)) throw err;
    setCondition(rsp, exportedCondition, false, "InvalidInput", err.message);
    fatal(rsp, err.message, "InvalidInput");
    return rsp;
  }

  const observed = req.observed?.resources ?? {};
  for (const [part, key] of Object.entries(composedKeys) as Array<[keyof typeof composedKeys, string]>) {
    const manifest = plan[part];
    if (manifest !== undefined) setComposed(rsp, key, manifest, key in observed);
  }
  const { group, resource, version } = plan.exported;
  setCompositeStatus(rsp, xr, exportSummary(plan));
  setCondition(
    rsp,
    exportedCondition,
    true,
    "Available",
    `${resource}.${group}/${version} is bindable through template ${plan.template.metadata.namespace}/${plan.template.metadata.name}`,
  );
  return rsp;
}

function compositeName(xr: JsonObject): string {
  const metadata = xr.metadata;
  const name =
    typeof metadata === "object" && metadata !== null && !Array.isArray(metadata) ? metadata.name : undefined;
  if (typeof name !== "string" || name === "")
    throw new InputError("metadata.name", "the composite resource has no name");
  return name;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
