// Export by label: an XRD labelled bind.klutch.dev/export=true asks to be bindable, with its
// permission claims in the bind.klutch.dev/permission-claims annotation (YAML or JSON). Used by
// the sync's auto-export and by the function's operation mode, so both read the XRD the same way.
import { parse as parseYaml } from "yaml";
import { parseClaims } from "./claims.ts";
import { nonEmptyString, object, optionalObject, optionalString, stringMap } from "./decode.ts";
import { InputError } from "./errors.ts";
import type { RequestFields } from "./policy.ts";
import type { ExportRequest, PermissionClaim } from "./types.ts";

export const exportLabel = "bind.klutch.dev/export";
export const claimsAnnotation = "bind.klutch.dev/permission-claims";
/** where a labelled XRD's claims are, in errors */
export const claimsField = `metadata.annotations["${claimsAnnotation}"]`;

/** Where the parts of a labelled XRD's request come from, for errors (the template namespace is the input's). */
export const labelledFields: RequestFields = {
  version: "the XRD's versions",
  permissionClaims: claimsField,
  templateNamespace: "input.templateNamespace",
};

export type XrdMetadata = { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };

export type WatchedXrdMetadata = XrdMetadata & { uid?: string; deletionTimestamp?: string };

/** Decodes the metadata this file reads from an XRD given as plain JSON (the function's input). */
export function xrdMetadata(value: unknown, field: string): WatchedXrdMetadata {
  const metadata = object(value, field);
  const labels = optionalObject(metadata.labels, `${field}.labels`);
  const annotations = optionalObject(metadata.annotations, `${field}.annotations`);
  const uid = optionalString(metadata.uid, `${field}.uid`);
  const deletionTimestamp = optionalString(metadata.deletionTimestamp, `${field}.deletionTimestamp`);
  return {
    name: nonEmptyString(metadata.name, `${field}.name`),
    ...(labels ? { labels: stringMap(labels, `${field}.labels`) } : {}),
    ...(annotations ? { annotations: stringMap(annotations, `${field}.annotations`) } : {}),
    ...(uid !== undefined ? { uid } : {}),
    ...(deletionTimestamp !== undefined ? { deletionTimestamp } : {}),
  };
}

export function isExportLabelled(metadata: XrdMetadata): boolean {
  return metadata.labels?.[exportLabel] === "true";
}

/** Claims from the annotation; none when absent. Throws InputError naming the annotation. */
export function claimsFromAnnotation(metadata: XrdMetadata): PermissionClaim[] {
  const field = claimsField;
  const text = metadata.annotations?.[claimsAnnotation];
  if (text === undefined || text.trim() === "") return [];
  let value: unknown;
  try {
    value = parseYaml(text);
  } catch (err) {
    throw new InputError(field, `is not YAML or JSON: ${(err as Error).message.split("\n")[0]}`);
  }
  return parseClaims(value, field);
}

/** What a labelled XRD asks for: an export named after it, of its served version, with its claims. */
export function labelledExportRequest(metadata: XrdMetadata): ExportRequest {
  return { name: metadata.name, xrd: metadata.name, permissionClaims: claimsFromAnnotation(metadata) };
}
