// Reading a RunFunctionRequest: only what the caller asks for is converted from Struct.
import { type JsonObject, structToJson } from "./struct.ts";
import type { RunFunctionRequest, WireResource } from "./wire.ts";

export function observedComposite(req: RunFunctionRequest): JsonObject | undefined {
  const resource = req.observed?.composite?.resource;
  return resource ? structToJson(resource) : undefined;
}

export function observedResourceNames(req: RunFunctionRequest): Set<string> {
  return new Set(Object.keys(req.observed?.resources ?? {}));
}

export function input(req: RunFunctionRequest): JsonObject | undefined {
  return req.input ? structToJson(req.input) : undefined;
}

/**
 * The resources Crossplane fetched for a requirement: undefined while it has not looked yet,
 * [] when it looked and found nothing. Reads the current field and the deprecated one.
 */
export function requiredResources(req: RunFunctionRequest, name: string): JsonObject[] | undefined {
  const found = req.required_resources?.[name] ?? req.extra_resources?.[name];
  if (found === undefined) return undefined;
  return (found.items ?? []).flatMap((item: WireResource) => (item.resource ? [structToJson(item.resource)] : []));
}
