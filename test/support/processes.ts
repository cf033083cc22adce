import type { ChildProcess } from "node:child_process";
import { once } from "node:events";

/** Stops a child with SIGTERM and waits for it; returns at once when it has already ended. */
export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.kill("SIGTERM");
  await exited;
}
