// Leader election on a coordination.k8s.io Lease, so two replicas of the sync never both write.
// Expiry is judged by when this process last saw the lease change, not by the holder's clock.
import { hostname } from "node:os";
import type { Logger } from "pino";
import { refs } from "../../api/resources.ts";
import { KubeApiError, type KubeClient, type KubeObject } from "../../kube/client.ts";
import { kubeMicroTime } from "../../kube/time.ts";

export type LeaderOptions = {
  client: KubeClient;
  namespace: string;
  name: string;
  leaseDurationSeconds: number;
  logger: Logger;
  identity?: string;
};

type LeaseSpec = {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
};

export class LeaderElector {
  readonly identity: string;
  readonly #o: LeaderOptions;
  #observed: { record: string; at: number } | undefined;
  #renewTimer: NodeJS.Timeout | undefined;
  #watchdog: NodeJS.Timeout | undefined;
  /** when the last write of the lease that succeeded was sent: the others count from no earlier */
  #heldSince: number | undefined;
  #lost = false;
  #stopped = false;

  constructor(options: LeaderOptions) {
    this.#o = options;
    this.identity = options.identity ?? `${hostname()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  }

  /**
   * True while this process may write as the leader: it holds the lease and its last renewal was
   * sent less than two thirds of the duration ago. Read from the clock at each call, so a process
   * woken from a freeze (or a stalled event loop) stops writing before any timer of its has run.
   */
  holds(): boolean {
    return (
      !this.#lost &&
      !this.#stopped &&
      this.#heldSince !== undefined &&
      Date.now() - this.#heldSince < this.#renewDeadlineMs()
    );
  }

  #renewDeadlineMs(): number {
    return (this.#o.leaseDurationSeconds * 1000 * 2) / 3;
  }

  /** Resolves once this process holds the lease; tries every third of the lease duration. */
  async acquire(signal?: AbortSignal): Promise<void> {
    const retryMs = (this.#o.leaseDurationSeconds * 1000) / 3;
    while (!signal?.aborted && !this.#stopped) {
      try {
        const sent = Date.now();
        if (await this.#tryAcquireOrRenew()) {
          this.#heldSince = sent;
          this.#o.logger.info(
            { lease: `${this.#o.namespace}/${this.#o.name}`, identity: this.identity },
            "became leader",
          );
          return;
        }
      } catch (err) {
        this.#o.logger.warn(
          { err: err instanceof Error ? err.message : String(err) },
          "leader election: lease not reachable",
        );
      }
      await new Promise((resolve) => setTimeout(resolve, retryMs));
    }
    throw new Error("leader election stopped before the lease was acquired");
  }

  /**
   * Renews the lease until stop(); calls onLost if it cannot renew before the lease would expire
   * for the others (then another replica may already be writing: the caller must stop at once).
   */
  keepRenewing(onLost: (reason: string) => void): void {
    const periodMs = (this.#o.leaseDurationSeconds * 1000) / 3;
    const lose = (reason: string) => {
      if (this.#lost || this.#stopped) return;
      this.#lost = true;
      clearTimeout(this.#renewTimer);
      clearInterval(this.#watchdog);
      onLost(reason);
    };
    // a renewal that hangs is no renewal: the deadline passes on the clock, not on an answer
    this.#watchdog = setInterval(() => {
      if (!this.holds()) lose(`lease not renewed for ${Date.now() - (this.#heldSince ?? 0)} ms`);
    }, periodMs / 4);
    this.#watchdog.unref();
    const renew = async () => {
      if (this.#stopped || this.#lost) return;
      const sent = Date.now();
      try {
        if (!(await this.#tryAcquireOrRenew())) return lose("another replica holds the lease");
        // the write went through against the lease as read (a conflict otherwise): held from when it was sent
        this.#heldSince = sent;
        if (!this.holds()) return lose(`lease renewal answered after the deadline (${Date.now() - sent} ms)`);
      } catch (err) {
        if (!this.holds()) return lose(`cannot renew the lease: ${String(err)}`);
      }
      // every period from when the last one was sent, however long its answer took
      this.#renewTimer = setTimeout(renew, Math.max(0, periodMs - (Date.now() - sent)));
    };
    this.#renewTimer = setTimeout(renew, periodMs);
  }

  /** Stops renewing and gives the lease up, so a standby takes over without waiting for expiry. */
  async release(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#renewTimer);
    clearInterval(this.#watchdog);
    const lease = await this.#o.client.get(refs.leases, this.#o.name, this.#o.namespace).catch(() => undefined);
    const spec = lease?.spec as LeaseSpec | undefined;
    if (lease === undefined || spec?.holderIdentity !== this.identity) return;
    await this.#o.client
      .update(refs.leases, { ...lease, spec: { ...spec, holderIdentity: "", leaseDurationSeconds: 1 } })
      .catch((err: unknown) => this.#o.logger.warn({ err: String(err) }, "could not release the lease"));
  }

  async #tryAcquireOrRenew(): Promise<boolean> {
    const { client, namespace, name, leaseDurationSeconds } = this.#o;
    const now = new Date();
    const lease = await client.get(refs.leases, name, namespace);
    if (lease === undefined) {
      try {
        await client.create(
          refs.leases,
          this.#lease({ namespace, name }, { leaseTransitions: 0, acquireTime: kubeMicroTime(now) }, now),
        );
        return true;
      } catch (err) {
        if (err instanceof KubeApiError && err.code === 409) return false;
        throw err;
      }
    }
    const spec = (lease.spec ?? {}) as LeaseSpec;
    const record = `${spec.holderIdentity}/${spec.renewTime}`;
    if (this.#observed?.record !== record) this.#observed = { record, at: Date.now() };
    const held = spec.holderIdentity !== undefined && spec.holderIdentity !== "";
    const expired = Date.now() - this.#observed.at > (spec.leaseDurationSeconds ?? leaseDurationSeconds) * 1000;
    if (held && spec.holderIdentity !== this.identity && !expired) return false;
    const takingOver = spec.holderIdentity !== this.identity;
    try {
      await client.update(
        refs.leases,
        this.#lease(
          lease.metadata,
          {
            leaseTransitions: (spec.leaseTransitions ?? 0) + (takingOver ? 1 : 0),
            acquireTime: takingOver ? kubeMicroTime(now) : (spec.acquireTime ?? kubeMicroTime(now)),
          },
          now,
        ),
      );
      return true;
    } catch (err) {
      if (err instanceof KubeApiError && err.code === 409) return false; // someone else was quicker
      throw err;
    }
  }

  #lease(metadata: KubeObject["metadata"], spec: LeaseSpec, now: Date): KubeObject {
    return {
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata,
      spec: {
        ...spec,
        holderIdentity: this.identity,
        leaseDurationSeconds: this.#o.leaseDurationSeconds,
        renewTime: kubeMicroTime(now),
      },
    };
  }
}
