// Permission claims in words, for the people who accept them (CLI and web page alike).
import type { PermissionClaim } from "./types.ts";

function resourceName(claim: PermissionClaim): string {
  return claim.group === "" ? claim.resource : `${claim.resource}.${claim.group}`;
}

function selection(claim: PermissionClaim): string {
  const parts: string[] = [];
  const { names, namespaces, labelSelector } = claim.selector;
  if (names && !(names.length === 1 && names[0] === "*")) parts.push(`named ${names.join(", ")}`);
  if (namespaces?.length === 0) parts.push("cluster-scoped (selector.namespaces: []), which the sync does not sync");
  else if (namespaces && !(namespaces.length === 1 && namespaces[0] === "*"))
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

const writes = "writes WHAT into your namespaces (the provider's copies; your edits are reverted)";
const reads = "reads WHAT from your namespaces and copies them to the provider";

/** One sentence per claim, from the app cluster's point of view. */
export function describeClaim(claim: PermissionClaim): string {
  const what = `${resourceName(claim)}${selection(claim)}`;
  const owner = claim.selector.owner;
  const main =
    owner === "Provider"
      ? writes.replace("WHAT", what)
      : owner === "Consumer"
        ? reads.replace("WHAT", what)
        : `${writes.replace("WHAT", what)}, and ${reads.replace("WHAT", "yours")}`;
  return `${main}${behaviour(claim)}`;
}

/** What the claim's further fields hand over, in words: said, since each one is consented to. */
function behaviour(claim: PermissionClaim): string {
  const parts: string[] = [];
  const { owner } = claim.selector;
  if (claim.autoAdopt) parts.push("the ones you create become the provider's (your later edits are reverted)");
  if (claim.autoDonate) parts.push("the provider's new ones are created in your namespaces as yours");
  if (owner !== "Provider" && claim.update?.fields?.length) {
    parts.push(`the provider controls ${claim.update.fields.join(", ")} of yours`);
  }
  if (owner !== "Consumer" && claim.update?.preserving?.length) {
    parts.push(`you keep ${claim.update.preserving.join(", ")} of the provider's, which goes back to it`);
  }
  if (owner !== "Consumer" && claim.onConflict?.recreateWhenConsumerSideDeleted === false) {
    parts.push("deleting a provider's copy deletes the provider's object");
  }
  const back = [
    ...(owner !== "Consumer" ? (claim.read?.labelsOnProviderOwnedObjects ?? []) : []),
    ...(owner !== "Consumer" ? (claim.read?.overrideAnnotations ?? []) : []),
  ];
  if (back.length > 0) {
    parts.push(`your labels and annotations ${back.map((p) => p.pattern).join(", ")} on its copies go to the provider`);
  }
  const down = [
    ...(owner !== "Provider" ? (claim.update?.labelsOnConsumerOwnedObjects ?? []) : []),
    ...(owner !== "Provider" ? (claim.update?.annotationsOnConsumerOwnedObjects ?? []) : []),
  ];
  if (down.length > 0) {
    parts.push(`the provider sets labels and annotations ${down.map((p) => p.pattern).join(", ")} on yours`);
  }
  return parts.length > 0 ? `; ${parts.join("; ")}` : "";
}
