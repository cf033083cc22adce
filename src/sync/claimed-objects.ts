// Claimed objects (any group/resource a template's permission claims name): copied from the side
// that owns them to the other, byte-exact, edits on the copy reverted, deleted with the original.
// An object the sync did not create is never overwritten.
import { isDeepStrictEqual } from "node:util";
import type { KeyPattern, PermissionClaim } from "../export/types.ts";
import { KubeApiError, type KubeClient, type KubeObject, type ResourceRef } from "../kube/client.ts";
import type { ExportContext } from "./export-context.ts";
import { annotations, labels, providerNamespace } from "./naming.ts";
import { claimSelects, globMatch } from "./selector.ts";

export type ClaimSides = {
  /** where originals live: provider namespaces for owner Provider, app namespaces for Consumer */
  source: { client: KubeClient; get: (name: string, namespace: string) => KubeObject | undefined };
  target: { client: KubeClient; get: (name: string, namespace: string) => KubeObject | undefined };
};

export function claimRef(claim: PermissionClaim): ResourceRef {
  return { group: claim.group, version: claim.version, resource: claim.resource, namespaced: true };
}

export function claimKey(index: number, appNamespace: string, name: string): string {
  return `claim:${index}:${appNamespace}/${name}`;
}

export function copyLabelValue(claim: PermissionClaim): "provider" | "consumer" {
  return claim.selector.owner === "Provider" ? "provider" : "consumer";
}

/** Everything but identity and status: data, binaryData, type, spec, rules, ... */
function payload(obj: KubeObject): Record<string, unknown> {
  const { apiVersion: _a, kind: _k, metadata: _m, status: _s, ...rest } = obj;
  return rest;
}

function isOurCopy(ctx: ExportContext, obj: KubeObject, claim: PermissionClaim): boolean {
  return (
    obj.metadata.labels?.[labels.binding] === ctx.binding.uid &&
    obj.metadata.labels?.[labels.copyOf] === copyLabelValue(claim)
  );
}

/**
 * Objects every namespace has of its own, made by Kubernetes for that cluster: copying them would
 * only ever conflict (kube-root-ca.crt) or leak a credential of the wrong cluster (token secrets).
 */
export function clusterLocal(obj: KubeObject): boolean {
  if (obj.kind === "ConfigMap" && obj.metadata.name === "kube-root-ca.crt") return true;
  return obj.kind === "Secret" && obj.type === "kubernetes.io/service-account-token";
}

function foreign(ctx: ExportContext, claim: PermissionClaim, namespace: string, name: string): ClaimOutcome {
  const conflict = `${claim.resource} ${namespace}/${name} exists and was not created by the sync; it is left alone (rename one of them)`;
  ctx.reportConflict(conflict);
  return { result: "conflict", conflict };
}

/** What a reconcile did; conflict says why it left a foreign object alone. */
export type ClaimOutcome = { result: "unchanged" | "written" | "deleted" | "conflict"; conflict?: string };

export async function reconcileClaimedObject(
  ctx: ExportContext,
  claim: PermissionClaim,
  sides: ClaimSides,
  appNamespace: string,
  name: string,
): Promise<ClaimOutcome> {
  const mapped = providerNamespace(ctx.binding.uid, appNamespace);
  const [sourceNs, targetNs] = claim.selector.owner === "Provider" ? [mapped, appNamespace] : [appNamespace, mapped];
  const ref = claimRef(claim);
  let source = sides.source.get(name, sourceNs);
  const target = sides.target.get(name, targetNs);
  const ourCopy =
    target !== undefined && isOurCopy(ctx, target, claim) && target.metadata.deletionTimestamp === undefined;
  if (source === undefined && ourCopy) {
    // About to delete a copy because its original is not in the cache: only the source cluster's
    // own NotFound proves it gone (a cache may have been filled by a broken relist).
    source = await sides.source.client.get(ref, name, sourceNs);
    if (source !== undefined) return { result: "unchanged" }; // its event is on the way
  }
  const selected =
    source !== undefined &&
    source.metadata.deletionTimestamp === undefined &&
    !clusterLocal(source) &&
    claimSelects(
      claim.selector,
      { name, labels: source.metadata.labels, type: typeof source.type === "string" ? source.type : undefined },
      appNamespace,
    );

  if (!selected || source === undefined) {
    if (ourCopy) {
      await sides.target.client.delete(ref, name, targetNs, { uid: target?.metadata.uid });
      return { result: "deleted" };
    }
    return { result: "unchanged" };
  }

  if (target !== undefined && !isOurCopy(ctx, target, claim)) {
    return foreign(ctx, claim, targetNs, name);
  }

  // metadata is not synced but for the keys the claim names (klutch-bind's read and update patterns)
  const keys = claim.selector.owner === "Provider" ? claim.update : claim.read;
  const desired: KubeObject = {
    apiVersion: source.apiVersion,
    kind: source.kind,
    metadata: {
      name,
      namespace: targetNs,
      labels: {
        ...pick(source.metadata.labels, keys?.labels),
        [labels.binding]: ctx.binding.uid,
        [labels.copyOf]: copyLabelValue(claim),
      },
      annotations: {
        ...pick(source.metadata.annotations, keys?.annotations),
        [annotations.sourceUid]: source.metadata.uid ?? "",
      },
    },
    ...payload(source),
  };

  if (target === undefined) {
    try {
      await sides.target.client.create(ref, desired);
    } catch (err) {
      // The target cache holds only our copies: a foreign object of that name shows up here.
      if (!(err instanceof KubeApiError) || err.code !== 409) throw err;
      const existing = await sides.target.client.get(ref, name, targetNs);
      if (existing !== undefined && !isOurCopy(ctx, existing, claim)) {
        // create.replaceExisting (owner Provider): the provider's object takes the name over
        if (claim.selector.owner !== "Provider" || claim.create?.replaceExisting !== true) {
          return foreign(ctx, claim, targetNs, name);
        }
        await replace(sides.target.client, ref, existing, desired);
        return { result: "written" };
      }
      throw err; // our own copy, not yet in the cache: the retry sees it
    }
    return { result: "written" };
  }
  const same =
    isDeepStrictEqual(payload(target), payload(desired)) &&
    isDeepStrictEqual(target.metadata.labels ?? {}, desired.metadata.labels) &&
    Object.entries(desired.metadata.annotations ?? {}).every(([k, v]) => target.metadata.annotations?.[k] === v);
  if (same) return { result: "unchanged" };
  // a Secret's type cannot change in place; update.alwaysRecreate asks the same for any change
  if (target.type !== desired.type || claim.update?.alwaysRecreate === true) {
    await sides.target.client.delete(ref, name, targetNs, { uid: target.metadata.uid });
    await sides.target.client.create(ref, desired);
    return { result: "written" };
  }
  await sides.target.client.update(ref, {
    ...desired,
    metadata: {
      ...desired.metadata,
      resourceVersion: target.metadata.resourceVersion,
      annotations: { ...target.metadata.annotations, ...desired.metadata.annotations },
    },
  });
  return { result: "written" };
}

/** The entries of a label or annotation map whose keys match one of the patterns ("*" any run). */
function pick(from: Record<string, string> | undefined, patterns: KeyPattern[] | undefined): Record<string, string> {
  if (from === undefined || patterns === undefined || patterns.length === 0) return {};
  return Object.fromEntries(Object.entries(from).filter(([key]) => patterns.some((p) => globMatch(p.pattern, key))));
}

/** Makes a conflicting object the claim's copy: the same name, the original's content and our marks. */
async function replace(client: KubeClient, ref: ResourceRef, existing: KubeObject, desired: KubeObject): Promise<void> {
  if (existing.type !== desired.type) {
    await client.delete(ref, existing.metadata.name, existing.metadata.namespace, { uid: existing.metadata.uid });
    await client.create(ref, desired);
    return;
  }
  await client.update(ref, {
    ...desired,
    metadata: { ...desired.metadata, resourceVersion: existing.metadata.resourceVersion },
  });
}
