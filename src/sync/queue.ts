// A de-duplicating work queue with several workers and per-key exponential backoff, in the manner
// of client-go's: a key is never processed twice at once, a key added while it is processed runs
// again afterwards, and a failed key comes back later and later until it succeeds.

export type QueueOptions = {
  workers: number;
  process: (key: string) => Promise<void>;
  onError?: (key: string, err: unknown, retries: number) => void;
  baseDelayMs?: number;
  maxDelayMs?: number;
};

export class WorkQueue {
  readonly #options: Required<Omit<QueueOptions, "onError">> & Pick<QueueOptions, "onError">;
  readonly #queue: string[] = [];
  readonly #queued = new Set<string>();
  readonly #processing = new Set<string>();
  /** added again while being processed: run once more when done */
  readonly #dirty = new Set<string>();
  readonly #failures = new Map<string, number>();
  readonly #timers = new Map<string, { timer: NodeJS.Timeout; at: number }>();
  #waiters: Array<() => void> = [];
  #running = 0;
  #stopped = false;
  #workers: Promise<void>[] = [];

  constructor(options: QueueOptions) {
    this.#options = { baseDelayMs: 50, maxDelayMs: 30_000, ...options };
  }

  get depth(): number {
    return this.#queue.length;
  }

  get busy(): number {
    return this.#running;
  }

  /** started and not stopped: its workers take keys */
  get running(): boolean {
    return this.#workers.length > 0 && !this.#stopped;
  }

  add(key: string): void {
    if (this.#stopped) return;
    if (this.#processing.has(key)) {
      this.#dirty.add(key);
      return;
    }
    if (this.#queued.has(key)) return;
    this.#queued.add(key);
    this.#queue.push(key);
    this.#waiters.shift()?.();
  }

  /** Adds the key after delayMs; when it is already waiting, the earlier of the two times holds. */
  addAfter(key: string, delayMs: number): void {
    if (this.#stopped) return;
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
      const key = this.#queue.shift();
      if (key !== undefined) {
        this.#queued.delete(key);
        return key;
      }
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
    return undefined;
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
        if (this.#dirty.delete(key)) this.add(key);
      }
    }
  }
}
