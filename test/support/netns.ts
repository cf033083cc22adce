// Running a test file in a network namespace of its own, where loopback is the only interface: for
// programs that listen on every interface (Crossplane's core does for its metrics and health), so
// they are still reachable from this machine's loopback only (here: from nowhere else at all).
import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { exitAndOutput } from "./processes.ts";
import { repoRoot } from "./tools.ts";

export const inOwnNetnsEnv = "KLB_IN_OWN_NETNS";

/** Why this process is not in a network namespace with loopback only, or undefined when it is. */
export function onlyLoopback(): string | undefined {
  const interfaces = readFileSync("/proc/net/dev", "utf8")
    .split("\n")
    .slice(2)
    .map((line) => line.split(":")[0]?.trim())
    .filter((name): name is string => name !== undefined && name !== "");
  const others = interfaces.filter((name) => name !== "lo");
  return others.length === 0 ? undefined : `this network namespace also has ${others.join(", ")}`;
}

/** Why test files cannot be run in their own network namespace here, or undefined when they can. */
export function netnsUnavailable(): string | undefined {
  const probe = spawnSync("unshare", ["--net", "--fork", "--", "ip", "link", "set", "lo", "up"], { encoding: "utf8" });
  if (probe.error) return `unshare: ${probe.error.message}`;
  if (probe.status !== 0) return `unshare --net failed (it needs root): ${probe.stderr.trim()}`;
  return undefined;
}

/**
 * Runs `file` with node --test in a new network namespace (loopback brought up), with its own test
 * clusters; resolves with its exit code and output.
 */
export function runInOwnNetns(file: string): Promise<{ code: number; output: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, [inOwnNetnsEnv]: "1" };
  // clusters of the outer run are out of reach in there: the inner run starts its own
  for (const key of Object.keys(env)) if (key.startsWith("KLB_TEST_")) delete env[key];
  // a node --test started by a test sees this and only reports to its parent; this one runs for real
  delete env.NODE_TEST_CONTEXT;
  const node = [
    process.execPath,
    "--test",
    "--test-reporter=spec",
    "--test-global-setup=test/support/global-setup.ts",
    file,
  ].map((a) => `'${a}'`);
  const child = spawn(
    "unshare",
    ["--net", "--fork", "--kill-child=SIGTERM", "--", "sh", "-c", `ip link set lo up && exec ${node.join(" ")}`],
    {
      cwd: repoRoot,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  return exitAndOutput(child);
}
