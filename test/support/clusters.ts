// What an integration test asks for: the shared control and app clusters, a client for them,
// a namespace of its own, or a brand-new cluster when it needs one to itself.
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after } from "node:test";
import { CoreV1Api, KubeConfig, KubernetesObjectApi } from "@kubernetes/client-node";
import { KubeApiError, type KubeClient, type ResourceRef } from "../../src/kube/client.ts";
import { type ParsedKubeconfig, readKubeconfigFile } from "../../src/kube/kubeconfig.ts";
import {
  type Cluster,
  externalCluster,
  runningCluster,
  type SharedClusterName,
  type StartOptions,
  sharedClusterNames,
  startCluster,
  stopCluster,
  testClustersEnv,
} from "./cluster.ts";
import { devClusterDir, devCrossplaneUp } from "./tools.ts";

// Cleanups run when the test file's tests are done. The hook is registered here, at import time,
// in the root context: `after` called inside a before hook would run right after that hook.
const cleanups: Array<() => Promise<unknown>> = [];
// Every cleanup runs, whatever an earlier one threw: one that stopped the rest would leave
// processes behind (a cluster, a sync) that keep the test file from ever ending.
after(async () => {
  const failed: unknown[] = [];
  for (const cleanup of cleanups.reverse()) {
    try {
      await cleanup();
    } catch (err) {
      failed.push(err);
    }
  }
  if (failed.length > 0) throw new AggregateError(failed, `${failed.length} cleanup(s) of this test file failed`);
});

/** Runs fn when this test file is done, after those registered later. */
export function onFileDone(fn: () => Promise<unknown>): void {
  cleanups.push(fn);
}

let shared: Promise<Record<SharedClusterName, Cluster>> | undefined;

/**
 * The control and app clusters of this run: those of the global setup, else running dev
 * clusters, else a pair started for this test file and stopped after it.
 */
export function testClusters(): Promise<Record<SharedClusterName, Cluster>> {
  shared ??= resolveShared();
  return shared;
}

async function resolveShared(): Promise<Record<SharedClusterName, Cluster>> {
  const fromEnv = process.env[testClustersEnv];
  if (fromEnv !== undefined) {
    const list = JSON.parse(fromEnv) as Cluster[];
    return Object.fromEntries(list.map((c) => [c.name, c])) as Record<SharedClusterName, Cluster>;
  }
  const entries = await Promise.all(
    sharedClusterNames.map(async (name) => {
      const dev =
        externalCluster(name) ?? (devCrossplaneUp() ? undefined : await runningCluster(name, devClusterDir(name)));
      return [name, dev ?? (await freshCluster(name))] as const;
    }),
  );
  return Object.fromEntries(entries) as Record<SharedClusterName, Cluster>;
}

/** A cluster of its own for this test file, stopped and removed after it. Costs a few seconds. */
export async function freshCluster(name = "fresh", options: StartOptions = {}): Promise<Cluster> {
  const root = mkdtempSync(join(tmpdir(), "klb-fresh-"));
  onFileDone(async () => {
    await stopCluster(join(root, name), { removeData: true });
    rmSync(root, { recursive: true, force: true });
  });
  return startCluster(name, join(root, name), options);
}

export function kubeConfig(cluster: Cluster): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(cluster.kubeconfigPath);
  return kc;
}

/** The cluster's kubeconfig as KubeClient.fromConfig takes it. */
export function clientConfig(cluster: Cluster): ParsedKubeconfig {
  return readKubeconfigFile(cluster.kubeconfigPath);
}

export function objects(cluster: Cluster): KubernetesObjectApi {
  return KubernetesObjectApi.makeApiClient(kubeConfig(cluster));
}

/** For cleanups: what is already gone is fine, anything else is an error. */
export function ignoreNotFound(err: unknown): void {
  if (typeof err === "object" && err !== null && "code" in err && err.code === 404) return;
  throw err;
}

/**
 * For cleanups: takes every finalizer off an object, read anew when a controller changed it
 * meanwhile (409); an object already gone is fine.
 */
export async function dropFinalizers(
  client: KubeClient,
  ref: ResourceRef,
  name: string,
  namespace?: string,
): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const left = await client.get(ref, name, namespace);
    if (!left?.metadata.finalizers?.length) return;
    try {
      await client.update(ref, { ...left, metadata: { ...left.metadata, finalizers: [] } });
      return;
    } catch (err) {
      if (err instanceof KubeApiError && err.code === 404) return;
      if (!(err instanceof KubeApiError) || err.code !== 409 || attempt >= 10) throw err;
    }
  }
}

/** A short random suffix for names that must not collide between tests and runs. */
export function uniqueSuffix(): string {
  return randomBytes(4).toString("hex");
}

/** A namespace for this test file alone, deleted after it. */
export async function testNamespace(cluster: Cluster, prefix = "t"): Promise<string> {
  const core = kubeConfig(cluster).makeApiClient(CoreV1Api);
  const name = `${prefix}-${uniqueSuffix()}`;
  await core.createNamespace({ body: { metadata: { name, labels: { "klutch-bind.test/owner": "integration" } } } });
  onFileDone(() => core.deleteNamespace({ name }).catch(ignoreNotFound));
  return name;
}
