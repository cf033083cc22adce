// klutch-bind's claim fields beyond group, resource, version and selector: decoded strictly, so a
// template valid for klutch-bind is valid here, and a wrong one says which field.
import { list, object, optionalBoolean, optionalObject, optionalStringList, string } from "./decode.ts";
import { InputError } from "./errors.ts";
import { parseJsonPath } from "./json-path.ts";
import type { ClaimBehaviour, ClaimSelector, KeyPattern } from "./types.ts";

function patterns(value: unknown, field: string): KeyPattern[] | undefined {
  if (value === undefined || value === null) return undefined;
  return list(value, field).map((p, i) => ({
    pattern: string(object(p, `${field}[${i}]`).pattern, `${field}[${i}].pattern`),
  }));
}

/** Sets each field of from on into, leaving out what is undefined. */
function defined<T extends object>(from: T): Partial<T> | undefined {
  const kept = Object.fromEntries(Object.entries(from).filter(([, v]) => v !== undefined)) as Partial<T>;
  return Object.keys(kept).length > 0 ? kept : undefined;
}

export function parseBehaviour(claim: Record<string, unknown>, field: string): ClaimBehaviour {
  const result: ClaimBehaviour = {};
  const required = optionalBoolean(claim.required, `${field}.required`);
  if (required !== undefined) result.required = required;
  const read = optionalObject(claim.read, `${field}.read`);
  if (read !== undefined) {
    const parsed = defined({
      labels: patterns(read.labels, `${field}.read.labels`),
      labelsOnProviderOwnedObjects: patterns(
        read.labelsOnProviderOwnedObjects,
        `${field}.read.labelsOnProviderOwnedObjects`,
      ),
      annotations: patterns(read.annotations, `${field}.read.annotations`),
      overrideAnnotations: patterns(read.overrideAnnotations, `${field}.read.overrideAnnotations`),
    });
    if (parsed) result.read = parsed;
  }
  const create = optionalObject(claim.create, `${field}.create`);
  if (create !== undefined) {
    const parsed = defined({
      replaceExisting: optionalBoolean(create.replaceExisting, `${field}.create.replaceExisting`),
    });
    if (parsed) result.create = parsed;
  }
  const update = optionalObject(claim.update, `${field}.update`);
  if (update !== undefined) {
    const parsed = defined({
      fields: optionalStringList(update.fields, `${field}.update.fields`),
      preserving: optionalStringList(update.preserving, `${field}.update.preserving`),
      alwaysRecreate: optionalBoolean(update.alwaysRecreate, `${field}.update.alwaysRecreate`),
      labels: patterns(update.labels, `${field}.update.labels`),
      labelsOnConsumerOwnedObjects: patterns(
        update.labelsOnConsumerOwnedObjects,
        `${field}.update.labelsOnConsumerOwnedObjects`,
      ),
      annotations: patterns(update.annotations, `${field}.update.annotations`),
      annotationsOnConsumerOwnedObjects: patterns(
        update.annotationsOnConsumerOwnedObjects,
        `${field}.update.annotationsOnConsumerOwnedObjects`,
      ),
    });
    if (parsed) result.update = parsed;
  }
  const onConflict = optionalObject(claim.onConflict, `${field}.onConflict`);
  if (onConflict !== undefined) {
    const recreate = optionalBoolean(
      onConflict.recreateWhenConsumerSideDeleted,
      `${field}.onConflict.recreateWhenConsumerSideDeleted`,
    );
    // true is klutch-bind's default, the same as absent
    const parsed = defined({ recreateWhenConsumerSideDeleted: recreate === true ? undefined : recreate });
    if (parsed) result.onConflict = parsed;
  }
  const autoAdopt = optionalBoolean(claim.autoAdopt, `${field}.autoAdopt`);
  const autoDonate = optionalBoolean(claim.autoDonate, `${field}.autoDonate`);
  if (autoAdopt && autoDonate) throw new InputError(`${field}.autoDonate`, "cannot be set together with autoAdopt");
  if (autoAdopt !== undefined) result.autoAdopt = autoAdopt;
  if (autoDonate !== undefined) result.autoDonate = autoDonate;
  return result;
}

/**
 * klutch-bind's cluster-scoped claim: selector.namespaces set to [] explicitly (its default is
 * ["*"]). The sync copies namespaced objects only, between mapped namespaces, so it syncs nothing
 * of such a claim: it is left out of the sync and said on the binding (notActedOn), and a required
 * one keeps its export from being Ready. Acting on it would need cluster-wide access on both sides
 * and a least-privilege proof the sync does not have yet.
 */
export function isClusterScopedClaim(claim: { selector?: ClaimSelector }): boolean {
  return claim.selector?.namespaces?.length === 0;
}

export const clusterScopedNotSynced =
  "selector.namespaces is [] (a cluster-scoped claim): the sync syncs namespaced objects only, so nothing of this claim is synced";

/**
 * The parts of a claim the sync does not act on: a cluster-scoped claim (selector.namespaces []),
 * update.fields and update.preserving paths it cannot read as one place in the synced content
 * (wildcards, filters, metadata, status). Said on the binding, never silently taken as done.
 */
export function notActedOn(claim: ClaimBehaviour & { selector?: ClaimSelector }): string[] {
  const said: string[] = [];
  if (isClusterScopedClaim(claim)) said.push(clusterScopedNotSynced);
  for (const key of ["fields", "preserving"] as const) {
    for (const text of claim.update?.[key] ?? []) {
      const parsed = parseJsonPath(text);
      if (!Array.isArray(parsed)) said.push(`update.${key} ${JSON.stringify(text)}: ${parsed.unsupported}`);
    }
  }
  return said;
}
