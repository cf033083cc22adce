// Building a RunFunctionResponse: start from the request (tag, TTL, desired state passed through
// untouched), then add what this function has an opinion on.
import { rawDesiredEntries } from "./passthrough.ts";
import { type JsonObject, jsonToStruct, structToJson } from "./struct.ts";
import type { ConditionStatus, RunFunctionRequest, RunFunctionResponse, WireResourceSelector } from "./wire.ts";

export function responseTo(req: RunFunctionRequest, ttlSeconds: number): RunFunctionResponse {
  const desired = req.desired ?? {};
  return {
    meta: { tag: req.meta?.tag ?? "", ttl: { seconds: ttlSeconds, nanos: 0 } },
    desired: {
      ...(desired.composite ? { composite: desired.composite } : {}),
      resources: { ...(desired.resources ?? {}) },
      ...(desired[rawDesiredEntries] ? { [rawDesiredEntries]: desired[rawDesiredEntries] } : {}),
    },
    results: [],
    conditions: [],
    ...(req.context ? { context: req.context } : {}),
  };
}

export function fatal(rsp: RunFunctionResponse, message: string, reason?: string): void {
  rsp.results.push({ severity: "SEVERITY_FATAL", message, ...(reason ? { reason } : {}), target: "TARGET_COMPOSITE" });
}

export function warning(rsp: RunFunctionResponse, message: string, reason?: string): void {
  rsp.results.push({
    severity: "SEVERITY_WARNING",
    message,
    ...(reason ? { reason } : {}),
    target: "TARGET_COMPOSITE",
  });
}

export function normal(rsp: RunFunctionResponse, message: string, reason?: string): void {
  rsp.results.push({ severity: "SEVERITY_NORMAL", message, ...(reason ? { reason } : {}) });
}

export function setCondition(
  rsp: RunFunctionResponse,
  type: string,
  status: boolean,
  reason: string,
  message?: string,
): void {
  const wireStatus: ConditionStatus = status ? "STATUS_CONDITION_TRUE" : "STATUS_CONDITION_FALSE";
  rsp.conditions = rsp.conditions.filter((c) => c.type !== type);
  rsp.conditions.push({
    type,
    status: wireStatus,
    reason,
    ...(message ? { message } : {}),
    target: "TARGET_COMPOSITE",
  });
}

export function requireResource(rsp: RunFunctionResponse, name: string, selector: WireResourceSelector): void {
  rsp.requirements ??= {};
  rsp.requirements.resources ??= {};
  rsp.requirements.resources[name] = selector;
}

/** Adds or replaces one composed resource; ready once Crossplane has observed it. */
export function setComposed(rsp: RunFunctionResponse, name: string, manifest: object, observed: boolean): void {
  rsp.desired.resources ??= {};
  rsp.desired.resources[name] = {
    resource: jsonToStruct(manifest as Record<string, unknown>),
    ready: observed ? "READY_TRUE" : "READY_UNSPECIFIED",
  };
}

/** Adds or replaces one desired resource with no readiness: an Operation applies it as it is. */
export function setDesired(rsp: RunFunctionResponse, name: string, manifest: object): void {
  rsp.desired.resources ??= {};
  rsp.desired.resources[name] = { resource: jsonToStruct(manifest as Record<string, unknown>) };
}

/** What an Operation records as this step's output in its status. */
export function setOutput(rsp: RunFunctionResponse, output: JsonObject): void {
  rsp.output = jsonToStruct(output);
}

/**
 * Merges fields into the desired composite's status, keeping what earlier steps desired. Only the
 * status: a function never sets the XR's spec or metadata.
 */
export function setCompositeStatus(rsp: RunFunctionResponse, observedXr: JsonObject, status: JsonObject): void {
  const current = rsp.desired.composite?.resource ? structToJson(rsp.desired.composite.resource) : {};
  const currentStatus =
    typeof current.status === "object" && current.status !== null && !Array.isArray(current.status)
      ? current.status
      : {};
  const composite = {
    ...current,
    apiVersion: observedXr.apiVersion ?? current.apiVersion ?? null,
    kind: observedXr.kind ?? current.kind ?? null,
    status: { ...currentStatus, ...status },
  };
  rsp.desired.composite = { ...(rsp.desired.composite ?? {}), resource: jsonToStruct(composite) };
}
