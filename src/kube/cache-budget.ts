// A bound on what informer caches may hold together: objects and bytes (of each cached object as
// JSON). The caches of one budget share it; one that would outgrow it fails its list or watch
// and changes nothing, so a server that sends endless objects fills a budget, never the process.

/** An informer's list or watch would take its budget past its limit. */
export class CacheFullError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CacheFullError";
  }
}

export type CacheLimits = { maxObjects: number; maxBytes: number };

export class CacheBudget {
  readonly limits: CacheLimits;
  /** who shares it and which flags raise it, for the error message */
  readonly #describe: string;
  #objects = 0;
  #bytes = 0;

  constructor(limits: CacheLimits, describe: string) {
    this.limits = limits;
    this.#describe = describe;
  }

  get objects(): number {
    return this.#objects;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** Takes (or, negative, gives back) objects and bytes; throws CacheFullError, taking nothing, when growth would pass a limit. */
  change(objects: number, bytes: number): void {
    const toObjects = this.#objects + objects;
    const toBytes = this.#bytes + bytes;
    const grows = objects > 0 || bytes > 0;
    if (grows && (toObjects > this.limits.maxObjects || toBytes > this.limits.maxBytes)) {
      const mib = (n: number) => `${Math.ceil(n / 1024 / 1024)} MiB`;
      throw new CacheFullError(
        `${this.#describe} would hold ${toObjects} objects, ${mib(toBytes)}: more than the limit of ` +
          `${this.limits.maxObjects} objects, ${mib(this.limits.maxBytes)}; what is beyond it is not synced`,
      );
    }
    this.#objects = Math.max(0, toObjects);
    this.#bytes = Math.max(0, toBytes);
  }
}

/** The size the budget counts for one cached object. */
export function cachedSize(obj: unknown): number {
  return JSON.stringify(obj).length;
}
