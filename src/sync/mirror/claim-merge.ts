// What crosses between a claimed original and its copy, per klutch-bind's claim fields. The owner's
// object is the truth but for what the claim hands to the other side: update.fields (the provider
// controls these paths of consumer-owned objects), update.preserving (the consumer keeps these
// paths of provider-owned objects), read.labelsOnProviderOwnedObjects and read.overrideAnnotations
// (the consumer's labels and annotations on provider-owned objects), update.labelsOnConsumerOwnedObjects
// and update.annotationsOnConsumerOwnedObjects (the provider's on consumer-owned objects). Those
// travel from the copy back to the original; everything else from the original to the copy.
import { isDeepStrictEqual } from "node:util";
import { ownDomain } from "../../api/naming.ts";
import { overlay, type PathSegment, parseJsonPath } from "../../export/json-path.ts";
import type { KeyPattern, Owner, PermissionClaim } from "../../export/types.ts";
import type { KubeObject } from "../../kube/client.ts";
import { klutchOwnerAnnotation } from "./claim-ownership.ts";
import { globMatch } from "./selector.ts";

type Keys = { labels?: KeyPattern[]; annotations?: KeyPattern[] };

/** The labels and annotations that go from the original to its copy (klutch-bind: none by default). */
export function forwardKeys(claim: PermissionClaim, owner: Owner): Keys {
  const keys = owner === "Provider" ? claim.update : claim.read;
  return { labels: keys?.labels, annotations: keys?.annotations };
}

/** The labels and annotations that go from the copy back to the original. */
export function backKeys(claim: PermissionClaim, owner: Owner): Keys {
  return owner === "Provider"
    ? { labels: claim.read?.labelsOnProviderOwnedObjects, annotations: claim.read?.overrideAnnotations }
    : {
        labels: claim.update?.labelsOnConsumerOwnedObjects,
        annotations: claim.update?.annotationsOnConsumerOwnedObjects,
      };
}

/** The paths the copy's side controls: preserving for provider-owned objects, fields for consumer-owned ones. */
export function copyControlledPaths(claim: PermissionClaim, owner: Owner): PathSegment[][] {
  const texts = (owner === "Provider" ? claim.update?.preserving : claim.update?.fields) ?? [];
  return texts.map(parseJsonPath).filter((p): p is PathSegment[] => Array.isArray(p));
}

/** The entries of a label or annotation map whose keys match one of the patterns ("*" any run), never ours. */
export function pick(
  from: Record<string, string> | undefined,
  patterns: KeyPattern[] | undefined,
): Record<string, string> {
  if (from === undefined || patterns === undefined || patterns.length === 0) return {};
  return Object.fromEntries(
    Object.entries(from).filter(
      // our own marks never cross, whatever a pattern says: a copy of them would make an original look like a copy
      ([key]) => !key.startsWith(ownDomain) && patterns.some((p) => globMatch(p.pattern, key)),
    ),
  );
}

/** Everything but identity and status: data, binaryData, type, spec, rules, ... */
export function payload(obj: KubeObject): Record<string, unknown> {
  const { apiVersion: _a, kind: _k, metadata: _m, status: _s, ...rest } = obj;
  return rest;
}

/** The copy's content, labels and annotations (our marks aside), given the copy as it is now, if there is one. */
export function copyContent(
  claim: PermissionClaim,
  owner: Owner,
  original: KubeObject,
  copy: KubeObject | undefined,
): { payload: Record<string, unknown>; labels: Record<string, string>; annotations: Record<string, string> } {
  const forward = forwardKeys(claim, owner);
  const back = backKeys(claim, owner);
  const paths = copyControlledPaths(claim, owner);
  return {
    // a new copy starts with the original's values at the paths it then controls
    payload: copy === undefined ? payload(original) : overlay(payload(original), payload(copy), paths),
    labels: { ...pick(original.metadata.labels, forward.labels), ...pick(copy?.metadata.labels, back.labels) },
    annotations: {
      ...pick(original.metadata.annotations, forward.annotations),
      ...pick(copy?.metadata.annotations, back.annotations),
    },
  };
}

/**
 * The original with what its copy's side controls written into it, or undefined when it holds
 * that already. Labels and annotations are set from the copy where it has them; one the copy
 * lacks is left as the original has it.
 */
export function writtenBack(
  claim: PermissionClaim,
  owner: Owner,
  original: KubeObject,
  copy: KubeObject,
): KubeObject | undefined {
  const back = backKeys(claim, owner);
  const paths = copyControlledPaths(claim, owner);
  const labels = { ...original.metadata.labels, ...pick(copy.metadata.labels, back.labels) };
  // klutch-bind's owner mark never goes back: on a provider-owned original, a tenant's mark would
  // hand the object over to the tenant (donated) once its copy was gone
  const { [klutchOwnerAnnotation]: _owner, ...backAnnotations } = pick(copy.metadata.annotations, back.annotations);
  const annotations = { ...original.metadata.annotations, ...backAnnotations };
  const content = paths.length > 0 ? overlay(payload(original), payload(copy), paths) : payload(original);
  const changed =
    !sameEntries(labels, original.metadata.labels) ||
    !sameEntries(annotations, original.metadata.annotations) ||
    (paths.length > 0 && !isDeepStrictEqual(content, payload(original)));
  if (!changed) return undefined;
  return {
    apiVersion: original.apiVersion,
    kind: original.kind,
    ...content,
    metadata: { ...original.metadata, labels, annotations },
    ...(original.status !== undefined ? { status: original.status } : {}),
  };
}

function sameEntries(a: Record<string, string>, b: Record<string, string> | undefined): boolean {
  const other = b ?? {};
  const keys = Object.keys(a);
  return keys.length === Object.keys(other).length && keys.every((k) => other[k] === a[k]);
}
