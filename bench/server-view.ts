// The control API server's own view of a steady run, from its /metrics before and after: how long
// it took to serve the run's widget writes (creates and status patches, timed inside the server),
// how many it was serving at once on average (Little's law: time spent / run time), and its CPU.
// It tells a queue inside the API server from delays in the sync or the network.
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { promisify } from "node:util";

export type ServerSample = { writeSeconds: number; writes: number; cpuSeconds: number; at: number };
export type ServerView = { writes: number; meanMs: number; executing: number; cores: number };

const series = /^(apiserver_request_duration_seconds_(?:sum|count)|process_cpu_seconds_total)(\{[^}]*\})? (\S+)$/gm;

/** The sums a view needs from one /metrics text: widget POSTs and PATCHes, and the process's CPU. */
export function sampleFromMetrics(text: string, at: number): ServerSample {
  const sample: ServerSample = { writeSeconds: 0, writes: 0, cpuSeconds: 0, at };
  for (const [, name, labels = "", value] of text.matchAll(series)) {
    if (name === "process_cpu_seconds_total") {
      sample.cpuSeconds = Number(value);
      continue;
    }
    if (!labels.includes('resource="widgets"') || !/verb="(POST|PATCH)"/.test(labels)) continue;
    if (name?.endsWith("_sum")) sample.writeSeconds += Number(value);
    else sample.writes += Number(value);
  }
  return sample;
}

export function viewBetween(before: ServerSample, after: ServerSample): ServerView | undefined {
  const writes = after.writes - before.writes;
  const seconds = (after.at - before.at) / 1000;
  if (writes <= 0 || seconds <= 0) return undefined;
  const spent = after.writeSeconds - before.writeSeconds;
  return {
    writes,
    meanMs: Math.round((spent * 1000) / writes),
    executing: Number((spent / seconds).toFixed(1)),
    cores: Number(((after.cpuSeconds - before.cpuSeconds) / seconds).toFixed(2)),
  };
}

const run = promisify(execFile);

/** A sampler through kubectl (the bench's dev tools); undefined without kubectl. */
export function serverSampler(kubectl: string, kubeconfig: string): (() => Promise<ServerSample>) | undefined {
  if (!existsSync(kubectl)) return undefined;
  return async () => {
    const { stdout } = await run(kubectl, ["--kubeconfig", kubeconfig, "get", "--raw", "/metrics"], {
      maxBuffer: 256 * 1024 * 1024,
    });
    return sampleFromMetrics(stdout, performance.now());
  };
}
