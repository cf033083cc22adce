// Permission claims in words, for the people who accept them (CLI and web page alike).
import type { PermissionClaim } from "./types.ts";

function resourceName(claim: PermissionClaim): string {
  return claim.group === "" ? claim.resource : `${claim.resource}.${claim.group}`;
}

function selection(claim: PermissionClaim): string {
  const parts: string[] = [];
  const { names, namespaces, labelSelector } = claim.selector;
  if (names && !(names.length === 1 && names[0] === "*")) parts.push(`named ${names.join(", ")}`);
  if (namespaces && !(namespaces.length === 1 && namespaces[0] === "*"))
    parts.push(`in namespaces ${namespaces.join(", ")}`);
  const labels = Object.entries(labelSelector?.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  const expressions = (labelSelector?.matchExpressions ?? []).map(
    (e) => `${e.key} ${e.operator}${e.values?.length ? ` (${e.values.join(", ")})` : ""}`,
  );
  if (labels.length + expressions.length > 0) parts.push(`labelled ${[...labels, ...expressions].join(", ")}`);
  const anyOf = (claim.selector.labelSelectors ?? []).map((m) =>
    Object.entries(m)
      .map(([k, v]) => `${k}=${v}`)
      .join(" and "),
  );
  if (anyOf.length > 0) parts.push(`labelled ${anyOf.join(" or ")}`);
  for (const fields of claim.selector.fieldSelectors ?? []) parts.push(`where ${fields}`);
  return parts.length > 0 ? ` ${parts.join(", ")}` : "";
}

/** One sentence per claim, from the app cluster's point of view. */
export function describeClaim(claim: PermissionClaim): string {
  const what = `${resourceName(claim)}${selection(claim)}`;
  return claim.selector.owner === "Provider"
    ? `writes ${what} into your namespaces (the provider's copies; your edits are reverted)`
    : `reads ${what} from your namespaces and copies them to the provider`;
}
