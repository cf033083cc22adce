// Operation mode: a WatchOperation on labelled XRDs hands the function the XRD that changed, as the
// required resource ops.crossplane.io/watched-resource. The answer is the same template and RBAC a
// ServiceExport composes, each owned by the XRD so that Kubernetes removes them when the XRD goes
// (an Operation only applies; it never deletes).
import { InputError } from "../export/errors.ts";
import { isExportLabelled, labelledExportRequest, labelledFields, xrdMetadata } from "../export/labelled.ts";
import { buildExport, exportSummary } from "../export/plan.ts";
import { parseXrd } from "../export/xrd.ts";
import { composedKeys } from "./composed-keys.ts";
import type { FunctionInput } from "./input.ts";
import { fatal, normal, setDesired, setOutput, warning } from "./response.ts";
import type { JsonObject } from "./struct.ts";
import type { RunFunctionResponse } from "./wire.ts";

export const watchedResourceRequirement = "ops.crossplane.io/watched-resource";

export function exportWatchedXrd(rsp: RunFunctionResponse, watched: JsonObject | undefined, options: FunctionInput) {
  if (watched === undefined) {
    normal(rsp, "the watched XRD is gone; what it exported goes with it (owner references)", "XRDGone");
    return;
  }
  try {
    const xrd = parseXrd(watched, "watched XRD");
    const metadata = xrdMetadata(watched.metadata, "watched XRD.metadata");
    if (metadata.deletionTimestamp !== undefined) {
      normal(rsp, `XRD ${xrd.name} is being deleted; nothing to export`, "XRDDeleting");
      return;
    }
    if (!isExportLabelled(metadata)) {
      normal(rsp, `XRD ${xrd.name} is not labelled bind.klutch.dev/export=true; nothing exported`, "NotLabelled");
      return;
    }
    const plan = buildExport(xrd, labelledExportRequest(metadata), options.defaults, labelledFields);
    // A live XRD always has a uid; one read from a file (crossplane alpha render op) may not.
    const owners = metadata.uid
      ? [
          {
            apiVersion: String(watched.apiVersion),
            kind: "CompositeResourceDefinition",
            name: xrd.name,
            uid: metadata.uid,
          },
        ]
      : undefined;
    if (owners === undefined) {
      warning(rsp, `XRD ${xrd.name} has no metadata.uid, so what it exports is not owned by it`, "NoOwner");
    }
    for (const [part, key] of Object.entries(composedKeys) as Array<[keyof typeof composedKeys, string]>) {
      const manifest = plan[part];
      if (manifest === undefined) continue;
      setDesired(
        rsp,
        key,
        owners ? { ...manifest, metadata: { ...manifest.metadata, ownerReferences: owners } } : manifest,
      );
    }
    setOutput(rsp, exportSummary(plan));
  } catch (err) {
    if (!(err instanceof InputError)) throw err;
    fatal(rsp, err.message, "InvalidInput");
  }
}
