// The real binaries built from Go modules, and the lifecycle of a local cluster.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { promisify } from "node:util";
import { clusterPorts, runningCluster, startCluster, stopCluster } from "../support/cluster.ts";
import { testClusters } from "../support/clusters.ts";
import { crossplaneUnavailable, tool } from "../support/tools.ts";

const run = promisify(execFile);

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: "127.0.0.1", port }, () => {
      s.destroy();
      resolve(true);
    });
    s.on("error", () => resolve(false));
  });
}

/** pids whose command line mentions text: finds the controller manager by its state folder */
function processesMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(text)) pids.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return pids;
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("toolchain", () => {
  it("kubectl talks to a v1.37 API server and reports its true version", async () => {
    const { control } = await testClusters();
    const { stdout } = await run(tool("kubectl"), ["--kubeconfig", control.kubeconfigPath, "version", "-o", "json"]);
    const version = JSON.parse(stdout) as {
      clientVersion: { gitVersion: string };
      serverVersion: { gitVersion: string; minor: string };
    };
    assert.equal(version.serverVersion.gitVersion, "v1.37.2");
    assert.equal(version.clientVersion.gitVersion, "v1.37.2");
  });

  it("the Crossplane CLI offers render", { skip: crossplaneUnavailable() }, async () => {
    const { stdout } = await run(tool("crossplane"), ["render", "--help"]);
    assert.match(stdout, /Usage: crossplane render/);
    assert.match(stdout, /<composite-resource>/);
  });
});

describe("local cluster lifecycle", () => {
  it("starts idempotently and stops leaving no process and no port behind", async () => {
    const root = mkdtempSync(join(tmpdir(), "klb-lifecycle-"));
    const dir = join(root, "solo");
    try {
      const first = await startCluster("solo", dir);
      const again = await startCluster("solo", dir);
      assert.equal(again.server, first.server, "a second start reuses the running cluster");
      const pid = Number(readFileSync(join(dir, "cluster.pid"), "utf8"));
      const ports = clusterPorts(dir);
      assert.equal(ports.length, 4);
      assert.ok(await listening(Number(new URL(first.server).port)));
      assert.ok(processesMentioning(dir).length >= 1, "the controller manager runs beside the API server");

      await stopCluster(dir, { removeData: true });
      assert.equal(processExists(pid), false, "launcher gone");
      assert.deepEqual(processesMentioning(dir), [], "no controller manager left");
      for (const port of ports) assert.equal(await listening(port), false, `port ${port} closed`);
      assert.equal(existsSync(dir), false, "data removed");
      assert.equal(await runningCluster("solo", dir), undefined);
    } finally {
      await stopCluster(dir, { removeData: true });
      rmSync(root, { recursive: true, force: true });
    }
  });
});
