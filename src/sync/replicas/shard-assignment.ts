// The pure part of sharding (shards.ts does the I/O): which replicas are live, which replica a
// binding belongs to, and what a replica does about it.
//
// Membership: every replica holds a Lease of its own. A replica counts as live while the time since
// this process last saw its Lease change is within the Lease's duration (measured on the local
// clock only, as client-go does, so clock skew between replicas does not matter).
//
// Assignment: rendezvous hashing of the binding's uid over the live replicas, so every replica that
// sees the same members computes the same owner, and a replica joining or leaving moves only its
// own share.
//
// Fencing: a replica's Lease lists the bindings it serves or is about to serve. A replica starts a
// binding only when it is the owner, its own Lease already lists the binding (written before the
// view it decides on was read), and no other live replica's Lease lists it; an expired Lease's list
// is void. It drops a claim another live Lease also holds (both back off; the next round decides).
// It stops a binding that is no longer its own first, and only then removes it from its Lease.
import { createHash } from "node:crypto";

/** A replica's Lease as this process saw it. */
export type MemberLease = {
  identity: string;
  /** binding uids the Lease lists */
  serving: readonly string[];
  durationMs: number;
  /** changes with every write of the Lease (its resourceVersion) */
  version: string;
  /** its holder gave it up */
  released: boolean;
};

/** When this process last saw each Lease change, by identity. */
export type Observations = Map<string, { version: string; at: number }>;

/** Records the Leases of a fresh list; Leases gone from the list are forgotten. */
export function observe(previous: Observations, leases: readonly MemberLease[], now: number): Observations {
  const next: Observations = new Map();
  for (const lease of leases) {
    const before = previous.get(lease.identity);
    next.set(lease.identity, before?.version === lease.version ? before : { version: lease.version, at: now });
  }
  return next;
}

/** Whether a Lease's holder still counts: not released, and changed within its duration. */
export function isLive(lease: MemberLease, observations: Observations, now: number): boolean {
  const seen = observations.get(lease.identity);
  return !lease.released && seen !== undefined && now - seen.at <= lease.durationMs;
}

function score(member: string, uid: string): string {
  return createHash("sha256").update(member).update("\n").update(uid).digest("hex");
}

/** Rendezvous (highest random weight) hashing: the member with the highest score for uid. */
export function ownerOf(uid: string, members: readonly string[]): string | undefined {
  let best: { member: string; score: string } | undefined;
  for (const member of members) {
    const s = score(member, uid);
    if (best === undefined || s > best.score || (s === best.score && member < best.member)) best = { member, score: s };
  }
  return best?.member;
}

export type ShardView = {
  me: string;
  /** uids of every binding there is now */
  bindings: readonly string[];
  /** every Lease listed, mine among them */
  leases: readonly MemberLease[];
  observations: Observations;
  now: number;
  /** the bindings this replica runs now */
  serving: ReadonlySet<string>;
  /** what this replica's Lease listed when the leases were read (written before that read) */
  written: ReadonlySet<string>;
  /** what this replica's Lease is to list (serving, plus claims not yet written or confirmed) */
  published: ReadonlySet<string>;
};

export type ShardPlan = {
  /** live replicas, me among them */
  members: string[];
  /** run now: hand-over stops, and only then removed from the Lease */
  stop: string[];
  /** claims no longer wanted, or held by another live replica too: removed from the Lease */
  drop: string[];
  /** claimed, written, and held by no other live replica: start serving */
  start: string[];
  /** mine and free: list them in the Lease; they start once a later view confirms the claim */
  claim: string[];
};

/** What this replica does next about its bindings, given one consistent view of the Leases. */
export function planShard(view: ShardView): ShardPlan {
  const others = view.leases.filter((l) => l.identity !== view.me && isLive(l, view.observations, view.now));
  const members = [...new Set([view.me, ...others.map((l) => l.identity)])].sort();
  const heldElsewhere = new Set(others.flatMap((l) => l.serving));
  const mine = new Set(view.bindings.filter((uid) => ownerOf(uid, members) === view.me));
  const plan: ShardPlan = { members, stop: [], drop: [], start: [], claim: [] };
  for (const uid of view.serving) if (!mine.has(uid)) plan.stop.push(uid);
  for (const uid of view.published) {
    if (view.serving.has(uid)) continue;
    if (!mine.has(uid) || heldElsewhere.has(uid)) plan.drop.push(uid);
    else if (view.written.has(uid)) plan.start.push(uid);
  }
  for (const uid of mine) {
    if (!view.published.has(uid) && !heldElsewhere.has(uid)) plan.claim.push(uid);
  }
  return plan;
}

/**
 * How long a replica may go without renewing its Lease before it must stop everything: the others
 * measure the Lease's expiry from when they saw the last renewal, which was sent after this
 * replica's clock read lastRenewSent, so stopping by lastRenewSent + renewDeadline leaves
 * durationMs - renewDeadline for the stop itself.
 */
export function renewDeadlineMs(durationMs: number): number {
  return Math.floor((durationMs * 2) / 3);
}

/**
 * How long after its last renewal was acknowledged a replica that lost its Lease waits before it
 * joins again under a new identity: the others saw that renewal at their next list of the Leases (a
 * renewal period later at most, as they list at every renewal of their own), and count the Lease
 * for its duration from then. The new member's claims are safe anyway (it starts a binding only
 * once no other live Lease lists it); waiting keeps the old and the new identity from counting as
 * two live members at once.
 */
export function rejoinAfterMs(durationMs: number): number {
  return durationMs + Math.ceil(durationMs / 5) + 1000;
}

/** Leases expired this long ago belong to replicas that are gone for good: any replica deletes them. */
export function forgottenAfterMs(durationMs: number): number {
  return durationMs * 4;
}
