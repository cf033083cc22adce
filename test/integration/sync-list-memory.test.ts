// Lists still being read count against their tenant's cache budget: one tenant's app clusters that
// answer every list with 4 pages of 8 MiB, twelve lists at once against a 4 MiB budget, leave the
// sync (a process of its own, its heap capped at 300 MiB as a small container's) alive, and another
// tenant's binding syncing meanwhile.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { conditionOf } from "../../src/kube/conditions.ts";
import { kubeconfigSecretMarks } from "../../src/sync/kubeconfig-secret.ts";
import { providerNamespace } from "../../src/sync/naming.ts";
import { refs } from "../../src/sync/resources.ts";
import { freshCluster, onFileDone, testNamespace, uniqueSuffix } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";
import { type LoopingServer, startLoopingServer } from "../support/hostile-cluster.ts";
import { stopProcess } from "../support/processes.ts";
import { syncEnv } from "../support/sync-env.ts";
import { repoRoot } from "../support/tools.ts";

const attackers = 12;

/** The process's peak resident set so far, in MiB (Linux: VmHWM). */
function peakRssMib(pid: number): number {
  const hwm = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Math.round(Number(hwm?.[1]) / 1024);
}

describe("lists being read count against the cache budget", () => {
  it("twelve lists of 4 x 8 MiB against a 4 MiB budget leave a 300 MiB heap sync alive and other tenants syncing", async (t) => {
    // a control plane of its own: this sync serves every namespace
    const control = await freshCluster("list-memory-control");
    const env = await syncEnv({ control, inProcess: false });
    const servers: LoopingServer[] = [];
    for (let i = 0; i < attackers; i++) {
      // one cluster each: a cluster's API is bound by one binding only
      const server = await startLoopingServer("huge-pages", env.ref.resource);
      onFileDone(() => server.stop());
      servers.push(server);
      await env.bindWith(`huge-${i}`, server.kubeconfig);
    }
    const other = await testNamespace(control, "tenant-b");
    await env.template([], other);

    const args = [
      "--max-old-space-size=300",
      join(repoRoot, "src/cli/main.ts"),
      "sync",
      "--kubeconfig",
      control.kubeconfigPath,
      "--metrics-address",
      "",
      "--health-address",
      "",
      "--status-interval",
      "1",
      "--template-namespace",
      env.bindingNamespace,
      "--template-namespace",
      other,
      "--app-cache-mib-per-namespace",
      "4",
    ];
    const sync = spawn(process.execPath, args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    sync.stderr.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4000);
    });
    onFileDone(() => stopProcess(sync));
    const alive = () =>
      assert.ok(
        sync.exitCode === null && sync.signalCode === null,
        `the sync ended (${sync.exitCode ?? sync.signalCode}): ${stderr}`,
      );
    const died = new Promise<never>((_, reject) =>
      sync.once("exit", (code, signal) => reject(new Error(`the sync ended (${code ?? signal}): ${stderr}`))),
    );
    died.catch(() => undefined);
    /** like eventually, but fails at once when the sync dies */
    const whileAlive = (what: string, check: () => unknown, timeoutMs: number) => {
      const until = eventually(what, check, timeoutMs);
      until.catch(() => undefined);
      return Promise.race([until, died]);
    };

    await whileAlive("every attacking cluster listed", () => assert.ok(servers.every((s) => s.lists >= 1)), 120_000);

    await env.controlClient.create(refs.secrets, {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "healthy-kubeconfig", namespace: other, ...kubeconfigSecretMarks("healthy") },
      data: { kubeconfig: Buffer.from(env.appKubeconfig).toString("base64") },
    });
    const healthy = await env.controlClient.create(refs.bindings, {
      apiVersion: "bind.klutch.dev/v1alpha1",
      kind: "AppClusterBinding",
      metadata: { name: "healthy", namespace: other },
      spec: {
        kubeconfigSecretRef: { name: "healthy-kubeconfig" },
        exports: [{ group: env.ref.group, resource: env.ref.resource }],
      },
    });
    await whileAlive(
      "the other tenant's binding Ready",
      async () => {
        const read = await env.controlClient.get(refs.bindings, "healthy", other);
        assert.equal(conditionOf(read, "Ready")?.status, "True", JSON.stringify(read?.status));
      },
      90_000,
    );
    const ns = `list-memory-${uniqueSuffix()}`;
    await env.appObject(ns, "db");
    await whileAlive(
      "its object copied up",
      async () =>
        assert.ok(await env.controlClient.get(env.ref, "db", providerNamespace(healthy.metadata.uid ?? "", ns))),
      60_000,
    );

    // the attack goes on: every cluster asked again (its informer retries after a backoff)
    const before = servers.map((s) => s.lists);
    await whileAlive(
      "every attacking cluster listed again",
      () => assert.ok(servers.every((s, i) => s.lists > (before[i] ?? 0))),
      120_000,
    );
    await whileAlive(
      "an attacking binding says its share is full",
      async () => {
        const read = await env.controlClient.get(refs.bindings, "huge-0", env.bindingNamespace);
        const connected = conditionOf(read, "Connected");
        assert.equal(connected?.status, "False", JSON.stringify(read?.status));
        assert.match(connected?.message ?? "", /lists still being read\): more than the limit of .*, 4 MiB/);
        assert.match(connected?.message ?? "", /--app-cache-mib-per-namespace/);
      },
      60_000,
    );
    alive();
    const peak = peakRssMib(sync.pid ?? 0);
    t.diagnostic(`peak RSS of the sync under the attack: ${peak} MiB`);
    // before lists counted as they were read: the heap ran out (1.18 GiB RSS without the heap cap)
    assert.ok(peak < 450, `peak RSS ${peak} MiB`);
  });
});
