import { createHash } from "node:crypto";

const maxName = 253;

/** Keeps a generated name within Kubernetes' limit, staying unique by a hash of the whole. */
export function boundedName(name: string, limit = maxName): string {
  if (name.length <= limit) return name;
  const hash = createHash("sha256").update(name).digest("hex").slice(0, 10);
  return `${name.slice(0, limit - hash.length - 1).replace(/[-.:]+$/, "")}-${hash}`;
}

/** Names of everything an export creates: readable, deterministic, and unique per export. */
export function exportNames(exportName: string) {
  return {
    template: exportName,
    clusterRole: boundedName(`klutch-bind:export:${exportName}`),
    clusterRoleBinding: boundedName(`klutch-bind:export:${exportName}`),
    /** claimed resources: the sync binds it in each provider namespace it creates, nowhere else */
    claimsRole: boundedName(`klutch-bind:export:${exportName}:claims`),
  };
}
