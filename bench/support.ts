// What the benchmarks share: starting a function server in its own process, and reading a
// process's CPU time and peak memory from /proc.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism, homedir } from "node:os";
import { join } from "node:path";
import { freePort, waitForPort } from "../test/support/net.ts";

/** the Makefile's GHZ_VERSION when run by make bench */
export const ghzVersion = process.env.GHZ_VERSION ?? "v0.120.0";

/** One cell of bench/function: one server, one request size, one concurrency. */
export type FunctionRow = {
  server: string;
  request: string;
  requestBytes: number;
  concurrency: number;
  calls: number;
  errors: number;
  callsPerSecond: number;
  p50ms: number;
  p90ms: number;
  p99ms: number;
  cpuMsPerCall: number;
  peakRssMiB: number;
};
export const ghzPath =
  process.env.GHZ ??
  join(process.env.TOOLS_CACHE ?? join(homedir(), ".cache", "function-klutch-bind"), "bin", `ghz-${ghzVersion}`, "ghz");

/** the Go peer on function-sdk-go, built by make bench-tools */
export const goPeerPath =
  process.env.GO_PEER ??
  join(process.env.TOOLS_CACHE ?? join(homedir(), ".cache", "function-klutch-bind"), "bin", "go-peer");

export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

type RunningServer = { port: number; pid: number; child: ChildProcess };

/** Starts one function server (ours, or a peer under bench/peers/NAME); resolves once it accepts calls. */
export async function startFunctionServer(root: string, name: string): Promise<RunningServer> {
  const port = await freePort();
  const listen = ["--insecure", "--address", `127.0.0.1:${port}`];
  const [command, args] =
    name === "ours"
      ? [process.execPath, [join(root, "src/cli/main.ts"), ...listen, "--max-recv-message-size", "8"]]
      : name === "go"
        ? [goPeerPath, listen]
        : [process.execPath, [join(root, "bench/peers", name, "main.ts"), ...listen]];
  if (!existsSync(command)) throw new Error(`${command} is missing: run make bench-tools`);
  const child = spawn(command, args, { stdio: ["ignore", "ignore", "inherit"] });
  try {
    await waitForPort(port, name, 10_000);
  } catch (err) {
    child.kill();
    throw err;
  }
  if (child.pid === undefined) throw new Error(`${name} did not start`);
  return { port, pid: child.pid, child };
}

export type CpuSample = { cpuSeconds: number; peakRssKiB: number };

const ticksPerSecond = 100; // USER_HZ on Linux

/** User plus system CPU time and peak resident memory (VmHWM) of a process. */
export function cpuSample(pid: number): CpuSample {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // the command name may contain spaces: fields start after its closing parenthesis
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
  return { cpuSeconds: (utime + stime) / ticksPerSecond, peakRssKiB: Number(hwm ?? Number.NaN) };
}

/** The whole machine's CPU time so far, busy and in all (every core), from /proc/stat. */
export type MachineCpu = { busySeconds: number; allSeconds: number };

export function machineCpu(): MachineCpu {
  const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0] ?? "";
  // cpu user nice system idle iowait irq softirq steal ...
  const ticks = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const all = ticks.reduce((sum, t) => sum + t, 0);
  const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0);
  return { busySeconds: (all - idle) / ticksPerSecond, allSeconds: all / ticksPerSecond };
}

/** Cores the whole machine kept busy between two readings (0 to the number of cores). */
export function machineCoresBusy(before: MachineCpu, after: MachineCpu, cores = availableParallelism()): number {
  const all = after.allSeconds - before.allSeconds;
  return all > 0 ? Number((((after.busySeconds - before.busySeconds) / all) * cores).toFixed(2)) : 0;
}

/** Restarts the peak-memory clock of a process (needs to own it, or root); false when refused. */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}
