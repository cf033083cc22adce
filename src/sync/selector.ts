// Does an object fall under a permission claim's selector? names, namespaces, label selector.
import type { ClaimSelector, LabelSelector } from "../export/types.ts";

function globMatch(pattern: string, value: string): boolean {
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
 * owns the object; absent lists match everything.
 */
export function claimSelects(
  selector: ClaimSelector,
  object: { name: string; labels?: Record<string, string> },
  appNamespace: string,
): boolean {
  if (selector.names && !selector.names.some((p) => globMatch(p, object.name))) return false;
  if (selector.namespaces && !selector.namespaces.some((p) => globMatch(p, appNamespace))) return false;
  return matchesLabels(selector.labelSelector, object.labels);
}
