// Claimed objects (any group/resource a template's permission claims name): copied from the side
// that owns them to the other, edits on the copy reverted but for what the claim hands to the copy's
// side, deleted with the original. An object the sync did not create is never overwritten, unless
// the claim says so (create.replaceExisting) or its owner hands it over (autoAdopt, autoDonate).
import { isDeepStrictEqual } from "node:util";
import { annotations, labels, providerNamespace } from "../../api/naming.ts";
import type { Owner, PermissionClaim } from "../../export/types.ts";
import { KubeApiError, type KubeClient, type KubeObject, type ResourceRef } from "../../kube/client.ts";
import { backKeys, copyContent, payload, pick, writtenBack } from "./claim-merge.ts";
import { decideOwnership, klutchOwnerAnnotation, type SideView } from "./claim-ownership.ts";
import type { ExportContext } from "./export-context.ts";
import { claimSelects } from "./selector.ts";

export type ClaimSide = { client: KubeClient; get: (name: string, namespace: string) => KubeObject | undefined };
/** provider: the claim's objects in the provider namespaces; consumer: in the app namespaces */
export type ClaimSides = { provider: ClaimSide; consumer: ClaimSide };

export function claimRef(claim: PermissionClaim): ResourceRef {
  return { group: claim.group, version: claim.version, resource: claim.resource, namespaced: true };
}

export function claimKey(index: number, appNamespace: string, name: string): string {
  return `claim:${index}:${appNamespace}/${name}`;
}

/** The copy-of label of a copy whose original owner holds. */
export function copyLabelValue(owner: Owner): "provider" | "consumer" {
  return owner === "Provider" ? "provider" : "consumer";
}

function isOurCopy(ctx: ExportContext, obj: KubeObject, owner: Owner): boolean {
  return (
    obj.metadata.labels?.[labels.binding] === ctx.binding.uid &&
    obj.metadata.labels?.[labels.copyOf] === copyLabelValue(owner)
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

/** An original the claim covers now: not being deleted, not cluster-local, selected. */
function selects(claim: PermissionClaim, obj: KubeObject, appNamespace: string): boolean {
  return (
    obj.metadata.deletionTimestamp === undefined &&
    !clusterLocal(obj) &&
    claimSelects(
      claim.selector,
      {
        name: obj.metadata.name,
        labels: obj.metadata.labels,
        type: typeof obj.type === "string" ? obj.type : undefined,
      },
      appNamespace,
    )
  );
}

function foreign(ctx: ExportContext, claim: PermissionClaim, namespace: string, name: string): ClaimOutcome {
  const conflict = `${claim.resource} ${namespace}/${name} exists and was not created by the sync; it is left alone (rename one of them)`;
  ctx.reportConflict(conflict);
  return { result: "conflict", conflict };
}

/** What a reconcile did; conflict says why it left a foreign object alone. */
export type ClaimOutcome = { result: "unchanged" | "written" | "deleted" | "conflict"; conflict?: string };

/** Where the original of an owner's object lives and where its copy goes. */
type Placed = { origin: ClaimSide; originNs: string; copySide: ClaimSide; copyNs: string };

function placed(ctx: ExportContext, sides: ClaimSides, owner: Owner, appNamespace: string): Placed {
  const mapped = providerNamespace(ctx.binding.uid, appNamespace);
  return owner === "Provider"
    ? { origin: sides.provider, originNs: mapped, copySide: sides.consumer, copyNs: appNamespace }
    : { origin: sides.consumer, originNs: appNamespace, copySide: sides.provider, copyNs: mapped };
}

/** onConflict.recreateWhenConsumerSideDeleted: false: a provider-owned original goes when its copy is deleted. */
function deletesWithCopy(claim: PermissionClaim, owner: Owner): boolean {
  return owner === "Provider" && claim.onConflict?.recreateWhenConsumerSideDeleted === false;
}

export async function reconcileClaimedObject(
  ctx: ExportContext,
  claim: PermissionClaim,
  sides: ClaimSides,
  appNamespace: string,
  name: string,
): Promise<ClaimOutcome> {
  const mapped = providerNamespace(ctx.binding.uid, appNamespace);
  // our copies decide their owner; another object counts only while the claim selects it
  const view = (obj: KubeObject | undefined, originalOwner: Owner): SideView => {
    if (obj === undefined) return undefined;
    if (isOurCopy(ctx, obj, originalOwner)) return { obj, ours: true };
    return selects(claim, obj, appNamespace) ? { obj, ours: false } : undefined;
  };
  const verdict = decideOwnership(
    claim,
    view(sides.provider.get(name, mapped), "Consumer"),
    view(sides.consumer.get(name, appNamespace), "Provider"),
  );
  switch (verdict.action) {
    case "none":
      return { result: "unchanged" };
    case "conflict":
      return resolveConflict(ctx, claim, sides, verdict.owner, appNamespace, name);
    case "transfer":
      return transfer(ctx, claim, placed(ctx, sides, verdict.owner, appNamespace), verdict.owner, name);
    default:
      return syncPair(ctx, claim, placed(ctx, sides, verdict.owner, appNamespace), verdict, appNamespace, name);
  }
}

async function syncPair(
  ctx: ExportContext,
  claim: PermissionClaim,
  at: Placed,
  verdict: { action: "sync" | "unclaimed"; owner: Owner },
  appNamespace: string,
  name: string,
): Promise<ClaimOutcome> {
  const { owner } = verdict;
  const ref = claimRef(claim);
  let original = at.origin.get(name, at.originNs);
  const copy = at.copySide.get(name, at.copyNs);
  const ourCopy = copy !== undefined && isOurCopy(ctx, copy, owner);
  if (original === undefined && ourCopy) {
    // About to delete a copy because its original is not in the cache: only the original's
    // cluster's own NotFound proves it gone (a cache may have been filled by a broken relist).
    original = await at.origin.client.get(ref, name, at.originNs);
    if (original !== undefined) return { result: "unchanged" }; // its event is on the way
  }
  if (verdict.action === "unclaimed" || original === undefined || !selects(claim, original, appNamespace)) {
    if (!ourCopy || copy.metadata.deletionTimestamp !== undefined) return { result: "unchanged" };
    // the sync removes this copy itself: it must not read as the consumer deleting it
    if (original !== undefined && original.metadata.deletionTimestamp === undefined) {
      await forgetCopy(at.origin.client, ref, original);
    }
    await at.copySide.client.delete(ref, name, at.copyNs, { uid: copy.metadata.uid });
    return { result: "deleted" };
  }
  if (copy !== undefined && !ourCopy) return foreign(ctx, claim, at.copyNs, name);

  if (copy === undefined) {
    if (deletesWithCopy(claim, owner) && original.metadata.annotations?.[annotations.copiedTo]) {
      // a copy was made and is gone: deleted on the consumer side, which the claim says deletes
      // the original too, but only on the consumer cluster's own NotFound
      const now = await at.copySide.client.get(ref, name, at.copyNs);
      if (now === undefined) {
        await at.origin.client.delete(ref, name, at.originNs, { uid: original.metadata.uid });
        return { result: "deleted" };
      }
      if (isOurCopy(ctx, now, owner)) return { result: "unchanged" }; // its event is on the way
      return foreign(ctx, claim, at.copyNs, name);
    }
    return createCopy(ctx, claim, at, owner, original, name);
  }
  if (copy.metadata.deletionTimestamp !== undefined) return { result: "unchanged" }; // its deletion event follows

  let wrote = false;
  const back = writtenBack(claim, owner, original, copy);
  if (back !== undefined) {
    original = await at.origin.client.update(ref, back);
    wrote = true;
  }
  const desired = desiredCopy(ctx, claim, owner, original, copy, at.copyNs, name);
  const same =
    isDeepStrictEqual(payload(copy), payload(desired)) &&
    isDeepStrictEqual(copy.metadata.labels ?? {}, desired.metadata.labels) &&
    Object.entries(desired.metadata.annotations ?? {}).every(([k, v]) => copy.metadata.annotations?.[k] === v);
  if (same) return { result: wrote ? "written" : "unchanged" };
  // a Secret's type cannot change in place; update.alwaysRecreate asks the same for any change
  if (copy.type !== desired.type || claim.update?.alwaysRecreate === true) {
    if (deletesWithCopy(claim, owner)) await forgetCopy(at.origin.client, ref, original);
    await at.copySide.client.delete(ref, name, at.copyNs, { uid: copy.metadata.uid });
    const created = await at.copySide.client.create(ref, desired);
    if (deletesWithCopy(claim, owner)) await rememberCopy(at.origin.client, ref, original, created);
    return { result: "written" };
  }
  await at.copySide.client.update(ref, {
    ...desired,
    metadata: {
      ...desired.metadata,
      resourceVersion: copy.metadata.resourceVersion,
      annotations: { ...copy.metadata.annotations, ...desired.metadata.annotations },
    },
  });
  return { result: "written" };
}

function desiredCopy(
  ctx: ExportContext,
  claim: PermissionClaim,
  owner: Owner,
  original: KubeObject,
  copy: KubeObject | undefined,
  namespace: string,
  name: string,
): KubeObject {
  const content = copyContent(claim, owner, original, copy);
  return {
    apiVersion: original.apiVersion,
    kind: original.kind,
    metadata: {
      name,
      namespace,
      labels: { ...content.labels, [labels.binding]: ctx.binding.uid, [labels.copyOf]: copyLabelValue(owner) },
      annotations: { ...content.annotations, [annotations.sourceUid]: original.metadata.uid ?? "" },
    },
    ...content.payload,
  };
}

async function createCopy(
  ctx: ExportContext,
  claim: PermissionClaim,
  at: Placed,
  owner: Owner,
  original: KubeObject,
  name: string,
): Promise<ClaimOutcome> {
  const ref = claimRef(claim);
  const desired = desiredCopy(ctx, claim, owner, original, undefined, at.copyNs, name);
  let created: KubeObject;
  try {
    created = await at.copySide.client.create(ref, desired);
  } catch (err) {
    // The copy side's cache may hold only our copies: a foreign object of that name shows up here.
    if (!(err instanceof KubeApiError) || err.code !== 409) throw err;
    const existing = await at.copySide.client.get(ref, name, at.copyNs);
    if (existing === undefined || isOurCopy(ctx, existing, owner)) throw err; // our own copy, not yet in the cache: the retry sees it
    // create.replaceExisting (owner Provider): the provider's object takes the name over
    if (owner !== "Provider" || claim.create?.replaceExisting !== true) return foreign(ctx, claim, at.copyNs, name);
    created = await replace(at.copySide.client, ref, existing, desired);
  }
  if (deletesWithCopy(claim, owner)) await rememberCopy(at.origin.client, ref, original, created);
  return { result: "written" };
}

/** Both sides hold an object of the name, neither our copy: replaced when the claim says so, else left alone. */
async function resolveConflict(
  ctx: ExportContext,
  claim: PermissionClaim,
  sides: ClaimSides,
  owner: Owner | undefined,
  appNamespace: string,
  name: string,
): Promise<ClaimOutcome> {
  if (owner === "Provider" && claim.create?.replaceExisting === true) {
    const at = placed(ctx, sides, owner, appNamespace);
    const original = at.origin.get(name, at.originNs);
    const existing = at.copySide.get(name, at.copyNs);
    if (original !== undefined && existing !== undefined) {
      const desired = desiredCopy(ctx, claim, owner, original, undefined, at.copyNs, name);
      const created = await replace(at.copySide.client, claimRef(claim), existing, desired);
      if (deletesWithCopy(claim, owner)) await rememberCopy(at.origin.client, claimRef(claim), original, created);
      return { result: "written" };
    }
  }
  // the object that is not the owner's is the one in the way (owner unknown: the app cluster's)
  const namespace = owner === "Consumer" ? providerNamespace(ctx.binding.uid, appNamespace) : appNamespace;
  return foreign(ctx, claim, namespace, name);
}

/**
 * autoAdopt, autoDonate (or klutch-bind's owner annotation): an object made on one side belongs to
 * the other. The owner's side gets a new original made from it, then the object becomes its copy.
 * The new original names the object it came from, and a donated object is marked on the control
 * plane first, so a transfer cut short is finished, not mistaken for a conflict.
 */
async function transfer(
  ctx: ExportContext,
  claim: PermissionClaim,
  at: Placed,
  owner: Owner,
  name: string,
): Promise<ClaimOutcome> {
  const ref = claimRef(claim);
  let from = at.copySide.get(name, at.copyNs);
  if (from === undefined) return { result: "unchanged" };
  let original = at.origin.get(name, at.originNs);
  if (original === undefined) {
    if (owner === "Consumer" && from.metadata.annotations?.[annotations.transferringTo] !== owner) {
      // the proof a resumed donation needs (claim-ownership.ts), where the tenant cannot write
      from = await at.copySide.client.mergePatch(ref, name, at.copyNs, {
        metadata: {
          resourceVersion: from.metadata.resourceVersion,
          annotations: { [annotations.transferringTo]: owner },
        },
      });
    }
    // the owner's side sees of the object only what crosses back to an original (klutch-bind: nothing by default)
    const back = backKeys(claim, owner);
    const uid = from.metadata.uid ?? "";
    original = await at.origin.client.create(ref, {
      apiVersion: from.apiVersion,
      kind: from.kind,
      metadata: {
        name,
        namespace: at.originNs,
        labels: pick(from.metadata.labels, back.labels),
        annotations: {
          ...pick(from.metadata.annotations, back.annotations),
          [klutchOwnerAnnotation]: owner,
          [annotations.transferredFrom]: uid,
          ...(deletesWithCopy(claim, owner) ? { [annotations.copiedTo]: uid } : {}),
        },
      },
      ...payload(from),
    });
  }
  const { [annotations.transferringTo]: _done, ...kept } = from.metadata.annotations ?? {};
  await at.copySide.client.update(ref, {
    ...from,
    metadata: {
      ...from.metadata,
      labels: { ...from.metadata.labels, [labels.binding]: ctx.binding.uid, [labels.copyOf]: copyLabelValue(owner) },
      annotations: { ...kept, [annotations.sourceUid]: original.metadata.uid ?? "" },
    },
  });
  return { result: "written" };
}

/** Marks an original as copied, so its copy's deletion on the consumer side can be told from never having had one. */
async function rememberCopy(client: KubeClient, ref: ResourceRef, original: KubeObject, copy: KubeObject) {
  const uid = copy.metadata.uid ?? "";
  if (original.metadata.annotations?.[annotations.copiedTo] === uid) return;
  await client.mergePatch(ref, original.metadata.name, original.metadata.namespace, {
    metadata: { annotations: { [annotations.copiedTo]: uid } },
  });
}

async function forgetCopy(client: KubeClient, ref: ResourceRef, original: KubeObject) {
  if (original.metadata.annotations?.[annotations.copiedTo] === undefined) return;
  await client.mergePatch(ref, original.metadata.name, original.metadata.namespace, {
    metadata: { annotations: { [annotations.copiedTo]: null } },
  });
}

/** Makes a conflicting object the claim's copy: the same name, the original's content and our marks. */
async function replace(
  client: KubeClient,
  ref: ResourceRef,
  existing: KubeObject,
  desired: KubeObject,
): Promise<KubeObject> {
  if (existing.type !== desired.type) {
    await client.delete(ref, existing.metadata.name, existing.metadata.namespace, { uid: existing.metadata.uid });
    return client.create(ref, desired);
  }
  return client.update(ref, {
    ...desired,
    metadata: { ...desired.metadata, resourceVersion: existing.metadata.resourceVersion },
  });
}
