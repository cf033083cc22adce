// A parsed claim in klutch-bind's wire shape: what the function writes into a template. Only
// klutch-bind's fields (the parsed claim's, the selector rewritten), and only selectors klutch-bind reads exactly as this project's sync does, so
// a klutch-bind control plane never rejects the template (not even with fieldValidation=Strict) and
// never reads a claim wider (or narrower) than it was written:
//   - labelSelector.matchLabels and `In` expressions become labelSelectors (klutch-bind's equality
//     maps, any one of which selects), combined with any labelSelectors given: exactly the same set;
//   - NotIn, Exists and DoesNotExist cannot be written as equality maps, and name or namespace
//     globs other than "*" are exact strings to klutch-bind: these are refused, naming the field.
// A template written by hand for this project's own CRD may still use both (see docs/coming-from-klutch-bind.md).
import { InputError } from "./errors.ts";
import type { LabelSelector, Owner, PermissionClaim } from "./types.ts";

export type KlutchSelector = {
  owner?: Owner;
  names?: string[];
  namespaces?: string[];
  labelSelectors?: Array<Record<string, string>>;
  fieldSelectors?: string[];
};

/** A claim as klutch-bind writes it: its other fields (required, read, update, ...) as parsed. */
export type KlutchClaim = Omit<PermissionClaim, "selector"> & { selector: KlutchSelector };

/** klutch-bind's pattern for a resource name (its CRD's): at least two characters. */
export const klutchResourcePattern = /^[a-z][-a-z0-9]*[a-z0-9]$/;

/** More equality maps than this is a selector better written otherwise. */
export const maxLabelSelectors = 32;

/** The claims, each in klutch-bind's shape; `field` names the list, for errors. */
export function klutchClaims(claims: readonly PermissionClaim[], field: string): KlutchClaim[] {
  return claims.map((claim, i) => klutchClaim(claim, `${field}[${i}]`));
}

export function klutchClaim(claim: PermissionClaim, field: string): KlutchClaim {
  klutchResource(claim.resource, `${field}.resource`);
  // every field but the selector is klutch-bind's and read alike on both sides: kept as parsed
  const { group, resource, version, selector: given, ...behaviour } = claim;
  const { owner, names, namespaces, labelSelector, labelSelectors, fieldSelectors } = given;
  const selector: KlutchSelector = owner === undefined ? {} : { owner };
  if (names !== undefined) selector.names = exactNames(names, `${field}.selector.names`, "names");
  if (namespaces !== undefined) {
    selector.namespaces = exactNames(namespaces, `${field}.selector.namespaces`, "namespaces");
  }
  const equality = equalityMaps(labelSelector, labelSelectors, `${field}.selector`);
  if (equality !== undefined) selector.labelSelectors = equality;
  if (fieldSelectors !== undefined && fieldSelectors.length > 0) selector.fieldSelectors = [...fieldSelectors];
  return { group, resource, version, selector, ...behaviour };
}

/** A resource name klutch-bind's template accepts (the exported XRD's plural as well). */
export function klutchResource(resource: string, field: string): string {
  if (!klutchResourcePattern.test(resource)) {
    throw new InputError(
      field,
      `klutch-bind's template accepts only resource names matching ${klutchResourcePattern.source} (at least two characters)`,
      resource,
    );
  }
  return resource;
}

function exactNames(list: readonly string[], field: string, what: "names" | "namespaces"): string[] {
  list.forEach((entry, i) => {
    if (entry.includes("*") && entry !== "*") {
      throw new InputError(
        `${field}[${i}]`,
        `klutch-bind matches ${what} exactly ("*" alone means all, other wildcards are unsupported), so a glob ` +
          `would select nothing there while this project's sync would select by it: list the ${what}, ` +
          `or use "*" with labelSelector.matchLabels`,
        entry,
      );
    }
  });
  return [...list];
}

/**
 * The label part of a selector as klutch-bind's labelSelectors: alternatives (an object matching
 * any one is selected) equal to matchLabels AND each `In` expression AND any one of labelSelectors.
 * undefined when every object is selected.
 */
function equalityMaps(
  labelSelector: LabelSelector | undefined,
  given: ReadonlyArray<Record<string, string>> | undefined,
  field: string,
): Array<Record<string, string>> | undefined {
  let alternatives: Array<Record<string, string>> = [{ ...(labelSelector?.matchLabels ?? {}) }];
  if (given !== undefined && given.length > 0) alternatives = combine(alternatives, given);
  (labelSelector?.matchExpressions ?? []).forEach(({ key, operator, values = [] }, i) => {
    const path = `${field}.labelSelector.matchExpressions[${i}]`;
    if (operator !== "In") {
      throw new InputError(
        `${path}.operator`,
        `klutch-bind's labelSelectors are equality maps and cannot express ${operator}: select with matchLabels ` +
          'or "In", or write the template by hand for this project\'s own CRD (selector.labelSelector)',
        operator,
      );
    }
    alternatives = combine(
      alternatives,
      values.map((value) => ({ [key]: value })),
    );
    if (alternatives.length > maxLabelSelectors) {
      throw new InputError(
        `${field}.labelSelector`,
        `expands to more than ${maxLabelSelectors} klutch-bind labelSelectors (one per combination of "In" values)`,
      );
    }
  });
  if (alternatives.length === 0) {
    throw new InputError(field, "selects no object: its label requirements contradict each other");
  }
  if (alternatives.some((m) => Object.keys(m).length === 0)) return undefined;
  return alternatives;
}

/** Every merge of one of `a` with one of `b` that agrees on shared keys, without duplicates. */
function combine(
  a: ReadonlyArray<Record<string, string>>,
  b: ReadonlyArray<Record<string, string>>,
): Array<Record<string, string>> {
  const out: Array<Record<string, string>> = [];
  const seen = new Set<string>();
  for (const left of a) {
    for (const right of b) {
      if (Object.entries(right).some(([k, v]) => Object.hasOwn(left, k) && left[k] !== v)) continue;
      const merged = { ...left, ...right };
      const key = JSON.stringify(Object.entries(merged).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)));
      if (seen.has(key)) continue;
      seen.add(key);
      out.push(merged);
    }
  }
  return out;
}
