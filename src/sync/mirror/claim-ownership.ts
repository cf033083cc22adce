// Who owns a claimed object, decided once per object and kept: the side that holds our copy tells
// it; otherwise klutch-bind's owner annotation on the object, or the side that created it, turned
// over by autoAdopt (the consumer's become the provider's) or autoDonate (the reverse). A claim with
// an owner claims only objects of that owner; a claim without one claims both sides' objects.

import { annotations } from "../../api/naming.ts";
import type { Owner, PermissionClaim } from "../../export/types.ts";
import type { KubeObject } from "../../kube/client.ts";

/** klutch-bind's mark of an object's owner ("Provider" or "Consumer") */
export const klutchOwnerAnnotation = "klutch.anynines.com/resource-owner";

/** What one side holds under a name: ours says it is this binding's copy of the other side's original. */
export type SideView = { obj: KubeObject; ours: boolean } | undefined;

export type Verdict =
  /** nothing of this claim under this name */
  | { action: "none" }
  /** the original lives with owner, the copy on the other side (made, kept or deleted) */
  | { action: "sync"; owner: Owner }
  /** our copy of an original this claim no longer covers: it goes */
  | { action: "unclaimed"; owner: Owner }
  /** the other side's object becomes the copy of a new original made on owner's side */
  | { action: "transfer"; owner: Owner }
  /** both sides hold an object of the name and neither is our copy */
  | { action: "conflict"; owner: Owner | undefined };

export function claimsOwner(claim: PermissionClaim, owner: Owner): boolean {
  return claim.selector.owner === undefined || claim.selector.owner === owner;
}

/** Which sides need every object of the claim watched (an original may start there), not just our copies. */
export function watchedInFull(claim: PermissionClaim): { provider: boolean; consumer: boolean } {
  return {
    provider: startsOwnedBy(claim, "Provider") !== undefined,
    consumer: startsOwnedBy(claim, "Consumer") !== undefined,
  };
}

/** The owner of an unmarked object its creator side holds alone, or undefined when the claim does not cover it. */
function startsOwnedBy(claim: PermissionClaim, creator: Owner, marked?: Owner): Owner | undefined {
  const owner =
    marked ??
    (creator === "Consumer" && claim.autoAdopt === true
      ? "Provider"
      : creator === "Provider" && claim.autoDonate === true
        ? "Consumer"
        : creator);
  return claimsOwner(claim, owner) ? owner : undefined;
}

function markedOwner(obj: KubeObject): Owner | undefined {
  const value = obj.metadata.annotations?.[klutchOwnerAnnotation];
  return value === "Provider" || value === "Consumer" ? value : undefined;
}

export function decideOwnership(claim: PermissionClaim, provider: SideView, consumer: SideView): Verdict {
  // our copy on one side: the owner was decided when it was made
  const copied: Owner | undefined = consumer?.ours ? "Provider" : provider?.ours ? "Consumer" : undefined;
  if (copied !== undefined) return { action: claimsOwner(claim, copied) ? "sync" : "unclaimed", owner: copied };
  if (provider !== undefined && consumer !== undefined) {
    const resumed = cutShortTransfer(claim, provider.obj, consumer.obj);
    if (resumed !== undefined) return { action: "transfer", owner: resumed };
    const owner = markedOwner(provider.obj) ?? markedOwner(consumer.obj) ?? claim.selector.owner;
    if (owner !== undefined && !claimsOwner(claim, owner)) return { action: "none" };
    return { action: "conflict", owner };
  }
  const [creator, view]: [Owner, SideView] = provider !== undefined ? ["Provider", provider] : ["Consumer", consumer];
  if (view === undefined) return { action: "none" };
  const owner = startsOwnedBy(claim, creator, markedOwner(view.obj));
  if (owner === undefined) return { action: "none" };
  return { action: owner === creator ? "sync" : "transfer", owner };
}

/**
 * The new owner of a transfer cut short between making the new original and marking the other
 * object as its copy. Only a transfer the claim makes now, and proven on the control plane: the app
 * cluster's objects are the tenant's to write, a transferred-from there proves nothing.
 */
function cutShortTransfer(claim: PermissionClaim, provider: KubeObject, consumer: KubeObject): Owner | undefined {
  const uids = { provider: provider.metadata.uid, consumer: consumer.metadata.uid };
  // adoption: the new original is the provider's, made by the sync on the control plane
  const adopted = provider.metadata.annotations?.[annotations.transferredFrom];
  if (
    adopted !== undefined &&
    adopted === uids.consumer &&
    startsOwnedBy(claim, "Consumer", markedOwner(consumer)) === "Provider"
  ) {
    return "Provider";
  }
  // donation: the provider's object was marked before the consumer's new original was made from it
  const donated = consumer.metadata.annotations?.[annotations.transferredFrom];
  if (
    donated !== undefined &&
    donated === uids.provider &&
    provider.metadata.annotations?.[annotations.transferringTo] === "Consumer" &&
    startsOwnedBy(claim, "Provider", markedOwner(provider)) === "Consumer"
  ) {
    return "Consumer";
  }
  return undefined;
}
