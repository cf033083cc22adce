// What the sharding tests (sync-shards, sync-shards-slow-tenant) set up alike: many exported APIs
// with a binding each, `klutch-bind sync --shards auto` replicas as child processes, and a record
// of which replica wrote each binding's status when.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { appendFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { refs } from "../../src/api/resources.ts";
import type { KubeObject, ResourceRef } from "../../src/kube/client.ts";
import { isEstablished } from "../../src/kube/conditions.ts";
import { onFileDone } from "./clusters.ts";
import { eventually } from "./eventually.ts";
import { stopProcess } from "./processes.ts";
import { dropExportedApi, exportedCrd, type SyncEnv } from "./sync-env.ts";
import { repoRoot } from "./tools.ts";

/** An exported API of a test's own, its template's name, and the binding that binds it. */
export type BoundApi = { ref: ResourceRef; template: string; binding: string };

/** fn over items, size of them at a time. */
export async function inBatches<T>(items: T[], size: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(fn));
}

/**
 * Each API's CRD on the control plane and its template in env's binding namespace, ten at a time;
 * resolves once every CRD is established. The CRDs (and what still holds a finalizer of them, in
 * both clusters) go when the test file is done.
 */
export async function exportApis(env: SyncEnv, apis: BoundApi[]): Promise<void> {
  onFileDone(async () => {
    for (const { ref } of apis) await dropExportedApi([env.appClient, env.controlClient], ref);
  });
  await inBatches(apis, 10, async ({ ref, template }) => {
    await env.controlClient.apply(refs.crds, exportedCrd(ref.group, "Namespaced"), "test", true);
    await env.controlClient.apply(
      refs.templates,
      {
        apiVersion: "example-backend.klutch.anynines.com/v1alpha1",
        kind: "APIServiceExportTemplate",
        metadata: { name: template, namespace: env.bindingNamespace },
        spec: {
          APIServiceSelector: { group: ref.group, resource: ref.resource, version: "v1" },
          permissionClaims: [],
        },
      },
      "test",
      true,
    );
  });
  await eventually(`${apis.length} exported CRDs established`, async () => {
    for (const { ref } of apis) {
      assert.ok(isEstablished(await env.controlClient.get(refs.crds, `${ref.resource}.${ref.group}`)));
    }
  });
}

/** A binding of each API to env's app cluster (its kubeconfig Secret too), ten at a time: their uids by binding name. */
export async function bindApis(env: SyncEnv, apis: BoundApi[]): Promise<Map<string, string>> {
  const uids = new Map<string, string>();
  await inBatches(apis, 10, async ({ ref, binding }) => {
    await env.kubeconfigSecret(binding, env.appKubeconfig);
    const created = await env.controlClient.create(refs.bindings, {
      apiVersion: "bind.klutch.dev/v1alpha1",
      kind: "AppClusterBinding",
      metadata: { name: binding, namespace: env.bindingNamespace },
      spec: {
        kubeconfigSecretRef: { name: `${binding}-kubeconfig` },
        exports: [{ group: ref.group, resource: ref.resource }],
      },
    });
    uids.set(binding, created.metadata.uid ?? "");
  });
  return uids;
}

export type LogEntry = { msg?: string; shard?: string; [field: string]: unknown };
export type Replica = {
  child: ChildProcess;
  name: string;
  /** its shard identity, once it joined */
  identity: Promise<string>;
  /** resolves with the first log entry with this message (from the start) */
  logged: (msg: string) => Promise<LogEntry>;
};

/**
 * `klutch-bind sync --shards auto` as pod NAME on env's control plane, its Leases in env's binding
 * namespace, with the test's flags after those; stopped (woken first, if frozen) when the file is
 * done. KLB_TEST_LOG_DIR=DIR keeps its log in DIR/NAME.log.
 */
export function startReplica(env: SyncEnv, name: string, flags: string[]): Replica {
  const child = spawn(
    process.execPath,
    [
      join(repoRoot, "src/cli/main.ts"),
      "sync",
      "--kubeconfig",
      env.control.kubeconfigPath,
      "--shards",
      "auto",
      "--leader-election-namespace",
      env.bindingNamespace,
      ...flags,
    ],
    { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, POD_NAME: name } },
  );
  const entries: LogEntry[] = [];
  const waiting: Array<{ msg: string; resolve: (entry: LogEntry) => void }> = [];
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
    const entry = JSON.parse(line) as LogEntry;
    if (process.env.KLB_TEST_LOG_DIR) appendFileSync(join(process.env.KLB_TEST_LOG_DIR, `${name}.log`), `${line}\n`);
    entries.push(entry);
    for (const w of waiting.filter((w) => w.msg === entry.msg)) w.resolve(entry);
  });
  const logged = (msg: string) =>
    new Promise<LogEntry>((resolve, reject) => {
      const found = entries.find((e) => e.msg === msg);
      if (found) return resolve(found);
      waiting.push({ msg, resolve });
      child.once("exit", (code) => reject(new Error(`${name} exited (${code}) before it logged "${msg}"`)));
    });
  const identity = logged("shard member").then((entry) => entry.shard ?? "");
  identity.catch(() => undefined);
  onFileDone(() => {
    child.kill("SIGCONT"); // one still frozen by a failed run
    return stopProcess(child);
  });
  return { child, name, identity, logged };
}

/** Each status write of a binding: the replica it named (status.servedBy) and when it was seen. */
export type ServedWrites = Map<string, Array<{ servedBy: string | undefined; at: number }>>;

/**
 * Watches the bindings of env's binding namespace, recording every write of each (and, first, each
 * binding as listed at the start), until stop(). Resolves once the watch began.
 */
export async function watchServedBy(env: SyncEnv): Promise<{ writes: ServedWrites; stop: () => Promise<void> }> {
  const writes: ServedWrites = new Map();
  const record = (binding: KubeObject) => {
    const servedBy = (binding.status as { servedBy?: string } | undefined)?.servedBy;
    const list = writes.get(binding.metadata.name) ?? [];
    list.push({ servedBy, at: Date.now() });
    writes.set(binding.metadata.name, list);
  };
  const watching = new AbortController();
  onFileDone(async () => watching.abort());
  const listed = await env.controlClient.list(refs.bindings, { namespace: env.bindingNamespace });
  for (const binding of listed.items) record(binding);
  const watched = (async () => {
    let { resourceVersion } = listed;
    while (!watching.signal.aborted) {
      await env.controlClient
        .watch(
          refs.bindings,
          { namespace: env.bindingNamespace, resourceVersion, allowBookmarks: true, timeoutSeconds: 60 },
          (event) => {
            resourceVersion = event.object.metadata.resourceVersion ?? resourceVersion;
            if (event.type === "MODIFIED" || event.type === "ADDED") record(event.object);
          },
          watching.signal,
        )
        .catch((err: unknown) => {
          if (!watching.signal.aborted) throw err;
        });
    }
  })();
  return {
    writes,
    stop: async () => {
      watching.abort();
      await watched;
    },
  };
}
