// Work shared by tenants (a client's requests, the binding controller's exports): each tenant has a
// few in flight at most, the rest wait in its own line. One tenant's flood then holds no more than its share of the client's rate limit and request
// slots, and another tenant's request goes out behind a few of them, not behind the whole flood.

/** The wait for a tenant's turn outlasted the request's deadline. */
export class ShareTimeout extends Error {}

export class TenantShare {
  readonly #max: number;
  readonly #inFlight = new Map<string, number>();
  readonly #waiting = new Map<string, Array<() => void>>();

  /** max: requests of one tenant in flight at once */
  constructor(max: number) {
    this.#max = Math.max(1, max);
  }

  /**
   * Resolves with a release once tenant has fewer than max requests in flight, in the order asked;
   * rejects with ShareTimeout at until (performance.now() time; never when undefined), or with
   * signal's reason.
   */
  async enter(tenant: string, until?: number, signal?: AbortSignal): Promise<() => void> {
    signal?.throwIfAborted();
    const held = this.#inFlight.get(tenant) ?? 0;
    if (held < this.#max) this.#inFlight.set(tenant, held + 1);
    else await this.#wait(tenant, until, signal);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#leave(tenant);
    };
  }

  /** requests of tenant in flight now (for tests and metrics) */
  inFlight(tenant: string): number {
    return this.#inFlight.get(tenant) ?? 0;
  }

  #wait(tenant: string, until: number | undefined, signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const line = this.#waiting.get(tenant) ?? [];
      this.#waiting.set(tenant, line);
      const giveUp = (err: unknown) => {
        const at = line.indexOf(waiter);
        if (at >= 0) line.splice(at, 1);
        if (line.length === 0 && this.#waiting.get(tenant) === line) this.#waiting.delete(tenant);
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        reject(err);
      };
      const onAbort = () => giveUp(signal?.reason);
      const timer =
        until === undefined
          ? undefined
          : setTimeout(() => giveUp(new ShareTimeout()), Math.max(0, until - performance.now()));
      timer?.unref();
      // the slot passes on to the waiter: the count stays
      const waiter = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        resolve();
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      line.push(waiter);
    });
  }

  #leave(tenant: string): void {
    const line = this.#waiting.get(tenant);
    const next = line?.shift();
    if (line !== undefined && line.length === 0) this.#waiting.delete(tenant);
    if (next !== undefined) {
      next();
      return;
    }
    const left = (this.#inFlight.get(tenant) ?? 1) - 1;
    if (left > 0) this.#inFlight.set(tenant, left);
    else this.#inFlight.delete(tenant);
  }
}
