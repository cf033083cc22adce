// google.protobuf.Struct as @grpc/proto-loader decodes it (oneofs: true) <-> plain JSON.

export type WireValue =
  | { kind?: "nullValue"; nullValue?: "NULL_VALUE" | number }
  | { kind: "numberValue"; numberValue: number }
  | { kind: "stringValue"; stringValue: string }
  | { kind: "boolValue"; boolValue: boolean }
  | { kind: "structValue"; structValue: WireStruct }
  | { kind: "listValue"; listValue: { values?: WireValue[] } };

export type WireStruct = { fields?: Record<string, WireValue> };

export type Json = null | number | string | boolean | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export function structToJson(struct: WireStruct | null | undefined): JsonObject {
  const out: JsonObject = {};
  const fields = struct?.fields;
  if (fields === undefined) return out;
  for (const key of Object.keys(fields)) out[key] = valueToJson(fields[key]);
  return out;
}

function valueToJson(value: WireValue | undefined): Json {
  switch (value?.kind) {
    case "numberValue":
      return value.numberValue;
    case "stringValue":
      return value.stringValue;
    case "boolValue":
      return value.boolValue;
    case "structValue":
      return structToJson(value.structValue);
    case "listValue":
      return (value.listValue.values ?? []).map(valueToJson);
    default:
      return null;
  }
}

export function jsonToStruct(obj: Readonly<Record<string, unknown>>): WireStruct {
  const fields: Record<string, WireValue> = {};
  for (const key of Object.keys(obj)) {
    const v = obj[key];
    if (v !== undefined) fields[key] = jsonToValue(v);
  }
  return { fields };
}

function jsonToValue(v: unknown): WireValue {
  if (v === null) return { kind: "nullValue", nullValue: "NULL_VALUE" };
  switch (typeof v) {
    case "number":
      return { kind: "numberValue", numberValue: v };
    case "string":
      return { kind: "stringValue", stringValue: v };
    case "boolean":
      return { kind: "boolValue", boolValue: v };
    case "object":
      return Array.isArray(v)
        ? { kind: "listValue", listValue: { values: v.filter((x) => x !== undefined).map(jsonToValue) } }
        : { kind: "structValue", structValue: jsonToStruct(v as Record<string, unknown>) };
    default:
      throw new TypeError(`cannot encode a ${typeof v} in a protobuf Struct`);
  }
}
