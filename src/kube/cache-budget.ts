// A bound on what informer caches may hold together: objects and bytes (of each cached object as
// JSON). The caches of one budget share it; one that would outgrow it fails its list or watch
// and changes nothing, so a server that sends endless objects fills a budget, never the process.
// Lists count as they are read, chunk by chunk (startList): a list that would pass the budget
// ends there, before its pages pile up in memory.
import { type ListCeiling, mib } from "./list-ceiling.ts";

/** An informer's list or watch would take its budget past its limit. */
export class CacheFullError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CacheFullError";
  }
}

export type CacheLimits = { maxObjects: number; maxBytes: number };

/** The bytes of one list being read: take() as they arrive, release() once it is done (whatever its outcome). */
export type ListCharge = { take: (bytes: number) => void; release: () => void };

export class CacheBudget {
  readonly limits: CacheLimits;
  /** who shares it and which flags raise it, for the error message */
  readonly #describe: string;
  readonly #ceiling: ListCeiling | undefined;
  #objects = 0;
  #bytes = 0;
  /** bytes of this budget's lists being read */
  #listing = 0;
  /** of them, those counted against the limit: beyond the caches the lists replace */
  #listCharged = 0;

  /** ceiling: shared by every budget, bounds their lists being read together */
  constructor(limits: CacheLimits, describe: string, ceiling?: ListCeiling) {
    this.limits = limits;
    this.#describe = describe;
    this.#ceiling = ceiling;
  }

  get objects(): number {
    return this.#objects;
  }

  /** bytes of the caches (lists being read aside: listingBytes) */
  get bytes(): number {
    return this.#bytes;
  }

  /** bytes of lists still being read */
  get listingBytes(): number {
    return this.#listing;
  }

  /** Takes (or, negative, gives back) objects and bytes; throws CacheFullError, taking nothing, when growth would pass a limit. */
  change(objects: number, bytes: number): void {
    const toObjects = this.#objects + objects;
    const toBytes = this.#bytes + bytes;
    const grows = objects > 0 || bytes > 0;
    if (grows && (toObjects > this.limits.maxObjects || toBytes + this.#listCharged > this.limits.maxBytes)) {
      throw this.#full(toObjects, toBytes, this.#listCharged);
    }
    this.#objects = Math.max(0, toObjects);
    this.#bytes = Math.max(0, toBytes);
  }

  /**
   * A list about to be read that replaces a cache of `replaces` bytes: its bytes count against the
   * limit beyond those (the cache is given back once the list is in), and all of them against the
   * ceiling. take() throws CacheFullError or ListCeilingError, taking nothing; after release() it
   * throws, so chunks of a list already given up end it.
   */
  startList(replaces: number): ListCharge {
    let read = 0;
    let charged = 0;
    let released = false;
    return {
      take: (bytes) => {
        if (released) throw new Error("the list was given up");
        const toCharged = Math.max(0, read + bytes - replaces);
        const more = toCharged - charged;
        if (more > 0 && this.#bytes + this.#listCharged + more > this.limits.maxBytes) {
          throw this.#full(this.#objects, this.#bytes, this.#listCharged + more);
        }
        this.#ceiling?.take(bytes, this.#listing);
        read += bytes;
        charged = toCharged;
        this.#listing += bytes;
        this.#listCharged += more;
      },
      release: () => {
        if (released) return;
        released = true;
        this.#ceiling?.give(read);
        this.#listing -= read;
        this.#listCharged -= charged;
      },
    };
  }

  #full(objects: number, bytes: number, listing = 0): CacheFullError {
    const held = listing > 0 ? `${mib(bytes + listing)} (${mib(listing)} of them lists still being read)` : mib(bytes);
    return new CacheFullError(
      `${this.#describe} would hold ${objects} objects, ${held}: more than the limit of ` +
        `${this.limits.maxObjects} objects, ${mib(this.limits.maxBytes)}; what is beyond it is not synced`,
    );
  }
}

/** The size the budget counts for one cached object. */
export function cachedSize(obj: unknown): number {
  return JSON.stringify(obj).length;
}
