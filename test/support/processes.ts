import type { ChildProcess, ChildProcessByStdio } from "node:child_process";
import { once } from "node:events";
import type { Readable } from "node:stream";

/** Stops a child with SIGTERM and waits for it; returns at once when it has already ended. */
export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.kill("SIGTERM");
  await exited;
}

/** A child's exit code (1 when a signal ended it) and its stdout and stderr, interleaved as they came. */
export function exitAndOutput(
  child: ChildProcessByStdio<null, Readable, Readable>,
): Promise<{ code: number; output: string }> {
  let output = "";
  const collect = (d: Buffer) => {
    output += d.toString();
  };
  child.stdout.on("data", collect);
  child.stderr.on("data", collect);
  return new Promise((resolve) => child.on("exit", (code) => resolve({ code: code ?? 1, output })));
}

/**
 * Flags of a `klutch-bind sync` child in a test: no metrics or health listeners, the status every
 * second, and app clusters on 127.0.0.1 (every test cluster's address) allowed.
 */
export const testSyncFlags = [
  "--metrics-address",
  "",
  "--health-address",
  "",
  "--status-interval",
  "1",
  "--allow-loopback-app-servers",
];
