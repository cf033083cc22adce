// Starts and stops real local clusters: each is one `kube-local cluster` process holding an
// embedded etcd and a kube-apiserver, with a kube-controller-manager as its child.
import { spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync } from "node:fs";
import { request } from "node:https";
import { connect, createServer, type Server } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { KubeConfig } from "@kubernetes/client-node";
import { tool } from "./tools.ts";

export const sharedClusterNames = ["control", "app"] as const;
export type SharedClusterName = (typeof sharedClusterNames)[number];
/** The global setup passes the clusters of the run to the test files in this variable. */
export const testClustersEnv = "KLB_TEST_CLUSTERS";

export type Cluster = {
  name: string;
  /** state folder: certificates, etcd data, logs */
  dir: string;
  kubeconfigPath: string;
  server: string;
  /** the etcd client URL, for tests that act on storage directly (compaction) */
  etcd: string;
};

type ReadyFile = { pid: number; server: string; kubeconfig: string; etcd: string };

export type StartOptions = {
  timeoutMs?: number;
  progress?: (line: string) => void;
  /** extra kube-apiserver flags, e.g. --watch-cache=false */
  apiserverArgs?: string[];
};

function readJson<T>(path: string): T | undefined {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as T;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function launcherPid(dir: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(dir, "cluster.pid"), "utf8"));
    return Number.isInteger(pid) && pid > 0 && alive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** GET /readyz with the admin client certificate; true on 200. */
export function apiReady(dir: string, server: string): Promise<boolean> {
  const pki = join(dir, "pki");
  return new Promise((resolve) => {
    const req = request(
      `${server}/readyz`,
      {
        ca: readFileSync(join(pki, "ca.crt")),
        cert: readFileSync(join(pki, "admin.crt")),
        key: readFileSync(join(pki, "admin.key")),
        timeout: 3000,
      },
      (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      },
    );
    req.on("error", () => resolve(false));
    req.on("timeout", () => req.destroy());
    req.end();
  });
}

/** The cluster in dir if it is up and ready, else undefined. */
export async function runningCluster(name: string, dir: string): Promise<Cluster | undefined> {
  const ready = readJson<ReadyFile>(join(dir, "ready"));
  if (ready === undefined || !alive(ready.pid)) return undefined;
  if (!(await apiReady(dir, ready.server))) return undefined;
  return { name, dir, kubeconfigPath: ready.kubeconfig, server: ready.server, etcd: ready.etcd };
}

function logTail(dir: string): string {
  try {
    return readFileSync(join(dir, "cluster.log"), "utf8").split("\n").slice(-30).join("\n");
  } catch {
    return "(no log)";
  }
}

/**
 * Starts the cluster kept in dir, or returns it if it already runs (idempotent). The process is
 * detached: it outlives the caller until stopCluster.
 */
export async function startCluster(name: string, dir: string, options: StartOptions = {}): Promise<Cluster> {
  const running = await runningCluster(name, dir);
  if (running !== undefined) return running;
  await releasePorts(dir);
  const timeoutMs = options.timeoutMs ?? 180_000;
  mkdirSync(dir, { recursive: true });
  if (launcherPid(dir) === undefined) {
    const log = openSync(join(dir, "cluster.log"), "a");
    const extra = (options.apiserverArgs ?? []).map((a) => `--apiserver-arg=${a}`);
    const child = spawn(tool("kube-local"), ["cluster", "--dir", dir, "--name", name, ...extra], {
      detached: true,
      stdio: ["ignore", log, log],
    });
    closeSync(log);
    child.unref();
    options.progress?.(`starting cluster ${name} (pid ${child.pid}, state in ${dir})`);
  }
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    const cluster = await runningCluster(name, dir);
    if (cluster !== undefined) {
      options.progress?.(
        `cluster ${name} ready at ${cluster.server} in ${((Date.now() - started) / 1000).toFixed(1)}s`,
      );
      return cluster;
    }
    if (launcherPid(dir) === undefined && Date.now() - started > 2000) {
      throw new Error(`cluster ${name} exited while starting; last lines of ${dir}/cluster.log:\n${logTail(dir)}`);
    }
    await sleep(250);
  }
  throw new Error(
    `cluster ${name} not ready within ${timeoutMs / 1000}s; last lines of ${dir}/cluster.log:\n${logTail(dir)}`,
  );
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on("error", () => resolve(false));
  });
}

export function clusterPorts(dir: string): number[] {
  const ports = readJson<Record<string, number>>(join(dir, "ports.json"));
  return ports === undefined ? [] : Object.values(ports);
}

/**
 * Stops the cluster in dir (SIGTERM, then SIGKILL after timeoutMs) and waits until its ports are
 * closed. With removeData the folder goes too.
 */
/** listeners holding the ports of clusters stopped to be started again (stopCluster's holdPorts) */
const heldPorts = new Map<string, Server[]>();

async function releasePorts(dir: string): Promise<void> {
  const held = heldPorts.get(dir) ?? [];
  heldPorts.delete(dir);
  await Promise.all(held.map((server) => new Promise((resolve) => server.close(resolve))));
}

/**
 * Listens on the ports of the stopped cluster in dir until startCluster starts it again: while it
 * is away for a minute, any process on the machine could take one of its ports (they are from the
 * ephemeral range), and the restart would fail. Connections are closed at once, as a server that is
 * away would refuse them.
 */
async function holdPorts(dir: string): Promise<void> {
  const held: Server[] = [];
  for (const port of clusterPorts(dir)) {
    const server = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => resolve());
    });
    // a test that fails before the restart must not keep its process alive
    server.unref();
    held.push(server);
  }
  heldPorts.set(dir, held);
}

export async function stopCluster(
  dir: string,
  options: { removeData?: boolean; timeoutMs?: number; holdPorts?: boolean } = {},
): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const pid = launcherPid(dir);
  if (pid !== undefined) {
    process.kill(pid, "SIGTERM");
    const started = Date.now();
    while (alive(pid) && Date.now() - started < timeoutMs) await sleep(100);
    if (alive(pid)) process.kill(pid, "SIGKILL");
    while (alive(pid)) await sleep(50);
  }
  // the controller manager dies with its parent; wait until nothing listens any more
  for (const port of clusterPorts(dir)) {
    const started = Date.now();
    while ((await portOpen(port)) && Date.now() - started < 10_000) await sleep(100);
  }
  if (options.removeData && existsSync(dir)) rmSync(dir, { recursive: true, force: true });
  else if (options.holdPorts) await holdPorts(dir);
}

/**
 * A cluster given by KLB_TEST_CONTROL_KUBECONFIG / KLB_TEST_APP_KUBECONFIG: an existing cluster
 * the tests use instead of starting one. It has no local state folder.
 */
export function externalCluster(name: SharedClusterName): Cluster | undefined {
  const kubeconfigPath = process.env[`KLB_TEST_${name.toUpperCase()}_KUBECONFIG`];
  if (kubeconfigPath === undefined || kubeconfigPath === "") return undefined;
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  const server = kc.getCurrentCluster()?.server;
  if (server === undefined) throw new Error(`${kubeconfigPath}: no current cluster`);
  return { name, dir: "", kubeconfigPath, server, etcd: "" };
}
