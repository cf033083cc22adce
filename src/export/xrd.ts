import {
  dnsSubdomain,
  list,
  nonEmptyString,
  object,
  oneOf,
  optionalBoolean,
  resourceName,
  string,
  versionName,
} from "./decode.ts";
import { InputError } from "./errors.ts";
import { escalation } from "./policy.ts";
import type { Xrd, XrdScope, XrdVersion } from "./types.ts";

export const xrdApiGroup = "apiextensions.crossplane.io";
const xrdApiVersions = [`${xrdApiGroup}/v1`, `${xrdApiGroup}/v2`];
const scopes: readonly XrdScope[] = ["Namespaced", "Cluster", "LegacyCluster"];

/** Decodes a CompositeResourceDefinition (v1 or v2). `field` prefixes error paths. */
export function parseXrd(value: unknown, field = "xrd"): Xrd {
  const xrd = object(value, field);
  const apiVersion = string(xrd.apiVersion, `${field}.apiVersion`);
  if (!xrdApiVersions.includes(apiVersion) || xrd.kind !== "CompositeResourceDefinition") {
    throw new InputError(
      `${field}.kind`,
      `must be a CompositeResourceDefinition of ${xrdApiVersions.join(" or ")}`,
      `${apiVersion} ${String(xrd.kind)}`,
    );
  }
  const metadata = object(xrd.metadata, `${field}.metadata`);
  const spec = object(xrd.spec, `${field}.spec`);
  const names = object(spec.names, `${field}.spec.names`);
  // v1 XRDs have no scope; Crossplane v2 treats them as legacy cluster-scoped.
  const defaultScope: XrdScope = apiVersion.endsWith("/v1") ? "LegacyCluster" : "Namespaced";
  const scope = spec.scope === undefined ? defaultScope : oneOf(spec.scope, scopes, `${field}.spec.scope`);
  const versions = list(spec.versions, `${field}.spec.versions`).map((v, i) =>
    parseVersion(v, `${field}.spec.versions[${i}]`),
  );
  if (versions.length === 0) throw new InputError(`${field}.spec.versions`, "must list at least one version");
  const name = dnsSubdomain(metadata.name, `${field}.metadata.name`);
  // The XRD comes from the cluster and is not trusted: its group and plural become RBAC rules.
  const group = dnsSubdomain(spec.group, `${field}.spec.group`);
  const plural = resourceName(names.plural, `${field}.spec.names.plural`);
  const why = escalation({ group, resource: plural });
  if (why !== undefined) {
    // RBAC matches by group and plural: an XRD named like a built-in would grant the built-in
    throw new InputError(
      `${field}.spec.group`,
      `exports ${plural}.${group}, which is escalation-prone (${why}); no XRD may be exported under that group and plural`,
    );
  }
  return { name, group, plural, kind: nonEmptyString(names.kind, `${field}.spec.names.kind`), scope, versions };
}

function parseVersion(value: unknown, field: string): XrdVersion {
  const v = object(value, field);
  return {
    name: versionName(v.name, `${field}.name`),
    served: optionalBoolean(v.served, `${field}.served`) ?? false,
    referenceable: optionalBoolean(v.referenceable, `${field}.referenceable`) ?? false,
  };
}

/**
 * The version to export: the one asked for, which must be served, or else the XRD's referenceable
 * version (the one Crossplane composes with), or else its only served one.
 */
export function selectVersion(xrd: Xrd, requested: string | undefined, field: string): string {
  const served = xrd.versions.filter((v) => v.served).map((v) => v.name);
  if (requested !== undefined) {
    if (!served.includes(requested)) {
      throw new InputError(
        field,
        `must be a version served by XRD ${xrd.name} (${served.join(", ") || "none"})`,
        requested,
      );
    }
    return requested;
  }
  const referenceable = xrd.versions.find((v) => v.referenceable && v.served);
  if (referenceable !== undefined) return referenceable.name;
  const [only, ...more] = served;
  if (only !== undefined && more.length === 0) return only;
  throw new InputError(
    field,
    `must name one of the versions XRD ${xrd.name} serves (${served.join(", ") || "none"}): it has no served referenceable version`,
  );
}
