// Sharding (klutch-bind sync --shards auto): each replica serves a share of the bindings, and
// replicas come and go freely. Kubernetes holds all the state:
//
// - membership: a Lease per replica, klutch-bind-sync-shard-IDENTITY in the Leases' namespace,
//   labelled bind.klutch.dev/sync-shard=member, renewed every fifth of its duration. The identity
//   is new at every start (pod name and a random suffix) and at every rejoin, so a replica never
//   mistakes a former Lease for its own;
// - assignment: rendezvous hashing of each binding's uid over the live replicas
//   (shard-assignment.ts);
// - fencing: the Lease's annotation bind.klutch.dev/serving lists the uids of the bindings the
//   replica serves or claims. A replica starts a binding only after its own Lease lists it and a
//   later read of the Leases shows no other live Lease listing it; it removes a binding from its
//   Lease only after it stopped serving it. So on a join the old owner stops the moved bindings
//   and publishes its shorter list before the new owner starts them; when a replica dies, its list
//   is void once its Lease expired (measured from when each replica last saw it change).
//
// A replica that cannot renew its Lease within two thirds of the duration (the API server answers
// too slowly, or the process got no CPU or was frozen), or finds it deleted or changed, has lost
// it: it stops serving everything at once, before the others could see the Lease expire. serves()
// and mayWrite() say no from then on (they read the clock themselves, so a reconcile woken after a
// stall by answers that came meanwhile sees the loss before the deadline's timer runs, and a
// renewal answered after the deadline does not count), the bindings' writes are refused
// (fence.ts), and the controller hands every binding over. Then the replica deletes the old Lease
// if it can and, once that Lease expired in every replica's eyes (rejoinAfterMs after its last
// renewal was answered, on this clock), joins again as a new member: a new identity, a new Lease,
// and the claims as above, retried with backoff while the API server cannot be reached. The
// process goes on; only SIGTERM (or SIGINT) ends it.
//
// Stopping a binding here is a hand-over: its syncs stop, nothing is released (release.ts runs only
// for a deleted binding, on the replica that serves it).
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import { bindingKey } from "../../api/binding-spec.ts";
import { refs } from "../../api/resources.ts";
import { KubeApiError, type KubeClient, type KubeObject } from "../../kube/client.ts";
import { kubeMicroTime } from "../../kube/time.ts";
import {
  carriedObservations,
  Membership,
  memberLease,
  newIdentity,
  servingAnnotation,
  shardLabel,
} from "./membership.ts";
import {
  forgottenAfterMs,
  isLive,
  type MemberLease,
  observe,
  planShard,
  rejoinAfterMs,
  renewDeadlineMs,
} from "./shard-assignment.ts";
import { StallGauges } from "./stall-gauges.ts";

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
  /** default: POD_NAME or the host name, and a random suffix; a rejoin adds a new suffix to it */
  identity?: string;
  /** the Lease was lost: this replica already serves nothing, and joins again by itself */
  onLost?: (reason: string) => void;
};

export class ShardCoordinator {
  readonly #o: ShardOptions;
  readonly #durationMs: number;
  #m: Membership;
  #controller: ShardedController | undefined;
  #keys = new Map<string, string>();
  #timer: NodeJS.Timeout | undefined;
  #rebalancing: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  /** stop() began: no more claims, starts or rejoins */
  #leaving = false;
  readonly #stopping = new AbortController();
  /** after a loss: the hand-over and the rejoin */
  #recovering: Promise<void> | undefined;
  /** for the log of a slow renewal or a loss (stall-gauges.ts) */
  readonly #gauges = new StallGauges();

  constructor(options: ShardOptions) {
    this.#o = options;
    this.#durationMs = options.leaseDurationSeconds * 1000;
    this.#m = new Membership(options.identity ?? newIdentity(), options.logger);
  }

  /** this replica's identity: a new one after every rejoin */
  get identity(): string {
    return this.#m.identity;
  }

  get leaseName(): string {
    return this.#m.leaseName;
  }

  /** the bindings (uid to key) this replica serves now */
  get serving(): Map<string, string> {
    return new Map([...this.#m.serving].map((uid) => [uid, this.#keys.get(uid) ?? uid]));
  }

  /**
   * Whether this replica serves the binding now; an unknown binding asks for a rebalance. Past the
   * renew deadline the Lease is lost here and now, whether or not the deadline's timer ran yet.
   */
  serves(uid: string): boolean {
    const m = this.#m;
    if (m.serving.has(uid)) return !this.#lateRenewal(m);
    if (m.lost === undefined && !m.published.has(uid) && !this.#keys.has(uid)) this.#kick();
    return false;
  }

  /**
   * Whether a binding's syncs may still write here: it is served, or being handed over while the
   * Lease still lists it (no other replica starts it before this one's list is shorter). Never
   * once the Lease is lost.
   */
  mayWrite(uid: string): boolean {
    const m = this.#m;
    if (!m.serving.has(uid) && !m.handingOver.has(uid)) return false;
    return !this.#lateRenewal(m);
  }

  /** Creates this replica's Lease and starts renewing it and balancing bindings. */
  async start(controller: ShardedController): Promise<void> {
    this.#controller = controller;
    this.#gauges.enable();
    await this.#join(this.#m);
    this.#m.log.info(
      { lease: `${this.#o.namespace}/${this.leaseName}`, leaseDurationSeconds: this.#o.leaseDurationSeconds },
      "shard member",
    );
  }

  /**
   * Hands every binding over: stops serving them (through the controller, still running) while
   * the Lease is still renewed, then deletes the Lease, so the others take over without waiting
   * for it to expire. After a loss it ends the wait or the retries to join again.
   */
  async stop(): Promise<void> {
    this.#leaving = true;
    this.#stopping.abort();
    await this.#rebalancing;
    await this.#recovering;
    const m = this.#m;
    if (m.lost === undefined) await this.#leave(m);
    await this.#recovering; // a loss during the hand-over
    this.#stopped = true;
    clearTimeout(this.#timer);
    clearTimeout(m.deadline);
    this.#gauges.disable();
  }

  /** Writes m's Lease (creating it), then makes m this replica's membership: renewals and rebalances begin. */
  async #join(m: Membership): Promise<void> {
    await this.#write(m);
    if (m.lost !== undefined || m.renewedSent === 0) throw new Error(m.lost ?? "the shard lease was not written");
    m.joined = true;
    this.#m = m;
    if (this.#leaving) return; // stop() deletes the Lease at once
    this.#renewEvery(m);
    this.#kick();
  }

  async #leave(m: Membership): Promise<void> {
    const uids = [...m.serving];
    const keys = uids.map((uid) => this.#keys.get(uid) ?? uid);
    this.#handingOver(m, uids);
    await this.#controller?.handOver(keys);
    m.handingOver.clear();
    m.published.clear();
    this.#stopped = true;
    clearTimeout(this.#timer);
    clearTimeout(m.deadline);
    await m.writes;
    // nothing is served here any more: should the delete fail, the others take over once the Lease expires
    if (await this.#deleteLease(m, { handedOver: keys.length })) {
      m.log.info({ handedOver: keys.length }, "shard lease released");
    }
  }

  /** Stops serving uids: their reconciles stop them, their syncs write on until then. */
  #handingOver(m: Membership, uids: string[]): void {
    for (const uid of uids) {
      m.serving.delete(uid);
      m.handingOver.add(uid);
    }
  }

  /** Deletes m's Lease (while it is m's own: its uid); true once done. Its bindings must be stopped. */
  async #deleteLease(m: Membership, fields: Record<string, unknown> = {}): Promise<boolean> {
    const uid = m.lease?.metadata.uid;
    if (uid === undefined) return false;
    try {
      await this.#o.client.delete(refs.leases, m.leaseName, this.#o.namespace, { uid });
      return true;
    } catch (err) {
      m.log.warn({ ...fields, err: message(err) }, "shard lease not deleted; it expires");
      return false;
    }
  }

  /** Renews m's Lease every fifth of its duration, mostly through a rebalance, until m is lost or stopped. */
  #renewEvery(m: Membership): void {
    clearTimeout(this.#timer);
    const tickMs = this.#durationMs / 5;
    const tick = () => {
      if (this.#stopped || m.lost !== undefined) return;
      // a rebalance renews the Lease as it begins; one still busy (handing bindings over) does not,
      // nor does stop() while it hands everything over
      if (this.#rebalancing === undefined && !this.#leaving) this.#kick();
      else void this.#write(m).catch((err: unknown) => m.log.warn({ err: message(err) }, "shard lease not renewed"));
      this.#timer = setTimeout(tick, tickMs);
    };
    this.#timer = setTimeout(tick, tickMs);
  }

  #kick(): void {
    if (this.#stopped || this.#leaving || this.#controller === undefined || this.#m.lost !== undefined) return;
    if (this.#rebalancing !== undefined) {
      this.#again = true;
      return;
    }
    this.#rebalancing = (async () => {
      do {
        this.#again = false;
        const m = this.#m;
        try {
          await this.#rebalance(m);
        } catch (err) {
          m.log.warn({ err: message(err) }, "shard rebalance failed; trying again at the next renewal");
        }
      } while (this.#again && !this.#stopped && !this.#leaving && this.#m.lost === undefined);
    })().finally(() => {
      this.#rebalancing = undefined;
    });
  }

  /** Whether m still holds its Lease by this clock: not lost, and renewed within the deadline. */
  #heldNow(m: Membership): boolean {
    return m.lost === undefined && Date.now() - m.renewedSent <= renewDeadlineMs(this.#durationMs);
  }

  /** Whether m's deadline passed (by this clock): then m is lost here and now. */
  #lateRenewal(m: Membership): boolean {
    if (this.#heldNow(m)) return false;
    this.#lose(m, this.#notRenewed());
    return true;
  }

  #notRenewed(): string {
    return `shard lease not renewed for ${renewDeadlineMs(this.#durationMs) / 1000} s`;
  }

  /** Arms the deadline anew from a renewal sent at sent (this clock); a later renewal moves it. */
  #armDeadline(m: Membership, sent: number): void {
    clearTimeout(m.deadline);
    m.deadline = setTimeout(
      () => this.#lose(m, this.#notRenewed()),
      Math.max(0, sent + renewDeadlineMs(this.#durationMs) - Date.now()),
    );
  }

  /** Stops serving everything at once (a hand-over), then joins again as a new member (#recover). */
  #lose(m: Membership, reason: string): void {
    if (m.lost !== undefined) return;
    m.lost = reason;
    m.lostAt = Date.now();
    clearTimeout(m.deadline);
    if (!m.joined) return; // its join fails
    clearTimeout(this.#timer);
    const keys = [...m.serving].map((uid) => this.#keys.get(uid) ?? uid);
    // serves() and mayWrite() say no from now on: reconciles stop these bindings, their syncs write nothing
    m.serving.clear();
    m.handingOver.clear();
    m.log.error(
      { reason, serving: keys.length, ...this.#stall(m) },
      "shard lease lost: serving nothing; joining again as a new member once it expired",
    );
    this.#gauges.reset();
    this.#o.onLost?.(reason);
    this.#recovering = this.#recover(m, keys).catch((err: unknown) =>
      m.log.error({ err: message(err) }, "shard rejoin failed (a bug; please report it)"),
    );
  }

  /**
   * What the log of a lost Lease says about the stall behind it: the time since the last renewal
   * was sent, how late this process noticed (its event loop was blocked for about as long), the
   * event loop's longest delay and the CPU time used since that renewal, and how long a renewal has
   * been under way (the API server's part).
   */
  #stall(m: Membership): Record<string, number> {
    const now = Date.now();
    return {
      sinceRenewalMs: now - m.renewedSent,
      deadlineMissedByMs: Math.max(0, now - m.renewedSent - renewDeadlineMs(this.#durationMs)),
      ...this.#gauges.read(),
      ...(m.writing !== undefined ? { renewalPendingMs: now - m.writing } : {}),
    };
  }

  /**
   * After a loss: hands every binding of the lost membership over, deletes its Lease if it can
   * (its bindings stopped, the others need not wait for it to expire), and once it expired in every
   * replica's eyes anyway, joins again.
   */
  async #recover(lost: Membership, keys: string[]): Promise<void> {
    await this.#controller?.handOver(keys);
    lost.published.clear();
    await lost.writes; // a renewal still under way may land yet: the wait counts from its answer
    await this.#deleteLease(lost);
    if (this.#leaving) return;
    if (!(await this.#pause(lost.renewedAck + rejoinAfterMs(this.#durationMs) - Date.now()))) return;
    let next = new Membership(newIdentity(this.#o.identity), this.#o.logger, carriedObservations(lost));
    for (let delayMs = this.#durationMs / 5; !this.#leaving; delayMs = Math.min(delayMs * 2, this.#durationMs * 2)) {
      if (next.lost !== undefined)
        next = new Membership(newIdentity(this.#o.identity), this.#o.logger, next.observations);
      try {
        await this.#join(next);
        next.log.info(
          {
            lease: `${this.#o.namespace}/${next.leaseName}`,
            previous: lost.identity,
            outOfServiceMs: Date.now() - lost.lostAt,
          },
          "shard member again: rejoined under a new identity",
        );
        return;
      } catch (err) {
        next.log.warn({ err: message(err), retryInMs: delayMs }, "shard lease not created; trying again");
        if (!(await this.#pause(delayMs))) return;
      }
    }
  }

  /** Waits ms; false once stop() began. */
  #pause(ms: number): Promise<boolean> {
    return sleep(Math.max(0, ms), true, { signal: this.#stopping.signal }).catch(() => false);
  }

  /** Writes m's Lease with what m publishes now (creating it the first time); writes are serialized. */
  #write(m: Membership): Promise<void> {
    const next = m.writes.then(() => this.#writeNow(m));
    m.writes = next.catch(() => undefined);
    return next;
  }

  async #writeNow(m: Membership): Promise<void> {
    if (m.lost !== undefined) return;
    const renewal = m.renewedSent > 0; // m held its Lease: it holds it only until the deadline
    // past the deadline (its timer not run yet: the event loop was blocked) a renewal is too late
    if (renewal && this.#lateRenewal(m)) return;
    const listed = new Set(m.published);
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
        holderIdentity: m.identity,
        leaseDurationSeconds: this.#o.leaseDurationSeconds,
        acquireTime: (m.lease?.spec as { acquireTime?: string } | undefined)?.acquireTime ?? kubeMicroTime(),
        renewTime: kubeMicroTime(),
      },
    });
    let stored: KubeObject;
    m.writing = sent;
    try {
      stored =
        m.lease === undefined
          ? await this.#o.client.create(refs.leases, body({ name: m.leaseName, namespace: this.#o.namespace }))
          : await this.#o.client.update(refs.leases, body(m.lease.metadata));
    } catch (err) {
      if (!(err instanceof KubeApiError) || m.lost !== undefined) throw err;
      if (err.code === 404 && m.lease !== undefined) {
        m.lease = undefined;
        this.#lose(m, "this replica's shard lease was deleted");
        return;
      }
      if (err.code !== 409) throw err;
      return this.#adoptStored(m);
    } finally {
      m.writing = undefined;
    }
    // an answer after the deadline does not count: the others may have seen the Lease expire
    if (renewal) this.#lateRenewal(m);
    // the others saw this write, even one that comes back after a loss: a rejoin waits for it
    m.renewedSent = sent;
    m.renewedAck = Date.now();
    if (m.lost !== undefined) return;
    m.lease = stored;
    this.#armDeadline(m, sent);
    m.written = listed;
    if (m.renewedAck - sent > this.#durationMs / 5) {
      m.log.warn({ tookMs: m.renewedAck - sent, ...this.#gauges.read() }, "shard lease renewal slow");
    }
    this.#gauges.reset();
  }

  /** A write of m's Lease conflicted: an earlier one that timed out here went through after all. Go on from the stored Lease. */
  async #adoptStored(m: Membership): Promise<void> {
    const stored = await this.#o.client.get(refs.leases, m.leaseName, this.#o.namespace);
    if (m.lost !== undefined) return;
    if (stored === undefined || (stored.spec as { holderIdentity?: string }).holderIdentity !== m.identity) {
      if (m.lease === undefined) throw new Error(`the shard lease ${m.leaseName} is not this replica's`);
      m.lease = undefined;
      this.#lose(m, "this replica's shard lease was changed by someone else");
      return;
    }
    m.lease = stored;
    return this.#writeNow(m);
  }

  async #rebalance(m: Membership): Promise<void> {
    const controller = this.#controller;
    if (controller === undefined || this.#stopped || this.#leaving || m.lost !== undefined) return;
    await this.#write(m); // claims made since are written before the Leases are read
    const written = new Set(m.written);
    const listed = await this.#o.client.list(refs.leases, {
      namespace: this.#o.namespace,
      labelSelector: `${shardLabel}=member`,
    });
    if (m.lost !== undefined) return;
    const now = Date.now();
    const leases = listed.items.map(memberLease);
    if (!leases.some((l) => l.identity === m.identity)) {
      m.lease = undefined;
      this.#lose(m, "this replica's shard lease is gone");
      return;
    }
    m.observations = observe(m.observations, leases, now);
    await this.#forget(m, listed.items, leases, now);
    if (m.lost !== undefined) return;
    const bindings = controller.bindings();
    this.#keys = new Map(bindings.map((b) => [b.metadata.uid ?? "", bindingKey(b)]));
    const plan = planShard({
      me: m.identity,
      bindings: [...this.#keys.keys()],
      leases,
      observations: m.observations,
      now,
      serving: m.serving,
      written,
      published: m.published,
    });
    const key = (uid: string) => this.#keys.get(uid) ?? uid;
    if (plan.stop.length > 0) {
      this.#handingOver(m, plan.stop);
      m.log.info({ members: plan.members, bindings: plan.stop.map(key) }, "handing bindings over");
      await controller.handOver(plan.stop.map(key));
      for (const uid of plan.stop) {
        m.handingOver.delete(uid);
        m.published.delete(uid);
      }
    }
    for (const uid of plan.drop) m.published.delete(uid);
    // the view is read: it holds while the Lease does (a loss during the hand-over above starts nothing)
    if (plan.start.length > 0 && !this.#leaving && !this.#lateRenewal(m)) {
      for (const uid of plan.start) m.serving.add(uid);
      m.log.info({ members: plan.members, bindings: plan.start.map(key) }, "serving bindings");
      controller.resync(plan.start.map(key));
    }
    for (const uid of plan.claim) m.published.add(uid);
    // a claim starts at the next round, after it is written; a shorter list is written at once
    if (plan.claim.length > 0 || plan.stop.length > 0 || plan.drop.length > 0) this.#again = true;
  }

  /** Deletes Leases of replicas gone long ago (a new identity at every start leaves them behind). */
  async #forget(m: Membership, items: KubeObject[], leases: MemberLease[], now: number): Promise<void> {
    for (const [i, lease] of leases.entries()) {
      const seen = m.observations.get(lease.identity);
      const item = items[i];
      if (lease.identity === m.identity || seen === undefined || item === undefined) continue;
      if (isLive(lease, m.observations, now) || now - seen.at <= forgottenAfterMs(lease.durationMs)) continue;
      const uid = item.metadata.uid;
      await this.#o.client.delete(refs.leases, item.metadata.name, item.metadata.namespace, uid ? { uid } : {});
      m.log.info({ lease: item.metadata.name }, "deleted the shard lease of a replica gone long ago");
    }
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
