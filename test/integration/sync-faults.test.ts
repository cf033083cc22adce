// The sync under faults: killed with SIGKILL in the middle of a burst, and an app API server that
// goes away for 20 seconds. All state lives in the clusters, so it converges with nothing lost.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { KubeObject } from "../../src/kube/client.ts";
import { providerNamespace } from "../../src/sync/naming.ts";
import { startCluster, stopCluster } from "../support/cluster.ts";
import { freshCluster, onFileDone, uniqueSuffix } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";
import { bindingsRef, condition, syncEnv } from "../support/sync-env.ts";
import { repoRoot } from "../support/tools.ts";

const namespacesRef = { group: "", version: "v1", resource: "namespaces", namespaced: false };

const quiet = ["--metrics-address", "", "--health-address", "", "--status-interval", "1"];

function startSyncProcess(kubeconfig: string, namespace: string, ...extra: string[]): ChildProcess {
  const args = [join(repoRoot, "src/cli/main.ts"), "sync", "--kubeconfig", kubeconfig, "--namespace", namespace];
  return spawn(process.execPath, [...args, ...quiet, ...extra], {
    stdio: ["ignore", extra.length > 0 ? "pipe" : "ignore", "inherit"],
  });
}

/** Resolves when the process logs that it became leader. */
function becameLeader(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    child.stdout?.on("data", (chunk: Buffer) => {
      if (chunk.toString().includes('"msg":"became leader"')) resolve();
    });
  });
}

async function inBatches<T>(items: T[], size: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(fn));
}

describe("the sync under faults", () => {
  it("converges exactly after SIGKILL in the middle of a burst of 200 creations", async () => {
    const env = await syncEnv({ inProcess: false });
    let sync = startSyncProcess(env.control.kubeconfigPath, env.bindingNamespace);
    onFileDone(async () => {
      if (sync.exitCode === null && sync.signalCode === null) {
        sync.kill("SIGTERM");
        await once(sync, "exit");
      }
    });
    const binding = await env.bind("burst", []);
    const uid = binding.metadata.uid ?? "";
    await eventually(
      "binding ready",
      async () => {
        const read = await env.controlClient.get(bindingsRef, "burst", env.bindingNamespace);
        assert.equal(condition(read, "Ready")?.status, "True", JSON.stringify(read?.status));
      },
      60_000,
    );

    const ns = `burst-${uniqueSuffix()}`;
    const pns = providerNamespace(uid, ns);
    await env.appClient.create(namespacesRef, { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } });
    const names = Array.from({ length: 200 }, (_, i) => `db-${String(i).padStart(3, "0")}`);
    const create = (name: string) =>
      env.appClient.create(env.ref, {
        apiVersion: env.apiVersion,
        kind: env.kind,
        metadata: { name, namespace: ns },
        spec: { size: name },
      });

    await inBatches(names.slice(0, 80), 20, create);
    sync.kill("SIGKILL");
    await once(sync, "exit");
    await inBatches(names.slice(80, 140), 20, create);
    sync = startSyncProcess(env.control.kubeconfigPath, env.bindingNamespace);
    await sleep(300);
    sync.kill("SIGKILL");
    await once(sync, "exit");
    await inBatches(names.slice(140), 20, create);
    sync = startSyncProcess(env.control.kubeconfigPath, env.bindingNamespace);

    await eventually(
      "exactly 200 provider copies, each with its spec",
      async () => {
        const copies = (await env.controlClient.list(env.ref, { namespace: pns })).items;
        assert.equal(copies.length, 200);
        assert.ok(copies.every((c) => (c.spec as { size: string }).size === c.metadata.name));
      },
      90_000,
    );

    // the provider reports on all of them; every status comes back
    const copies = (await env.controlClient.list(env.ref, { namespace: pns })).items;
    await inBatches(copies, 20, (c: KubeObject) =>
      env.controlClient.updateStatus(env.ref, { ...c, status: { endpoint: `${c.metadata.name}.db` } }),
    );
    await eventually(
      "200 statuses down",
      async () => {
        const consumers = (await env.appClient.list(env.ref, { namespace: ns })).items;
        assert.equal(consumers.length, 200);
        const missing = consumers.filter(
          (c) => (c.status as { endpoint?: string } | undefined)?.endpoint !== `${c.metadata.name}.db`,
        );
        assert.equal(missing.length, 0, `${missing.length} statuses missing`);
      },
      90_000,
    );
  });

  it("runs one leader of two replicas; when the leader is killed the other takes over within the lease", async () => {
    const env = await syncEnv({ inProcess: false });
    const electionNs = env.bindingNamespace;
    const args = ["--leader-elect", "--leader-election-namespace", electionNs, "--lease-duration", "3"];
    const first = startSyncProcess(env.control.kubeconfigPath, env.bindingNamespace, ...args);
    const firstLeads = becameLeader(first);
    await firstLeads;
    const second = startSyncProcess(env.control.kubeconfigPath, env.bindingNamespace, ...args);
    const secondLeads = becameLeader(second);
    onFileDone(async () => {
      for (const child of [first, second]) {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill("SIGTERM");
          await once(child, "exit");
        }
      }
    });
    const binding = await env.bind("ha", []);
    const uid = binding.metadata.uid ?? "";
    await eventually(
      "binding ready",
      async () => {
        const read = await env.controlClient.get(bindingsRef, "ha", env.bindingNamespace);
        assert.equal(condition(read, "Ready")?.status, "True");
      },
      60_000,
    );
    const standby = await Promise.race([secondLeads.then(() => "leads"), sleep(4000).then(() => "standing by")]);
    assert.equal(standby, "standing by", "the second replica does not lead while the first renews");

    first.kill("SIGKILL");
    const killedAt = Date.now();
    await secondLeads;
    const takeover = (Date.now() - killedAt) / 1000;
    assert.ok(takeover < 3 + 3, `took over in ${takeover.toFixed(1)} s (lease 3 s)`);

    const ns = `ha-${uniqueSuffix()}`;
    await env.appClient.create(namespacesRef, { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } });
    await env.appClient.create(env.ref, {
      apiVersion: env.apiVersion,
      kind: env.kind,
      metadata: { name: "after", namespace: ns },
      spec: { size: "s" },
    });
    await eventually(
      "the new leader syncs",
      async () => {
        assert.ok(await env.controlClient.get(env.ref, "after", providerNamespace(uid, ns)));
      },
      30_000,
    );
  });

  it("reports an app API server that stops for 20 s, then converges when it returns", async () => {
    const app = await freshCluster("outage-app");
    const env = await syncEnv({ app });
    const binding = await env.bind("outage", []);
    const uid = binding.metadata.uid ?? "";
    const ready = async (status: string) => {
      const read = await env.controlClient.get(bindingsRef, "outage", env.bindingNamespace);
      assert.equal(condition(read, "Connected")?.status, status, JSON.stringify(read?.status));
    };
    await eventually("connected", () => ready("True"), 60_000);

    await stopCluster(app.dir, { removeData: false });
    await eventually("Connected=False while the app cluster is away", () => ready("False"), 20_000);
    const read = await env.controlClient.get(bindingsRef, "outage", env.bindingNamespace);
    assert.equal(condition(read, "Connected")?.reason, "Unreachable");
    await sleep(15_000);
    await startCluster(app.name, app.dir);
    await eventually("Connected=True again", () => ready("True"), 60_000);

    const ns = `after-${uniqueSuffix()}`;
    await env.appClient.create(namespacesRef, { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } });
    await env.appClient.create(env.ref, {
      apiVersion: env.apiVersion,
      kind: env.kind,
      metadata: { name: "late", namespace: ns },
      spec: { size: "s" },
    });
    await eventually(
      "synced after the outage",
      async () => {
        assert.ok(await env.controlClient.get(env.ref, "late", providerNamespace(uid, ns)));
      },
      60_000,
    );
  });
});
