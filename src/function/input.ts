// The function's input (kind Input of bind.klutch.dev/v1alpha1): operator defaults.
import {
  apiGroup,
  dnsSubdomain,
  namespaceName,
  object,
  oneOf,
  optionalList,
  optionalObject,
  positiveInteger,
  resourceName,
  string,
} from "../export/decode.ts";
import { InputError } from "../export/errors.ts";
import { reservedGroup } from "../export/policy.ts";
import { builtinDefaults } from "../export/request.ts";
import type { ClaimRef, ExportDefaults } from "../export/types.ts";
import { xrdApiGroup } from "../export/xrd.ts";

export const inputApiVersion = "bind.klutch.dev/v1alpha1";
export const inputKind = "Input";
const xrdApiVersions = [`${xrdApiGroup}/v2`, `${xrdApiGroup}/v1`] as const;

export type FunctionInput = {
  defaults: ExportDefaults;
  ttlSeconds: number;
  /** the XRD version to request from Crossplane */
  xrdApiVersion: (typeof xrdApiVersions)[number];
};

export const defaultInput: FunctionInput = {
  defaults: builtinDefaults,
  ttlSeconds: 60,
  xrdApiVersion: xrdApiVersions[0],
};

/** Decodes the input; absent means all defaults. */
export function parseInput(value: Record<string, unknown> | undefined): FunctionInput {
  if (value === undefined) return defaultInput;
  const apiVersion = string(value.apiVersion, "input.apiVersion");
  if (apiVersion !== inputApiVersion || value.kind !== inputKind) {
    throw new InputError(
      "input.kind",
      `must be ${inputKind} of ${inputApiVersion}`,
      `${apiVersion} ${String(value.kind)}`,
    );
  }
  const account = optionalObject(value.syncServiceAccount, "input.syncServiceAccount");
  const templateNamespace =
    value.templateNamespace === undefined
      ? builtinDefaults.templateNamespace
      : namespaceName(value.templateNamespace, "input.templateNamespace");
  const moreNamespaces = (optionalList(value.allowedTemplateNamespaces, "input.allowedTemplateNamespaces") ?? []).map(
    (ns, i) => namespaceName(ns, `input.allowedTemplateNamespaces[${i}]`),
  );
  const defaults: ExportDefaults = {
    templateNamespace,
    syncServiceAccount: {
      name:
        account?.name === undefined
          ? builtinDefaults.syncServiceAccount.name
          : dnsSubdomain(account.name, "input.syncServiceAccount.name"),
      namespace:
        account?.namespace === undefined
          ? builtinDefaults.syncServiceAccount.namespace
          : namespaceName(account.namespace, "input.syncServiceAccount.namespace"),
    },
    allowedClaims: (optionalList(value.allowedClaims, "input.allowedClaims") ?? []).map((c, i) =>
      claimRef(c, `input.allowedClaims[${i}]`),
    ),
    allowedClaimGroups: (optionalList(value.allowedClaimGroups, "input.allowedClaimGroups") ?? []).map((g, i) =>
      claimGroup(g, `input.allowedClaimGroups[${i}]`),
    ),
    // the default namespace is always allowed: the operator chose it
    allowedTemplateNamespaces: [...new Set([templateNamespace, ...moreNamespaces])],
  };
  return {
    defaults,
    ttlSeconds:
      value.ttlSeconds === undefined ? defaultInput.ttlSeconds : positiveInteger(value.ttlSeconds, "input.ttlSeconds"),
    xrdApiVersion:
      value.xrdApiVersion === undefined
        ? defaultInput.xrdApiVersion
        : oneOf(value.xrdApiVersion, xrdApiVersions, "input.xrdApiVersion"),
  };
}

/** An allowed claim names one resource: no wildcards, no subresources. */
function claimRef(value: unknown, field: string): ClaimRef {
  const ref = object(value, field);
  if (ref.group === undefined) throw new InputError(`${field}.group`, 'is required ("" for the core group)');
  return { group: apiGroup(ref.group, `${field}.group`), resource: resourceName(ref.resource, `${field}.resource`) };
}

/** A group of custom resources: none of Kubernetes', Crossplane's or this project's. */
function claimGroup(value: unknown, field: string): string {
  const group = apiGroup(value, field);
  const reserved = reservedGroup(group);
  if (reserved !== undefined) {
    throw new InputError(
      field,
      `must be a group of custom resources, not ${JSON.stringify(group)} (${reserved}); allow such claims one by one in allowedClaims`,
    );
  }
  return group;
}
