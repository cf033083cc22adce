/** A counting semaphore: at most size holders at once, the others wait in order. */
export class Slots {
  readonly #size: number;
  #held = 0;
  readonly #waiting: Array<() => void> = [];

  constructor(size: number) {
    this.#size = Math.max(1, size);
  }

  /** Resolves with the slot's release once one is free. */
  async take(): Promise<() => void> {
    if (this.#held >= this.#size) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    else this.#held++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiting.shift();
      if (next !== undefined)
        next(); // the slot passes on: held stays
      else this.#held--;
    };
  }
}
