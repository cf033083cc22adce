// A de-duplicating work queue with several workers and per-key exponential backoff, in the manner
// of client-go's: a key is never processed twice at once, a key added while it is processed runs
// again afterwards, and a failed key comes back later and later until it succeeds.
// Keys may be grouped (a tenant's, say) with a limit of keys of one group running at once, so one
// group's slow keys cannot hold every worker.
// Unlike client-go's it has two lanes: keys from an informer's first list wait in the backlog lane,
// keys of later events in the live lane, which goes first. Measured (bench/sync, first object): a
// binding that found 5,000 objects of an earlier binding to adopt synced a new object only after
// all of them, 20 s; with the lanes, at once.

/** live: something changed now; backlog: found by a first list, to be caught up with */
/** the longest delay setTimeout keeps */
const longestTimerMs = 2 ** 31 - 1;

export type Lane = "live" | "backlog";

/** A FIFO of keys with O(1) take (Array.shift copies on long arrays). */
class Fifo {
  #items: string[] = [];
  #head = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  push(key: string): void {
    this.#items.push(key);
  }

  shift(): string | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const key = this.#items[this.#head++];
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return key;
  }
}

export type QueueOptions = {
  workers: number;
  process: (key: string) => Promise<void>;
  onError?: (key: string, err: unknown, retries: number) => void;
  /**
   * A worker took a key that waited waitedMs since it was first added: re-adds while it waits keep
   * that time, and a key added while it runs waits from then, through the end of that run.
   */
  onTaken?: (waitedMs: number) => void;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** the group of a key, for maxPerGroup */
  groupOf?: (key: string) => string;
  /** keys of one group running at once at most; the others wait, queued, until one is done */
  maxPerGroup?: number;
};

export class WorkQueue {
  readonly #options: Required<Omit<QueueOptions, "onError" | "onTaken" | "groupOf" | "maxPerGroup">> &
    Pick<QueueOptions, "onError" | "onTaken" | "groupOf" | "maxPerGroup">;
  readonly #lanes = { live: new Fifo(), backlog: new Fifo() };
  /** queued keys and their lane (a key moved to the live lane leaves a stale entry in the backlog) */
  readonly #queued = new Map<string, Lane>();
  readonly #processing = new Set<string>();
  /** added again while being processed: run once more when done, in this lane */
  readonly #dirty = new Map<string, Lane>();
  /** when each queued or dirty key was first added, as client-go's workqueue metrics keep it */
  readonly #addedAt = new Map<string, number>();
  readonly #failures = new Map<string, number>();
  readonly #timers = new Map<string, { timer: NodeJS.Timeout; at: number }>();
  /** keys running per group */
  readonly #groupRunning = new Map<string, number>();
  /** queued keys taken while their group was at its limit: back in their lanes when one of it is done */
  readonly #parked = new Map<string, Set<string>>();
  #waiters: Array<() => void> = [];
  #running = 0;
  #stopped = false;
  #workers: Promise<void>[] = [];

  constructor(options: QueueOptions) {
    this.#options = { baseDelayMs: 50, maxDelayMs: 30_000, ...options };
  }

  get depth(): number {
    return this.#queued.size;
  }

  get busy(): number {
    return this.#running;
  }

  /** started and not stopped: its workers take keys */
  get running(): boolean {
    return this.#workers.length > 0 && !this.#stopped;
  }

  add(key: string, lane: Lane = "live"): void {
    if (this.#stopped) return;
    if (!this.#addedAt.has(key)) this.#addedAt.set(key, performance.now());
    if (this.#processing.has(key)) {
      if (this.#dirty.get(key) !== "live") this.#dirty.set(key, lane);
      return;
    }
    const queued = this.#queued.get(key);
    if (queued === "live" || queued === lane) return;
    this.#queued.set(key, lane);
    this.#lanes[lane].push(key);
    this.#waiters.shift()?.();
  }

  /** Adds the key after delayMs; when it is already waiting, the earlier of the two times holds. */
  addAfter(key: string, requestedMs: number): void {
    if (this.#stopped) return;
    // setTimeout runs a delay beyond 2^31-1 ms, or NaN, after 1 ms: a delay computed from what a
    // cluster wrote (a heartbeat dated in the year 9999) must not make a key spin
    const delayMs = Number.isNaN(requestedMs) ? longestTimerMs : Math.min(Math.max(requestedMs, 0), longestTimerMs);
    const at = Date.now() + delayMs;
    const waiting = this.#timers.get(key);
    if (waiting !== undefined) {
      if (waiting.at <= at) return;
      clearTimeout(waiting.timer);
    }
    const timer = setTimeout(() => {
      this.#timers.delete(key);
      this.add(key);
    }, delayMs);
    timer.unref();
    this.#timers.set(key, { timer, at });
  }

  /** Forgets the key's failures: its next error starts the backoff anew. */
  forget(key: string): void {
    this.#failures.delete(key);
  }

  start(): void {
    for (let i = 0; i < this.#options.workers; i++) this.#workers.push(this.#work());
  }

  /** Stops taking keys and waits for those in flight. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const { timer } of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
    for (const wake of this.#waiters) wake();
    this.#waiters = [];
    await Promise.all(this.#workers);
  }

  async #next(): Promise<string | undefined> {
    while (!this.#stopped) {
      for (const lane of ["live", "backlog"] as const) {
        for (let key = this.#lanes[lane].shift(); key !== undefined; key = this.#lanes[lane].shift()) {
          if (this.#queued.get(key) !== lane) continue; // moved to the live lane meanwhile
          if (this.#park(key)) continue;
          this.#groupCount(key, 1); // at once: other workers take keys before this one runs
          this.#queued.delete(key);
          const added = this.#addedAt.get(key);
          this.#addedAt.delete(key);
          if (added !== undefined) this.#options.onTaken?.(performance.now() - added);
          return key;
        }
      }
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
    return undefined;
  }

  /** Parks the key when its group runs as many keys as it may; says whether it did. */
  #park(key: string): boolean {
    const { groupOf, maxPerGroup } = this.#options;
    if (groupOf === undefined || maxPerGroup === undefined) return false;
    const group = groupOf(key);
    if ((this.#groupRunning.get(group) ?? 0) < maxPerGroup) return false;
    const parked = this.#parked.get(group) ?? new Set<string>();
    parked.add(key);
    this.#parked.set(group, parked);
    return true;
  }

  /** one key of the group started (+1) or ended (-1); an end puts the group's parked keys back in their lanes */
  #groupCount(key: string, change: 1 | -1): void {
    const group = this.#options.groupOf?.(key);
    if (group === undefined) return;
    const running = (this.#groupRunning.get(group) ?? 0) + change;
    if (running > 0) this.#groupRunning.set(group, running);
    else this.#groupRunning.delete(group);
    if (change > 0) return;
    const parked = this.#parked.get(group);
    if (parked === undefined) return;
    this.#parked.delete(group);
    for (const waiting of parked) {
      const lane = this.#queued.get(waiting);
      if (lane === undefined) continue;
      this.#lanes[lane].push(waiting);
      this.#waiters.shift()?.();
    }
  }

  async #work(): Promise<void> {
    for (;;) {
      const key = await this.#next();
      if (key === undefined) return;
      this.#processing.add(key);
      this.#running++;
      try {
        await this.#options.process(key);
        this.#failures.delete(key);
      } catch (err) {
        const retries = (this.#failures.get(key) ?? 0) + 1;
        this.#failures.set(key, retries);
        this.#options.onError?.(key, err, retries);
        const backoff = Math.min(this.#options.maxDelayMs, this.#options.baseDelayMs * 2 ** (retries - 1));
        this.addAfter(key, backoff * (0.8 + Math.random() * 0.4));
      } finally {
        this.#running--;
        this.#processing.delete(key);
        this.#groupCount(key, -1);
        const again = this.#dirty.get(key);
        if (again !== undefined) {
          this.#dirty.delete(key);
          this.add(key, again);
        }
      }
    }
  }
}
