// Lists still being read count against their tenant's cache budget and against a ceiling all
// tenants' share: app clusters that answer every list with 4 pages of 8 MiB, twelve lists at once,
// leave the sync (a process of its own, its heap capped at 300 MiB as a small container's) alive,
// and another tenant's binding syncing meanwhile.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { kubeconfigSecretMarks } from "../../src/api/kubeconfig-secret.ts";
import { providerNamespace } from "../../src/api/naming.ts";
import { refs } from "../../src/api/resources.ts";
import type { KubeObject } from "../../src/kube/client.ts";
import { conditionOf } from "../../src/kube/conditions.ts";
import { freshCluster, onFileDone, testNamespace, uniqueSuffix } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";
import { type LoopingServer, startLoopingServer } from "../support/hostile-cluster.ts";
import { stopProcess, testSyncFlags } from "../support/processes.ts";
import { type SyncEnv, syncEnv } from "../support/sync-env.ts";
import { repoRoot } from "../support/tools.ts";

const attackers = 12;

/** The process's peak resident set so far, in MiB (Linux: VmHWM). */
function peakRssMib(pid: number): number {
  const hwm = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Math.round(Number(hwm?.[1]) / 1024);
}

/** A marked kubeconfig Secret and a binding of the exported API, NAME in namespace. */
async function bindIn(env: SyncEnv, namespace: string, name: string, kubeconfig: string): Promise<KubeObject> {
  await env.controlClient.create(refs.secrets, {
    apiVersion: "v1",
    kind: "Secret",
    metadata: {
      name: `${name}-kubeconfig`,
      namespace,
      ...kubeconfigSecretMarks({ group: refs.bindings.group, namespace, name }),
    },
    data: { kubeconfig: Buffer.from(kubeconfig).toString("base64") },
  });
  return env.controlClient.create(refs.bindings, {
    apiVersion: "bind.klutch.dev/v1alpha1",
    kind: "AppClusterBinding",
    metadata: { name, namespace },
    spec: {
      kubeconfigSecretRef: { name: `${name}-kubeconfig` },
      exports: [{ group: env.ref.group, resource: env.ref.resource }],
    },
  });
}

/**
 * Twelve hostile app clusters (one per binding: a cluster's API is bound once), their bindings all
 * in one namespace or each in its own, and the sync run with extra flags: it stays alive, a healthy
 * tenant's binding syncs, every hostile cluster is listed twice at least and the first hostile
 * binding's Connected condition matches refused. Returns the sync's peak RSS in MiB.
 */
async function attack(spread: "one tenant" | "a tenant each", extra: string[], refused: RegExp): Promise<number> {
  // a control plane of its own: this sync serves every namespace
  const control = await freshCluster("list-memory-control");
  const env = await syncEnv({ control, inProcess: false });
  const servers: LoopingServer[] = [];
  const hostile: Array<{ namespace: string; name: string }> = [];
  for (let i = 0; i < attackers; i++) {
    const server = await startLoopingServer("huge-pages", env.ref.resource);
    onFileDone(() => server.stop());
    servers.push(server);
    const namespace = spread === "one tenant" ? env.bindingNamespace : await testNamespace(control, `hostile-${i}`);
    await env.template([], namespace);
    await bindIn(env, namespace, `huge-${i}`, server.kubeconfig);
    hostile.push({ namespace, name: `huge-${i}` });
  }
  const other = await testNamespace(control, "tenant-b");
  await env.template([], other);
  const templateNamespaces = [...new Set([env.bindingNamespace, other, ...hostile.map((h) => h.namespace)])];

  const args = [
    "--max-old-space-size=300",
    join(repoRoot, "src/cli/main.ts"),
    "sync",
    "--kubeconfig",
    control.kubeconfigPath,
    ...testSyncFlags,
    ...templateNamespaces.flatMap((ns) => ["--template-namespace", ns]),
    ...extra,
  ];
  const sync = spawn(process.execPath, args, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  sync.stderr.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  onFileDone(() => stopProcess(sync));
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

  const healthy = await bindIn(env, other, "healthy", env.appKubeconfig);
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
  const first = hostile[0] ?? { namespace: "", name: "" };
  await whileAlive(
    "an attacking binding says why its list was refused",
    async () => {
      const read = await env.controlClient.get(refs.bindings, first.name, first.namespace);
      const connected = conditionOf(read, "Connected");
      assert.equal(connected?.status, "False", JSON.stringify(read?.status));
      assert.match(connected?.message ?? "", refused);
    },
    60_000,
  );
  assert.ok(sync.exitCode === null && sync.signalCode === null, `the sync ended: ${stderr}`);
  return peakRssMib(sync.pid ?? 0);
}

describe("lists being read count against the cache budget and a shared ceiling", () => {
  it("twelve lists of 4 x 8 MiB of one tenant, against a 4 MiB budget, leave a 300 MiB heap sync alive and other tenants syncing", async (t) => {
    const peak = await attack(
      "one tenant",
      ["--app-cache-mib-per-namespace", "4"],
      /lists still being read\): more than the limit of .*, 4 MiB.*--app-cache-mib-per-namespace|--app-cache-mib-per-namespace.*lists still being read\): more than the limit of .*, 4 MiB/,
    );
    t.diagnostic(`peak RSS of the sync under the attack: ${peak} MiB`);
    // before lists counted as they were read, the heap ran out (1.18 GiB RSS without the heap cap)
    assert.ok(peak < 450, `peak RSS ${peak} MiB`);
  });

  it("twelve tenants' lists of 4 x 8 MiB, within their default budgets, are held by the ceiling all lists share", async (t) => {
    const peak = await attack("a tenant each", [], /lists being read .*--app-lists-mib-in-flight/);
    t.diagnostic(`peak RSS of the sync under the attack: ${peak} MiB`);
    // measured 335-415 MiB (answer buffers live outside the 300 MiB heap, and vary with GC timing);
    // without the ceiling the heap ran out: the bound is half the 1.18 GiB seen then
    assert.ok(peak < 600, `peak RSS ${peak} MiB`);
  });
});
