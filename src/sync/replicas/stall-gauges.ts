// The event loop's delays and this process's CPU time since the last renewal of the shard Lease
// (or its loss), for the log of a slow renewal or a loss (shards.ts): a long delay with as much CPU
// time is this process's own work; with little, the process was not given a CPU.
import { monitorEventLoopDelay } from "node:perf_hooks";

export class StallGauges {
  readonly #loopDelay = monitorEventLoopDelay({ resolution: 20 });
  #cpuAtRenewal = process.cpuUsage();

  enable(): void {
    this.#loopDelay.enable();
  }

  disable(): void {
    this.#loopDelay.disable();
  }

  /** The event loop's longest delay and the CPU time this process used since the last reset. */
  read(): { eventLoopDelayMaxMs: number; cpuMs: number } {
    const cpu = process.cpuUsage(this.#cpuAtRenewal);
    return {
      eventLoopDelayMaxMs: Math.round(this.#loopDelay.max / 1e6),
      cpuMs: Math.round((cpu.user + cpu.system) / 1000),
    };
  }

  reset(): void {
    this.#loopDelay.reset();
    this.#cpuAtRenewal = process.cpuUsage();
  }
}
