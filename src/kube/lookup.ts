// Host name lookups for servers that tenants name. Node resolves a host name with getaddrinfo on
// libuv's thread pool (4 threads unless UV_THREADPOOL_SIZE says more), which file reads, crypto and
// every other lookup of the process share: a name whose DNS server never answers holds a thread
// until the system resolver gives up (its timeout × attempts × search domains, a minute or more),
// and four such names stall them all. So one key's lookups (one tenant's) run two at a time,
// wait in a short queue, and fail at once when it is full. Node's other resolver (c-ares) would not
// use the pool, but skips the search domains in-cluster names need.
import { lookup as systemLookup } from "node:dns";
import type { LookupFunction } from "node:net";

export type LookupGateOptions = {
  /** lookups of one key at once (default 2) */
  perKey?: number;
  /** lookups of one key waiting at most; more fail with EAI_AGAIN (default 32) */
  maxWaiting?: number;
  /** the lookup gated (default dns.lookup) */
  resolve?: LookupFunction;
};

type Lane = { running: number; waiting: Array<() => void> };

export class LookupGate {
  readonly #perKey: number;
  readonly #maxWaiting: number;
  readonly #resolve: LookupFunction;
  readonly #lanes = new Map<string, Lane>();

  constructor(options: LookupGateOptions = {}) {
    this.#perKey = options.perKey ?? 2;
    this.#maxWaiting = options.maxWaiting ?? 32;
    this.#resolve = options.resolve ?? (systemLookup as LookupFunction);
  }

  /** lookups running or waiting for key (for tests and metrics) */
  pending(key: string): number {
    const lane = this.#lanes.get(key);
    return lane === undefined ? 0 : lane.running + lane.waiting.length;
  }

  /** A lookup function (net.connect's `lookup` option) whose lookups count against key. */
  lookupFor(key: string): LookupFunction {
    return (hostname, options, callback) => {
      const lane = this.#lanes.get(key) ?? { running: 0, waiting: [] };
      this.#lanes.set(key, lane);
      const run = () => {
        lane.running++;
        this.#resolve(hostname, options, (err, address, family) => {
          lane.running--;
          const next = lane.waiting.shift();
          if (next !== undefined) next();
          else if (lane.running === 0) this.#lanes.delete(key);
          callback(err, address, family);
        });
      };
      if (lane.running < this.#perKey) run();
      else if (lane.waiting.length < this.#maxWaiting) lane.waiting.push(run);
      else {
        const err: NodeJS.ErrnoException = new Error(
          `looking up ${hostname}: ${this.#maxWaiting} lookups of the same tenant wait already (its DNS does not answer)`,
        );
        err.code = "EAI_AGAIN";
        callback(err, "", 0);
      }
    };
  }
}
