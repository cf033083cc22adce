// `make demo` cannot rot: `make dev-crossplane`'s program and the demo run here as they run there,
// on two clusters of this file's own (KLB_DEV_DIR points them at a folder of its own), then
// `make dev-crossplane-down`'s, which must leave no process behind.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { freshCluster } from "../support/clusters.ts";
import { freePort } from "../support/net.ts";
import { netnsUnavailable } from "../support/netns.ts";
import { exitAndOutput } from "../support/processes.ts";
import { binDir, crossplaneUnavailable, repoRoot } from "../support/tools.ts";

function unavailable(): string | undefined {
  const missing = ["crossplane-core", "crane", "sample-function"].filter((t) => !existsSync(join(binDir, t)));
  if (missing.length > 0) return `${missing.join(", ")} not built: run make tools`;
  if (!existsSync(join(repoRoot, "dist/cli/main.js"))) return "dist/ not built: run make build";
  return crossplaneUnavailable() ?? netnsUnavailable();
}

function run(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; output: string }> {
  const child = spawn(process.execPath, [join(repoRoot, file), ...args], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  return exitAndOutput(child);
}

/** Running (a zombie has ended; only its parent's wait is missing). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

describe("make demo", { skip: unavailable() }, () => {
  const dev = mkdtempSync(join(tmpdir(), "klb-demo-"));
  const env = { KLB_DEV_DIR: dev, DEMO_SERVE: "" };
  after(async () => {
    await run("test/support/dev-crossplane.ts", ["down"], env);
    rmSync(dev, { recursive: true, force: true });
  });

  it("runs on the real Crossplane core, then dev-crossplane-down leaves nothing running", {
    timeout: 600_000,
  }, async (t) => {
    const [control, app] = await Promise.all([freshCluster("control"), freshCluster("app")]);
    copyFileSync(control.kubeconfigPath, join(dev, "control.kubeconfig"));
    copyFileSync(app.kubeconfigPath, join(dev, "app.kubeconfig"));
    Object.assign(env, { DEMO_WEB_ADDRESS: `127.0.0.1:${await freePort()}` });

    const up = await run("test/support/dev-crossplane.ts", ["up"], env);
    assert.equal(up.code, 0, up.output);
    for (const line of up.output.split("\n").filter((l) => l.includes("up in"))) t.diagnostic(line);
    assert.match(
      up.output,
      /crossplane xpkg install function 127\.0\.0\.1:\d+\/klutch-bind\/function-klutch-bind:v0\.1\.0/,
    );
    const again = await run("test/support/dev-crossplane.ts", ["up"], env);
    assert.equal(again.code, 0, again.output);
    assert.match(again.output, /already up/);

    const demo = await run("examples/demo.ts", [], { ...env, DEMO_SERVE: "1" });
    assert.equal(demo.code, 0, demo.output);
    for (const line of demo.output.split("\n").filter((l) => /^\[demo\] .*\d\. |done in/.test(l))) t.diagnostic(line);
    for (const expected of [
      /the sync made ServiceExport postgresqlinstances\.anynines\.com with 2 claims/,
      /Crossplane called function-klutch-bind over mTLS: Exported=True/,
      /APIServiceExportTemplate crossplane-system\/postgresqlinstances\.anynines\.com/,
      /app is Ready/,
      /orders-db-credentials composed by Crossplane \(owner PostgresqlInstance orders-db/,
      /team-orders\/orders-db: Synced=True \(ReconcileSuccess\), Ready=True/,
      /team-orders\/orders-db-credentials: host=orders-db\..*, password=\(24 bytes\), username=app/,
      /gone with its XR/,
      /the credentials copy removed with its original/,
      /sign in as crossplane-system\/demo-user/,
    ]) {
      assert.match(demo.output, expected);
    }
    // a second run finds everything in place and does it again
    const rerun = await run("examples/demo.ts", [], env);
    assert.equal(rerun.code, 0, rerun.output);

    const pidDir = join(dev, "crossplane", "pids");
    const pids = readdirSync(pidDir).map((f) => {
      const text = readFileSync(join(pidDir, f), "utf8");
      return text.startsWith("{") ? (JSON.parse(text) as { pid: number }).pid : Number(text);
    });
    assert.ok(pids.length >= 6, `pid files: ${readdirSync(pidDir).join(", ")}`);
    const down = await run("test/support/dev-crossplane.ts", ["down"], env);
    assert.equal(down.code, 0, down.output);
    assert.deepEqual(
      pids.filter((pid) => alive(pid)),
      [],
      "processes left running",
    );
    assert.equal(existsSync(join(dev, "crossplane")), false);
  });
});
