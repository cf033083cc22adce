// Sharding (klutch-bind sync --shards auto): each replica serves a share of the bindings, and
// replicas come and go freely. Kubernetes holds all the state:
//
// - membership: a Lease per replica, klutch-bind-sync-shard-IDENTITY in the Leases' namespace,
//   labelled bind.klutch.dev/sync-shard=member, renewed every fifth of its duration. The identity
//   is new at every start (pod name and a random suffix), so a restarted process never mistakes
//   its former Lease for its own;
// - assignment: rendezvous hashing of each binding's uid over the live replicas
//   (shard-assignment.ts);
// - fencing: the Lease's annotation bind.klutch.dev/serving lists the uids of the bindings the
//   replica serves or claims. A replica starts a binding only after its own Lease lists it and a
//   later read of the Leases shows no other live Lease listing it; it removes a binding from its
//   Lease only after it stopped serving it. So on a join the old owner stops the moved bindings
//   and publishes its shorter list before the new owner starts them; when a replica dies, its list
//   is void once its Lease expired (measured from when each replica last saw it change). A replica
//   that cannot renew its Lease within two thirds of the duration stops serving everything (onLost:
//   the CLI exits) before the others could see the Lease expire.
//
// Stopping a binding here is a hand-over: its syncs stop, nothing is released (release.ts runs only
// for a deleted binding, on the replica that serves it).
import { hostname } from "node:os";
import type { Logger } from "pino";
import { KubeApiError, type KubeClient, type KubeObject } from "../kube/client.ts";
import { kubeMicroTime } from "../kube/time.ts";
import { bindingKey } from "./binding-spec.ts";
import { refs } from "./resources.ts";
import {
  forgottenAfterMs,
  isLive,
  type MemberLease,
  type Observations,
  observe,
  planShard,
  renewDeadlineMs,
} from "./shard-assignment.ts";

export const shardLabel = "bind.klutch.dev/sync-shard";
export const servingAnnotation = "bind.klutch.dev/serving";
const leasePrefix = "klutch-bind-sync-shard-";

/** What the binding controller does for the coordinator. */
export type ShardedController = {
  /** every binding (of either kind) the controller sees */
  bindings(): KubeObject[];
  /** reconcile these bindings soon (they start being served) */
  resync(keys: string[]): void;
  /** resolves once each key was reconciled as not served, its syncs stopped */
  handOver(keys: string[]): Promise<void>;
};

export type ShardOptions = {
  client: KubeClient;
  namespace: string;
  leaseDurationSeconds: number;
  logger: Logger;
  /** default: POD_NAME or the host name, and a random suffix */
  identity?: string;
  /** the Lease could not be renewed in time, or was taken away: stop at once */
  onLost: (reason: string) => void;
};

/** A name fit for a Lease: POD_NAME or the host name, lowercased, and a random suffix. */
export function newIdentity(base = process.env.POD_NAME ?? hostname()): string {
  const clean = base
    .toLowerCase()
    .replace(/[^a-z0-9.-]+/g, "-")
    .replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, "")
    .slice(0, 180);
  return `${clean || "sync"}-${Math.random().toString(36).slice(2, 8)}`;
}

export class ShardCoordinator {
  readonly identity: string;
  readonly #o: ShardOptions;
  readonly #durationMs: number;
  readonly #log: Logger;
  #controller: ShardedController | undefined;
  /** bindings running here: what serves() answers */
  #serving = new Set<string>();
  /** what the Lease is to list: serving, and claims */
  #published = new Set<string>();
  /** what the Lease listed at its last successful write */
  #written = new Set<string>();
  #keys = new Map<string, string>();
  #observations: Observations = new Map();
  #lease: KubeObject | undefined;
  /** fires when the Lease went unrenewed for too long */
  #deadline: NodeJS.Timeout | undefined;
  #writes: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  #rebalancing: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  /** stop() began: no more claims or starts */
  #leaving = false;
  #lost: string | undefined;

  constructor(options: ShardOptions) {
    this.#o = options;
    this.identity = options.identity ?? newIdentity();
    this.#durationMs = options.leaseDurationSeconds * 1000;
    this.#log = options.logger.child({ shard: this.identity });
  }

  get leaseName(): string {
    return `${leasePrefix}${this.identity}`;
  }

  /** the bindings (uid to key) this replica serves now */
  get serving(): Map<string, string> {
    return new Map([...this.#serving].map((uid) => [uid, this.#keys.get(uid) ?? uid]));
  }

  /** Whether this replica serves the binding now; an unknown binding asks for a rebalance. */
  serves(uid: string): boolean {
    if (this.#serving.has(uid)) return true;
    if (!this.#published.has(uid) && !this.#keys.has(uid)) this.#kick();
    return false;
  }

  /** Creates this replica's Lease and starts renewing it and balancing bindings. */
  async start(controller: ShardedController): Promise<void> {
    this.#controller = controller;
    await this.#write();
    this.#log.info(
      { lease: `${this.#o.namespace}/${this.leaseName}`, leaseDurationSeconds: this.#o.leaseDurationSeconds },
      "shard member",
    );
    const tickMs = this.#durationMs / 5;
    const tick = () => {
      if (this.#stopped) return;
      // a rebalance renews the Lease as it begins; one still busy (handing bindings over) does not,
      // nor does stop() while it hands everything over
      if (this.#rebalancing === undefined && !this.#leaving) this.#kick();
      else void this.#write().catch((err: unknown) => this.#log.warn({ err: message(err) }, "shard lease not renewed"));
      this.#timer = setTimeout(tick, tickMs);
    };
    this.#timer = setTimeout(tick, tickMs);
    this.#kick();
  }

  /**
   * Hands every binding over: stops serving them (through the controller, still running) while
   * the Lease is still renewed, then deletes the Lease, so the others take over without waiting
   * for it to expire.
   */
  async stop(): Promise<void> {
    this.#leaving = true;
    await this.#rebalancing;
    if (this.#lost === undefined) {
      const keys = [...this.#serving].map((uid) => this.#keys.get(uid) ?? uid);
      this.#serving.clear();
      await this.#controller?.handOver(keys);
      this.#published.clear();
      this.#stopped = true;
      clearTimeout(this.#timer);
      clearTimeout(this.#deadline);
      const uid = this.#lease?.metadata.uid;
      try {
        await this.#writes;
        await this.#o.client.delete(refs.leases, this.leaseName, this.#o.namespace, uid ? { uid } : {});
        this.#log.info({ handedOver: keys.length }, "shard lease released");
      } catch (err) {
        // nothing is served here any more: the others take over once the Lease expires
        this.#log.warn({ err: message(err), handedOver: keys.length }, "shard lease not deleted; it expires");
      }
    }
    this.#stopped = true;
    clearTimeout(this.#timer);
    clearTimeout(this.#deadline);
  }

  #kick(): void {
    if (this.#stopped || this.#leaving || this.#controller === undefined) return;
    if (this.#rebalancing !== undefined) {
      this.#again = true;
      return;
    }
    this.#rebalancing = (async () => {
      do {
        this.#again = false;
        try {
          await this.#rebalance();
        } catch (err) {
          this.#log.warn({ err: message(err) }, "shard rebalance failed; trying again at the next renewal");
        }
      } while (this.#again && !this.#stopped && !this.#leaving);
    })().finally(() => {
      this.#rebalancing = undefined;
    });
  }

  /** Arms the deadline anew from a renewal sent at sent (this clock); a later renewal moves it. */
  #armDeadline(sent: number): void {
    clearTimeout(this.#deadline);
    const deadlineMs = renewDeadlineMs(this.#durationMs);
    this.#deadline = setTimeout(
      () => this.#lose(`shard lease not renewed for ${deadlineMs / 1000} s`),
      Math.max(0, sent + deadlineMs - Date.now()),
    );
  }

  #lose(reason: string): void {
    if (this.#lost !== undefined) return;
    this.#lost = reason;
    this.#stopped = true;
    clearTimeout(this.#timer);
    clearTimeout(this.#deadline);
    this.#serving.clear(); // from now on every reconcile of a binding of ours stops it
    this.#log.error({ reason }, "shard lease lost: serving nothing");
    this.#o.onLost(reason);
  }

  /** Writes the Lease with what is published now (creating it the first time); writes are serialized. */
  #write(): Promise<void> {
    const next = this.#writes.then(() => this.#writeNow());
    this.#writes = next.catch(() => undefined);
    return next;
  }

  async #writeNow(): Promise<void> {
    if (this.#lost !== undefined) return;
    const listed = new Set(this.#published);
    const sent = Date.now();
    const body = (metadata: KubeObject["metadata"]): KubeObject => ({
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: {
        ...metadata,
        labels: { ...metadata.labels, [shardLabel]: "member" },
        annotations: { ...metadata.annotations, [servingAnnotation]: [...listed].sort().join(",") },
      },
      spec: {
        holderIdentity: this.identity,
        leaseDurationSeconds: this.#o.leaseDurationSeconds,
        acquireTime: (this.#lease?.spec as { acquireTime?: string } | undefined)?.acquireTime ?? kubeMicroTime(),
        renewTime: kubeMicroTime(),
      },
    });
    try {
      this.#lease =
        this.#lease === undefined
          ? await this.#o.client.create(refs.leases, body({ name: this.leaseName, namespace: this.#o.namespace }))
          : await this.#o.client.update(refs.leases, body(this.#lease.metadata));
    } catch (err) {
      if (err instanceof KubeApiError && err.code === 404) {
        this.#lose("this replica's shard lease was deleted");
        return;
      }
      if (err instanceof KubeApiError && err.code === 409 && this.#lease !== undefined) {
        // an earlier write that timed out here went through after all: go on from the stored Lease
        const stored = await this.#o.client.get(refs.leases, this.leaseName, this.#o.namespace);
        if (stored === undefined || (stored.spec as { holderIdentity?: string }).holderIdentity !== this.identity) {
          this.#lose("this replica's shard lease was changed by someone else");
          return;
        }
        this.#lease = stored;
        return this.#writeNow();
      }
      throw err;
    }
    this.#armDeadline(sent);
    this.#written = listed;
  }

  async #rebalance(): Promise<void> {
    const controller = this.#controller;
    if (controller === undefined || this.#stopped || this.#leaving) return;
    await this.#write(); // claims made since are written before the Leases are read
    const written = new Set(this.#written);
    const listed = await this.#o.client.list(refs.leases, {
      namespace: this.#o.namespace,
      labelSelector: `${shardLabel}=member`,
    });
    const now = Date.now();
    const leases = listed.items.map(memberLease);
    if (!leases.some((l) => l.identity === this.identity)) {
      this.#lose("this replica's shard lease is gone");
      return;
    }
    this.#observations = observe(this.#observations, leases, now);
    await this.#forget(listed.items, leases, now);
    const bindings = controller.bindings();
    this.#keys = new Map(bindings.map((b) => [b.metadata.uid ?? "", bindingKey(b)]));
    const plan = planShard({
      me: this.identity,
      bindings: [...this.#keys.keys()],
      leases,
      observations: this.#observations,
      now,
      serving: this.#serving,
      written,
      published: this.#published,
    });
    const key = (uid: string) => this.#keys.get(uid) ?? uid;
    if (plan.stop.length > 0) {
      for (const uid of plan.stop) this.#serving.delete(uid);
      this.#log.info({ members: plan.members, bindings: plan.stop.map(key) }, "handing bindings over");
      await controller.handOver(plan.stop.map(key));
      for (const uid of plan.stop) this.#published.delete(uid);
    }
    for (const uid of plan.drop) this.#published.delete(uid);
    if (plan.start.length > 0 && !this.#leaving) {
      for (const uid of plan.start) this.#serving.add(uid);
      this.#log.info({ members: plan.members, bindings: plan.start.map(key) }, "serving bindings");
      controller.resync(plan.start.map(key));
    }
    for (const uid of plan.claim) this.#published.add(uid);
    // a claim starts at the next round, after it is written; a shorter list is written at once
    if (plan.claim.length > 0 || plan.stop.length > 0 || plan.drop.length > 0) this.#again = true;
  }

  /** Deletes Leases of replicas gone long ago (a new identity at every start leaves them behind). */
  async #forget(items: KubeObject[], leases: MemberLease[], now: number): Promise<void> {
    for (const [i, lease] of leases.entries()) {
      const seen = this.#observations.get(lease.identity);
      const item = items[i];
      if (lease.identity === this.identity || seen === undefined || item === undefined) continue;
      if (isLive(lease, this.#observations, now) || now - seen.at <= forgottenAfterMs(lease.durationMs)) continue;
      const uid = item.metadata.uid;
      await this.#o.client.delete(refs.leases, item.metadata.name, item.metadata.namespace, uid ? { uid } : {});
      this.#log.info({ lease: item.metadata.name }, "deleted the shard lease of a replica gone long ago");
    }
  }
}

function memberLease(lease: KubeObject): MemberLease {
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

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
