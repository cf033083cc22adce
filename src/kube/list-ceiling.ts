// The process-wide bound on bytes of app cluster lists still being read: every tenant's budget
// (cache-budget.ts) bounds its own lists, this bounds them all together, so that the sum of the
// tenants' budgets cannot take the process past its memory. A list past it fails (its informer
// lists again after a backoff), never the process; one namespace's lists hold half of it at most,
// so one tenant's lists cannot keep every other tenant's from being read.
import { getHeapStatistics } from "node:v8";

/** Bytes for a message, in MiB rounded up: "8 MiB". */
export const mib = (n: number): string => `${Math.ceil(n / 1024 / 1024)} MiB`;

/** A list's bytes would take the lists being read past the ceiling. */
export class ListCeilingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ListCeilingError";
  }
}

/**
 * A list's JSON is held as chunks, their copy joined, its text and its parsed objects, then as
 * garbage until collected: several times its bytes. Measured (test/integration/sync-list-memory,
 * twelve tenants' lists of 32 MiB, a heap limit of 492 MiB): a ceiling of an eighth of it peaked at
 * 426 MiB RSS, a sixteenth at 335 MiB.
 */
const heapShare = 16;
const minBytes = 8 * 1024 * 1024;

/** The default ceiling: a sixteenth of the heap limit (which Node derives from the container's memory), at least 8 MiB. */
export function defaultListCeilingBytes(): number {
  return Math.max(minBytes, Math.floor(getHeapStatistics().heap_size_limit / heapShare));
}

export class ListCeiling {
  readonly maxBytes: number;
  /** the flag that raises it, for the error message */
  readonly #flag: string;
  #bytes = 0;

  constructor(maxBytes: number, flag: string) {
    this.maxBytes = maxBytes;
    this.#flag = flag;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Takes bytes for a list of a namespace whose lists hold namespaceBytes already; throws
   * ListCeilingError, taking nothing, past the ceiling or past half of it for one namespace.
   */
  take(bytes: number, namespaceBytes: number): void {
    if (this.#bytes + bytes > this.maxBytes) {
      throw new ListCeilingError(
        `the lists being read from app clusters would hold more than ${mib(this.maxBytes)} together ` +
          `(${this.#flag}); this list is read again later`,
      );
    }
    if (namespaceBytes + bytes > this.maxBytes / 2) {
      throw new ListCeilingError(
        `the lists being read for one namespace's bindings would hold more than half of the ` +
          `${mib(this.maxBytes)} all lists may hold together (${this.#flag}); this list is read again later`,
      );
    }
    this.#bytes += bytes;
  }

  give(bytes: number): void {
    this.#bytes = Math.max(0, this.#bytes - bytes);
  }
}
