// The sync under faults: killed with SIGKILL at random points of a burst, two replicas, two
// writers. All state lives in the clusters, so it converges with nothing lost. API servers
// restarted or gone for a minute: api-server-outages.test.ts.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { providerNamespace } from "../../src/api/naming.ts";
import { refs } from "../../src/api/resources.ts";
import type { KubeObject } from "../../src/kube/client.ts";
import { onFileDone, uniqueSuffix } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";
import { freePort } from "../support/net.ts";
import { stopProcess, testSyncFlags } from "../support/processes.ts";
import { syncEnv } from "../support/sync-env.ts";
import { repoRoot } from "../support/tools.ts";

function startSyncProcess(kubeconfig: string, namespace: string, ...extra: string[]): ChildProcess {
  const args = [join(repoRoot, "src/cli/main.ts"), "sync", "--kubeconfig", kubeconfig, "--namespace", namespace];
  return spawn(process.execPath, [...args, ...testSyncFlags, ...extra], {
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
  it("converges exactly after five SIGKILLs at random points of a burst of 1,000 creations", async () => {
    const env = await syncEnv({ inProcess: false });
    let sync = startSyncProcess(env.control.kubeconfigPath, env.bindingNamespace);
    onFileDone(() => stopProcess(sync));
    const binding = await env.bind("burst", []);
    const uid = binding.metadata.uid ?? "";
    await env.ready("burst");

    const ns = `burst-${uniqueSuffix()}`;
    const pns = providerNamespace(uid, ns);
    await env.appClient.create(refs.namespaces, { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } });
    const total = 1000;
    const names = Array.from({ length: total }, (_, i) => `db-${String(i).padStart(4, "0")}`);
    const create = (name: string) =>
      env.appClient.create(env.ref, {
        apiVersion: env.apiVersion,
        kind: env.kind,
        metadata: { name, namespace: ns },
        spec: { size: name },
      });

    // the burst runs at its own pace; the sync is killed five times while it does, each time after
    // a random 0.2 to 1.2 s of running, and started again at once
    let created = 0;
    const burst = inBatches(names, 10, async (name) => {
      await create(name);
      created++;
    });
    const killedAt: number[] = [];
    for (let kill = 0; kill < 5; kill++) {
      await sleep(200 + Math.floor(Math.random() * 1000));
      sync.kill("SIGKILL");
      await once(sync, "exit");
      killedAt.push(created);
      sync = startSyncProcess(env.control.kubeconfigPath, env.bindingNamespace);
    }
    await burst;
    assert.ok(killedAt[0] !== undefined && killedAt[0] < total, `the first kill came during the burst (${killedAt})`);

    await eventually(
      `exactly ${total} provider copies, each with its spec, no duplicate and no orphan`,
      async () => {
        const copies = (await env.controlClient.list(env.ref, { namespace: pns })).items;
        assert.equal(copies.length, total);
        assert.deepEqual(copies.map((c) => c.metadata.name).sort(), names);
        assert.ok(copies.every((c) => (c.spec as { size: string }).size === c.metadata.name));
      },
      120_000,
    );

    // the provider reports on all of them; every status comes back
    const copies = (await env.controlClient.list(env.ref, { namespace: pns })).items;
    await inBatches(copies, 50, (c: KubeObject) =>
      env.controlClient.updateStatus(env.ref, { ...c, status: { endpoint: `${c.metadata.name}.db` } }),
    );
    await eventually(
      `${total} statuses down`,
      async () => {
        const consumers = (await env.appClient.list(env.ref, { namespace: ns })).items;
        assert.equal(consumers.length, total);
        const missing = consumers.filter(
          (c) => (c.status as { endpoint?: string } | undefined)?.endpoint !== `${c.metadata.name}.db`,
        );
        assert.equal(missing.length, 0, `${missing.length} statuses missing`);
      },
      120_000,
    );
  });

  it("runs one leader of two replicas, the standby writing nothing; when the leader is killed the other takes over within the lease", async () => {
    const env = await syncEnv({ inProcess: false });
    const electionNs = env.bindingNamespace;
    const args = ["--leader-elect", "--leader-election-namespace", electionNs, "--lease-duration", "3"];
    const first = startSyncProcess(env.control.kubeconfigPath, env.bindingNamespace, ...args);
    const firstLeads = becameLeader(first);
    await firstLeads;
    // the standby serves its probes: healthy and ready while it waits (a probe that failed would
    // have Kubernetes restart or unready a healthy pod)
    const healthPort = await freePort();
    const second = startSyncProcess(
      env.control.kubeconfigPath,
      env.bindingNamespace,
      ...args,
      "--health-address",
      `127.0.0.1:${healthPort}`,
    );
    const secondLeads = becameLeader(second);
    const secondSaid: Array<{ at: number; line: string }> = [];
    createInterface({ input: second.stdout as NodeJS.ReadableStream }).on("line", (line) =>
      secondSaid.push({ at: Date.now(), line }),
    );
    onFileDone(async () => {
      await Promise.all([first, second].map(stopProcess));
    });
    const binding = await env.bind("ha", []);
    const uid = binding.metadata.uid ?? "";
    await env.ready("ha");
    const standby = await Promise.race([secondLeads.then(() => "leads"), sleep(4000).then(() => "standing by")]);
    assert.equal(standby, "standing by", "the second replica does not lead while the first renews");
    for (const path of ["/healthz", "/readyz"]) {
      const answer = await fetch(`http://127.0.0.1:${healthPort}${path}`);
      assert.equal(answer.status, 200, `${path} of the standby: ${await answer.text()}`);
    }

    // the standby starts no sync, so it writes nothing, while the leader lives
    await env.appObject(`ha-before-${uniqueSuffix()}`, "before", "s");
    first.kill("SIGKILL");
    const killedAt = Date.now();
    const whileStandby = secondSaid.filter((l) => l.at < killedAt).map((l) => JSON.parse(l.line).msg as string);
    assert.ok(whileStandby.includes("waiting to become leader"), whileStandby.join(", "));
    assert.ok(
      !whileStandby.some((msg) => msg === "sync started" || msg === "syncing export"),
      `the standby synced before the leader died: ${whileStandby.join(", ")}`,
    );
    await secondLeads;
    const takeover = (Date.now() - killedAt) / 1000;
    assert.ok(takeover < 3 + 3, `took over in ${takeover.toFixed(1)} s (lease 3 s)`);
    await eventually("the new leader is ready once its control-plane caches are filled", async () => {
      assert.equal((await fetch(`http://127.0.0.1:${healthPort}/readyz`)).status, 200);
    });

    const ns = `ha-${uniqueSuffix()}`;
    await env.appObject(ns, "after", "s");
    await eventually(
      "the new leader syncs",
      async () => {
        assert.ok(await env.controlClient.get(env.ref, "after", providerNamespace(uid, ns)));
      },
      30_000,
    );
  });

  it("settles a consumer and a provider writing the same object at once: spec the consumer's, status the provider's", async () => {
    const env = await syncEnv();
    const binding = await env.bind("race", []);
    const uid = binding.metadata.uid ?? "";
    await env.ready("race");
    const ns = `race-${uniqueSuffix()}`;
    const pns = providerNamespace(uid, ns);
    await env.appObject(ns, "contended", "s0");
    await eventually("copy", async () => assert.ok(await env.controlClient.get(env.ref, "contended", pns)));

    // 20 rounds: the consumer edits spec while the provider edits spec (drift) and status
    const retry409 = async (fn: () => Promise<unknown>) => {
      for (;;) {
        try {
          return await fn();
        } catch (err) {
          if ((err as { code?: number }).code !== 409) throw err;
        }
      }
    };
    await Promise.all([
      (async () => {
        for (let i = 1; i <= 20; i++) {
          await retry409(async () => {
            const c = await env.appClient.get(env.ref, "contended", ns);
            if (c) await env.appClient.update(env.ref, { ...c, spec: { size: `s${i}` } });
          });
        }
      })(),
      (async () => {
        for (let i = 1; i <= 20; i++) {
          await retry409(async () => {
            const p = await env.controlClient.get(env.ref, "contended", pns);
            if (!p) return;
            const updated = await env.controlClient.update(env.ref, { ...p, spec: { size: `provider-${i}` } });
            await env.controlClient.updateStatus(env.ref, { ...updated, status: { endpoint: `e${i}` } });
          });
        }
      })(),
    ]);
    await eventually(
      "spec is the consumer's on both sides, status the provider's",
      async () => {
        const provider = await env.controlClient.get(env.ref, "contended", pns);
        const consumer = await env.appClient.get(env.ref, "contended", ns);
        assert.deepEqual(provider?.spec, { size: "s20" });
        assert.deepEqual(consumer?.spec, { size: "s20" });
        assert.deepEqual(consumer?.status, { endpoint: "e20" });
      },
      30_000,
    );
  });
});
