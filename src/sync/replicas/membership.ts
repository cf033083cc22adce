// A replica's membership among the sync's shards (shards.ts): its identity, its Lease and what it
// lists, what it serves and hands over; the Leases as the assignment reads them (shard-assignment.ts).
import { hostname } from "node:os";
import type { Logger } from "pino";
import type { KubeObject } from "../../kube/client.ts";
import type { MemberLease, Observations } from "./shard-assignment.ts";

export const shardLabel = "bind.klutch.dev/sync-shard";
export const servingAnnotation = "bind.klutch.dev/serving";
export const leasePrefix = "klutch-bind-sync-shard-";

/** A name fit for a Lease: POD_NAME or the host name, lowercased, and a random suffix. */
export function newIdentity(base = process.env.POD_NAME ?? hostname()): string {
  const clean = base
    .toLowerCase()
    .replace(/[^a-z0-9.-]+/g, "-")
    .replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, "")
    .slice(0, 180);
  return `${clean || "sync"}-${Math.random().toString(36).slice(2, 8)}`;
}

/**
 * One identity's membership: its Lease and what it serves. A lost membership is never used again:
 * answers that come for it later change nothing, and a rejoin is a new one.
 */
export class Membership {
  readonly identity: string;
  readonly log: Logger;
  lease: KubeObject | undefined;
  /** bindings running here: what serves() answers */
  readonly serving = new Set<string>();
  /** bindings no longer served, their syncs being stopped while the Lease still lists them */
  readonly handingOver = new Set<string>();
  /** what the Lease is to list: serving, and claims */
  readonly published = new Set<string>();
  /** what the Lease listed at its last successful write */
  written = new Set<string>();
  observations: Observations;
  /** this clock when the last successful write of the Lease was sent, and when its answer came */
  renewedSent = 0;
  renewedAck = 0;
  /** when the write under way was sent */
  writing: number | undefined;
  /** writes are serialized */
  writes: Promise<void> = Promise.resolve();
  /** fires when the Lease went unrenewed for too long */
  deadline: NodeJS.Timeout | undefined;
  /** its Lease was written once: it is this replica's membership (until lost) */
  joined = false;
  lost: string | undefined;
  lostAt = 0;

  constructor(identity: string, logger: Logger, observations: Observations = new Map()) {
    this.identity = identity;
    this.log = logger.child({ shard: identity });
    this.observations = observations;
  }

  get leaseName(): string {
    return `${leasePrefix}${this.identity}`;
  }
}

/** What a lost membership saw of the Leases, its own as of its last renewal: a new member starts from there. */
export function carriedObservations(lost: Membership): Observations {
  const seen = new Map(lost.observations);
  const version = lost.lease?.metadata.resourceVersion;
  if (version !== undefined) seen.set(lost.identity, { version, at: lost.renewedAck });
  return seen;
}

export function memberLease(lease: KubeObject): MemberLease {
  const spec = (lease.spec ?? {}) as { holderIdentity?: string; leaseDurationSeconds?: number };
  const serving = lease.metadata.annotations?.[servingAnnotation] ?? "";
  return {
    identity: lease.metadata.name.startsWith(leasePrefix)
      ? lease.metadata.name.slice(leasePrefix.length)
      : lease.metadata.name,
    serving: serving === "" ? [] : serving.split(","),
    durationMs: (spec.leaseDurationSeconds ?? 15) * 1000,
    version: lease.metadata.resourceVersion ?? "",
    released: spec.holderIdentity === undefined || spec.holderIdentity === "",
  };
}
