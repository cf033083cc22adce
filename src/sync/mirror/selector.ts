// Does an object fall under a permission claim's selector? names, namespaces, label selectors,
// field selectors: every one given must select it.
import { type FieldTerm, fieldsMatch, parseFieldSelector } from "../../export/field-selector.ts";
import type { ClaimSelector, LabelSelector } from "../../export/types.ts";

/** pattern matched against value, "*" standing for any run of characters */
export function globMatch(pattern: string, value: string): boolean {
  if (pattern === "*") return true;
  if (!pattern.includes("*")) return pattern === value;
  const escaped = pattern.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replaceAll("*", ".*");
  return new RegExp(`^${escaped}$`).test(value);
}

export function matchesLabels(selector: LabelSelector | undefined, labels: Record<string, string> = {}): boolean {
  if (selector === undefined) return true;
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    if (labels[key] !== value) return false;
  }
  for (const { key, operator, values = [] } of selector.matchExpressions ?? []) {
    const has = key in labels;
    const value = labels[key];
    const ok =
      operator === "In"
        ? has && values.includes(value ?? "")
        : operator === "NotIn"
          ? !has || !values.includes(value ?? "")
          : operator === "Exists"
            ? has
            : !has;
    if (!ok) return false;
  }
  return true;
}

/**
 * `names` match the object's name (globs with *), `namespaces` the app namespace, whichever side
 * owns the object; absent lists match everything. `labelSelectors` (klutch-bind's): an object
 * matching any one map; `fieldSelectors`: every one (metadata.namespace is the app namespace).
 */
export function claimSelects(
  selector: ClaimSelector,
  object: { name: string; labels?: Record<string, string>; type?: string | undefined },
  appNamespace: string,
): boolean {
  if (selector.names && !selector.names.some((p) => globMatch(p, object.name))) return false;
  if (selector.namespaces && !selector.namespaces.some((p) => globMatch(p, appNamespace))) return false;
  if (!matchesLabels(selector.labelSelector, object.labels)) return false;
  const labels = object.labels ?? {};
  if (
    selector.labelSelectors !== undefined &&
    selector.labelSelectors.length > 0 &&
    !selector.labelSelectors.some((wanted) => Object.entries(wanted).every(([k, v]) => labels[k] === v))
  ) {
    return false;
  }
  const where = { name: object.name, namespace: appNamespace, type: object.type };
  return (selector.fieldSelectors ?? []).every((text) => fieldsMatch(termsOf(text), where));
}

/**
 * The part of a claim's field selectors the API server can apply to lists and watches of the
 * originals: the name terms (every resource supports them; namespaces differ between the two
 * sides, and `type` is a Secret's only). The rest is checked object by object.
 */
export function serverFieldSelector(selector: ClaimSelector): string | undefined {
  const terms = (selector.fieldSelectors ?? []).flatMap((text) =>
    termsOf(text).filter((t) => t.field === "metadata.name"),
  );
  return terms.length === 0 ? undefined : terms.map((t) => `${t.field}${t.operator}${t.value}`).join(",");
}

/** Field selectors are checked for every claimed object: each text is parsed once (parseClaims validated it). */
const parsedTerms = new Map<string, FieldTerm[]>();
function termsOf(text: string): FieldTerm[] {
  let terms = parsedTerms.get(text);
  if (terms === undefined) {
    terms = parseFieldSelector(text, "fieldSelectors");
    if (parsedTerms.size > 1000) parsedTerms.clear();
    parsedTerms.set(text, terms);
  }
  return terms;
}
