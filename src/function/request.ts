// Reading a RunFunctionRequest: only what the caller asks for is converted from Struct.
import { type JsonObject, structToJson, type WireStruct, type WireValue } from "./struct.ts";
import type { RunFunctionRequest, WireResource } from "./wire.ts";

export function observedComposite(req: RunFunctionRequest): JsonObject | undefined {
  const resource = req.observed?.composite?.resource;
  return resource ? structToJson(resource) : undefined;
}

export function input(req: RunFunctionRequest): JsonObject | undefined {
  return req.input ? structToJson(req.input) : undefined;
}

/**
 * The resources Crossplane fetched for a requirement: undefined while it has not looked yet,
 * [] when it looked and found nothing. Reads the current field and the deprecated one.
 */
export function requiredResources(
  req: RunFunctionRequest,
  name: string,
  convert: (resource: WireStruct) => JsonObject = structToJson,
): JsonObject[] | undefined {
  const found = req.required_resources?.[name] ?? req.extra_resources?.[name];
  if (found === undefined) return undefined;
  return (found.items ?? []).flatMap((item: WireResource) => (item.resource ? [convert(item.resource)] : []));
}

function without(struct: WireStruct | undefined, key: string): WireStruct {
  const { [key]: _, ...rest } = struct?.fields ?? {};
  return { fields: rest };
}

/**
 * An XRD as JSON without its versions' schemas: the export reads none of them, and they are most
 * of an XRD's size (converting them was most of a call's time).
 */
export function xrdWithoutSchemas(xrd: WireStruct): JsonObject {
  const spec = xrd.fields?.spec;
  if (spec?.kind !== "structValue") return structToJson(xrd);
  const versions = spec.structValue.fields?.versions;
  if (versions?.kind !== "listValue") return structToJson(xrd);
  const stripped: WireValue = {
    kind: "listValue",
    listValue: {
      values: (versions.listValue.values ?? []).map((v) =>
        v.kind === "structValue" ? { kind: "structValue", structValue: without(v.structValue, "schema") } : v,
      ),
    },
  };
  return structToJson({
    fields: {
      ...xrd.fields,
      spec: { kind: "structValue", structValue: { fields: { ...spec.structValue.fields, versions: stripped } } },
    },
  });
}
