// The BindingResponse the page answers `klutch-bind bind URL` with (klutch.anynines.com/v1alpha1,
// as it answers klutch-bind's plugin), decoded strictly: its session, the control plane's kubeconfig
// for the binding (none on a dry run) with the binding's cluster namespace in its context, and the
// one APIServiceExportRequest: the API and the claims accepted.

import { maxKubeconfigBytes } from "../api/pull-binding.ts";
import { parseClaims } from "../export/claims.ts";
import { apiGroup, list, nonEmptyString, object, optionalList, resourceName, string } from "../export/decode.ts";
import { InputError } from "../export/errors.ts";
import type { PermissionClaim } from "../export/types.ts";
import { parseKubeconfig } from "../kube/kubeconfig.ts";
import { assertSelfContained } from "../kube/self-contained.ts";

export const responseApiVersion = "klutch.anynines.com/v1alpha1";

export type BoundApi = { group: string; resource: string; version?: string; claims: PermissionClaim[] };

export type BindingAnswer = {
  /** who the page bound as (informational) */
  identity: string;
  /** the control plane's kubeconfig for the binding; undefined on a dry run */
  kubeconfig?: { text: string; server: string; clusterNamespace: string };
  api: BoundApi;
};

export function decodeBindingResponse(value: unknown, session: string, dryRun: boolean): BindingAnswer {
  const doc = object(value, "BindingResponse");
  if (doc.apiVersion !== responseApiVersion || doc.kind !== "BindingResponse") {
    throw new InputError(
      "apiVersion",
      `must be ${responseApiVersion} BindingResponse`,
      `${String(doc.apiVersion)} ${String(doc.kind)}`,
    );
  }
  const grant = object(object(doc.authentication, "authentication").oauth2CodeGrant, "authentication.oauth2CodeGrant");
  if (grant.sid !== session)
    throw new InputError("authentication.oauth2CodeGrant.sid", "is not this bind's session", String(grant.sid));
  const encoded = string(doc.kubeconfig ?? "", "kubeconfig");
  if (encoded.length > Math.ceil((maxKubeconfigBytes * 4) / 3) + 4) {
    throw new InputError("kubeconfig", `larger than ${maxKubeconfigBytes / 1024} KiB`, `${encoded.length} characters`);
  }
  const requests = list(doc.requests, "requests");
  if (requests.length !== 1)
    throw new InputError("requests", "must hold one APIServiceExportRequest", `${requests.length}`);
  const request = object(requests[0], "requests[0]");
  const resources = list(object(request.spec, "requests[0].spec").resources, "requests[0].spec.resources");
  if (resources.length !== 1)
    throw new InputError("requests[0].spec.resources", "must name one API", `${resources.length}`);
  const res = object(resources[0], "requests[0].spec.resources[0]");
  const field = "requests[0].spec.resources[0]";
  const versions = optionalList(res.versions, `${field}.versions`);
  const version = versions?.[0] === undefined ? undefined : nonEmptyString(versions[0], `${field}.versions[0]`);
  const api: BoundApi = {
    group: apiGroup(res.group, `${field}.group`),
    resource: resourceName(res.resource, `${field}.resource`),
    ...(version !== undefined ? { version } : {}),
    claims: res.permissionClaims === undefined ? [] : parseClaims(res.permissionClaims, `${field}.permissionClaims`),
  };
  const identity = typeof grant.id === "string" ? grant.id : "";
  if (dryRun) return { identity, api };
  if (encoded === "") throw new InputError("kubeconfig", "is empty: the page bound nothing", "");
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(encoded)) throw new InputError("kubeconfig", "is not standard base64");
  const text = Buffer.from(encoded, "base64").toString("utf8");
  assertSelfContained(text);
  const parsed = parseKubeconfig(text);
  const context = parsed.contexts.get(parsed.currentContext ?? "");
  if (context === undefined)
    throw new InputError("kubeconfig", "its current-context names no context", parsed.currentContext ?? "");
  const clusterNamespace = context.namespace ?? "";
  if (clusterNamespace === "")
    throw new InputError("kubeconfig", "its context names no namespace (the binding's cluster namespace)", "");
  const server = parsed.clusters.get(context.cluster)?.server ?? "";
  return { identity, kubeconfig: { text, server, clusterNamespace }, api };
}
