// `make dev-crossplane` / `make dev-crossplane-down`: the real Crossplane core on the dev control
// cluster, out of cluster, with our package installed the way users install it and served the way
// its runtime would serve it, until stopped. State, pid files and logs in .dev/crossplane/.
//
// Everything listens on loopback only. Crossplane's core binds its metrics and health ports on every
// interface, so it runs alone in a network namespace of its own (netns-relay.ts): the control API
// server, the registry and the functions of this machine's loopback reach it through Unix sockets,
// on the same port numbers, so .dev/control.kubeconfig works in there unchanged.
//
// Processes (each detached in a process group of its own, its pid in .dev/crossplane/pids/):
//   registry  crane registry serve: the OCI registry the packages are pushed to and pulled from
//   relay     the host's side of the sockets
//   core      unshare --net: the namespace's side of the sockets, and `crossplane core start`
//   function-klutch-bind, function-sample-credentials: the External package runtime's servers
//   sync      `klutch-bind sync`, as the runtime config runs it beside the function, with its web page
import { spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { join, relative } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { KubeConfig, KubernetesObjectApi, PatchStrategy } from "@kubernetes/client-node";
import { parseAllDocuments } from "yaml";
import { KubeClient, type KubeObject } from "../../src/kube/client.ts";
import { conditionOf } from "../../src/kube/conditions.ts";
import {
  activeRevision,
  coreStartCommand,
  crossplaneNamespace,
  functions,
  initCrossplaneCore,
  pushPackage,
  registryArgs,
  runtimeCertificates,
  setRuntimeStatus,
  xpkgInstall,
} from "./crossplane-core.ts";
import { eventually } from "./eventually.ts";
import { freePort, waitForPort } from "./net.ts";
import { getPublished, hostPortSocket, inOwnNetns, outsideRelay } from "./netns-relay.ts";
import { crossplaneUnavailable, devDir, devKubeconfig, repoRoot, tool } from "./tools.ts";

export const stateDir = join(devDir, "crossplane");
const pidDir = join(stateDir, "pids");
const sockDir = join(stateDir, "sock");
const statusFile = join(stateDir, "status.json");
const manager = "klutch-bind-dev";
const say = (line: string) => console.log(`[dev-crossplane] ${line}`);
const shown = (path: string) => (path.startsWith(repoRoot) ? relative(repoRoot, path) : path);

/** Where everything listens and logs, written once up. */
export type DevCrossplane = {
  control: string;
  apiPort: number;
  registry: string;
  corePid: number;
  healthPort: number;
  functions: Record<string, { endpoint: string; image: string; log: string }>;
  sync: { health: string; web: string; log: string };
  logs: Record<string, string>;
};

type PidRecord = { pid: number; start: string };

/** The start time of a process (field 22 of /proc/PID/stat), so a reused pid is not taken for ours. */
function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // a zombie has ended: only its parent's wait is missing
    return fields[0] === "Z" ? undefined : fields[19];
  } catch {
    return undefined;
  }
}

function recorded(name: string): PidRecord | undefined {
  try {
    return JSON.parse(readFileSync(join(pidDir, `${name}.pid`), "utf8")) as PidRecord;
  } catch {
    return undefined;
  }
}

function ours(record: PidRecord | undefined): record is PidRecord {
  return record !== undefined && startTime(record.pid) === record.start;
}

/** Starts a long-lived process, detached in a process group of its own, and records its pid. */
function daemon(name: string, command: string, args: string[], env: Record<string, string>, log: string): number {
  const out = openSync(log, "a");
  const child = spawn(command, args, {
    cwd: repoRoot,
    detached: true,
    env: { ...process.env, ...env },
    stdio: ["ignore", out, out],
  });
  closeSync(out);
  child.unref();
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${name}: ${command} did not start`);
  writeFileSync(join(pidDir, `${name}.pid`), JSON.stringify({ pid, start: startTime(pid) ?? "" }));
  return pid;
}

function logTail(log: string): string {
  try {
    return readFileSync(log, "utf8").trimEnd().split("\n").slice(-20).join("\n");
  } catch {
    return "(no log)";
  }
}

/** Waits for a recorded process to be ready, failing at once (with its log) if it exits. */
async function ready(name: string, log: string, check: () => Promise<unknown>, timeoutMs: number): Promise<void> {
  await eventually(
    name,
    async () => {
      if (!ours(recorded(name))) throw new Error(`exited; last lines of ${shown(log)}:\n${logTail(log)}`);
      await check();
    },
    timeoutMs,
  ).catch((err: Error) => {
    throw new Error(`${err.message.replace(/^[^:]*: not true/, `${name} not ready`)}`);
  });
}

function httpOk(address: string, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(`http://${address}${path}`, { timeout: 3000 }, (res) => {
      res.resume();
      if (res.statusCode === 200) resolve();
      else reject(new Error(`${path}: ${res.statusCode}`));
    });
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.end();
  });
}

function controlClient(): KubeClient {
  return KubeClient.fromKubeconfigText(readFileSync(devKubeconfig("control"), "utf8"));
}

function apiPortOf(kubeconfigPath: string): number {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  const server = kc.getCurrentCluster()?.server;
  const port = server === undefined ? Number.NaN : Number(new URL(server).port);
  if (!(port > 0)) throw new Error(`${kubeconfigPath}: no https://127.0.0.1:PORT server`);
  return port;
}

/** Applies the YAML files' objects (server-side, any kind), as `kubectl apply --server-side` would. */
async function applyFiles(files: string[], keep: (o: KubeObject) => boolean = () => true): Promise<string[]> {
  const kc = new KubeConfig();
  kc.loadFromFile(devKubeconfig("control"));
  const api = KubernetesObjectApi.makeApiClient(kc);
  const applied: string[] = [];
  for (const file of files) {
    const objects = parseAllDocuments(readFileSync(join(repoRoot, file), "utf8"))
      .map((d) => d.toJS() as KubeObject | null)
      .filter((o): o is KubeObject => o !== null && keep(o));
    for (const obj of objects) {
      await api.patch(obj as never, undefined, undefined, manager, true, PatchStrategy.ServerSideApply);
      applied.push(`${obj.kind} ${obj.metadata.namespace ? `${obj.metadata.namespace}/` : ""}${obj.metadata.name}`);
    }
  }
  return applied;
}

/** A kubeconfig for a service account of crossplane-system, with a token from TokenRequest. */
async function accountKubeconfig(client: KubeClient, account: string, file: string): Promise<void> {
  const minted = await client.request<{ status: { token: string } }>(
    "POST",
    `/api/v1/namespaces/${crossplaneNamespace}/serviceaccounts/${account}/token`,
    {
      body: {
        apiVersion: "authentication.k8s.io/v1",
        kind: "TokenRequest",
        spec: { expirationSeconds: 30 * 24 * 3600 },
      },
    },
  );
  const admin = new KubeConfig();
  admin.loadFromFile(devKubeconfig("control"));
  const cluster = admin.getCurrentCluster();
  if (cluster === null) throw new Error("control kubeconfig has no cluster");
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [cluster],
    users: [{ name: account, token: minted.status.token }],
    contexts: [{ name: account, cluster: cluster.name, user: account }],
    currentContext: account,
  });
  writeFileSync(file, kc.exportConfig(), { mode: 0o600 });
}

/** The functions installed, with what serves them (the External runtime's part). */
const packages = [
  {
    name: "function-klutch-bind",
    root: "package",
    serve: (address: string, certs: string) => ({
      command: process.execPath,
      args: [join(repoRoot, "dist/cli/main.js"), "function", "--address", address, "--tls-certs-dir", certs],
    }),
  },
  {
    name: "function-sample-credentials",
    root: "test/crossplane/sample-function/package",
    serve: (address: string, certs: string) => ({
      command: tool("sample-function"),
      args: ["--address", address, "--tls-certs-dir", certs],
    }),
  },
];

/** The status when everything recorded runs and Crossplane calls both functions healthy, else why not. */
async function running(): Promise<{ status?: DevCrossplane; why: string }> {
  if (!existsSync(statusFile)) return { why: "not started" };
  const status = JSON.parse(readFileSync(statusFile, "utf8")) as DevCrossplane;
  const names = ["registry", "relay", "core", ...packages.map((p) => p.name), "sync"];
  const gone = names.filter((n) => !ours(recorded(n)));
  if (gone.length > 0) return { why: `not running: ${gone.join(", ")}` };
  if (!existsSync(devKubeconfig("control")) || apiPortOf(devKubeconfig("control")) !== status.apiPort) {
    return { why: "the control cluster changed since it started" };
  }
  if ((await getPublished(sockDir, status.healthPort, "/readyz")) !== 200) return { why: "core not ready" };
  const client = controlClient();
  try {
    for (const { name } of packages) {
      const fn = await client.get(functions, name);
      if (conditionOf(fn, "Healthy")?.status !== "True") return { why: `Function ${name} not healthy` };
    }
  } catch (err) {
    return { why: `control cluster: ${(err as Error).message}` };
  } finally {
    client.close();
  }
  return { status, why: "" };
}

function printStatus(status: DevCrossplane): void {
  const rows: Array<[string, string, string]> = [
    ["crossplane core", `pid ${status.corePid}, network namespace of its own`, status.logs.core ?? ""],
    ["registry", status.registry, status.logs.registry ?? ""],
    ...Object.entries(status.functions).map(
      ([name, f]) => [name, `${f.endpoint} (mTLS, Crossplane's CA)`, f.log] as [string, string, string],
    ),
    ["sync", `health ${status.sync.health}, web page ${status.sync.web}`, status.sync.log],
    ["relay", `control API :${status.apiPort}, registry, functions`, status.logs.relay ?? ""],
  ];
  const width = Math.max(...rows.map(([name]) => name.length));
  const where = Math.max(...rows.map(([, w]) => w.length));
  for (const [name, at, log] of rows) say(`  ${name.padEnd(width)}  ${at.padEnd(where)}  log ${shown(log)}`);
}

async function up(): Promise<void> {
  const started = Date.now();
  const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;
  const step = (line: string) => say(`${elapsed().padStart(6)}  ${line}`);
  const kubeconfig = devKubeconfig("control");
  if (!existsSync(kubeconfig)) throw new Error(`${shown(kubeconfig)} is missing: run make dev-clusters first`);
  const noCli = crossplaneUnavailable();
  if (noCli !== undefined) throw new Error(`${noCli}: the real Crossplane core cannot run here`);
  const current = await running();
  if (current.status !== undefined) {
    say("already up:");
    printStatus(current.status);
    return;
  }
  if (existsSync(stateDir)) {
    say(`restarting (${current.why})`);
    await down({ quiet: true });
  }
  mkdirSync(pidDir, { recursive: true });
  mkdirSync(sockDir, { recursive: true });
  const log = (name: string) => join(stateDir, `${name}.log`);
  const client = controlClient();
  try {
    const apiPort = apiPortOf(kubeconfig);
    const certs = await initCrossplaneCore(client, kubeconfig, stateDir);
    step("crossplane core init: Crossplane's CRDs, its CA and client certificate on the control cluster");

    const registryPort = await freePort();
    daemon("registry", tool("crane"), registryArgs(registryPort), {}, log("registry"));
    await ready("registry", log("registry"), () => waitForPort(registryPort, "registry", 1000), 30_000);
    const registry = `127.0.0.1:${registryPort}`;
    step(`registry: crane registry serve on ${registry}`);

    const fnPorts = await Promise.all(packages.map(() => freePort()));
    const relayed = [apiPort, registryPort, ...fnPorts];
    const relay = outsideRelay(sockDir, relayed);
    daemon("relay", relay.command, relay.args, {}, log("relay"));
    await ready(
      "relay",
      log("relay"),
      async () => {
        for (const port of relayed) if (!existsSync(hostPortSocket(sockDir, port))) throw new Error("no socket yet");
      },
      10_000,
    );
    const healthPort = await freePort();
    const core = coreStartCommand(kubeconfig, stateDir, certs, {
      enableOperations: true,
      pollInterval: "10s",
      metricsPort: await freePort(),
      healthPort,
    });
    const corePidFile = join(pidDir, "crossplane-core.pid");
    const jail = inOwnNetns(sockDir, relayed, [healthPort], corePidFile, [core.command, ...core.args]);
    daemon("core", jail.command, jail.args, core.env, log("core"));
    await ready(
      "core",
      log("core"),
      async () => {
        if ((await getPublished(sockDir, healthPort, "/readyz")) !== 200) throw new Error("readyz not 200 yet");
      },
      120_000,
    );
    const corePid = Number(readFileSync(corePidFile, "utf8"));
    step(
      `crossplane core start (PACKAGE_RUNTIME=External, --enable-operations), pid ${corePid}, in a network namespace of its own`,
    );

    const platform = await applyFiles(
      [
        "deploy/control-plane/apiserviceexporttemplate-crd.yaml",
        "deploy/control-plane/appclusterbinding-crd.yaml",
        "deploy/control-plane/klutch-appclusterbinding-crd.yaml",
        "deploy/control-plane/serviceexport-xrd.yaml",
        "deploy/control-plane/serviceexport-composition.yaml",
        "deploy/control-plane/sync-rbac.yaml",
        "deploy/control-plane/web-rbac.yaml",
      ],
      // the web page's in-cluster kubeconfig and token Secret are for a pod; here it gets a file
      (o) => o.kind !== "ConfigMap" && o.kind !== "Secret",
    );
    step(`deploy/control-plane/: ${platform.length} objects (CRDs, the ServiceExport XRD and Composition, RBAC)`);

    const installed: DevCrossplane["functions"] = {};
    for (const [i, pkg] of packages.entries()) {
      const port = fnPorts[i] ?? 0;
      const image = await pushPackage(stateDir, `${registry}/klutch-bind`, pkg.name, join(repoRoot, pkg.root));
      step(`crossplane xpkg build --package-root=${pkg.root}; crossplane xpkg push ${image}`);
      await client.delete(functions, pkg.name).catch(() => undefined);
      await eventually(`leftover Function ${pkg.name} gone`, async () => {
        if ((await client.get(functions, pkg.name)) !== undefined) throw new Error("still there");
      });
      await xpkgInstall(kubeconfig, image, pkg.name);
      const revision = await activeRevision(client, pkg.name, 60_000);
      step(`crossplane xpkg install function ${image} ${pkg.name}: revision ${revision}`);
      const { certs: serverCerts, tlsSecret } = await runtimeCertificates(client, stateDir, pkg.name);
      const address = `127.0.0.1:${port}`;
      const serve = pkg.serve(address, serverCerts);
      daemon(pkg.name, serve.command, serve.args, {}, log(pkg.name));
      await ready(pkg.name, log(pkg.name), () => waitForPort(port, pkg.name, 1000), 30_000);
      await setRuntimeStatus(client, pkg.name, revision, port, tlsSecret);
      installed[pkg.name] = { endpoint: address, image, log: log(pkg.name) };
      step(`${pkg.name} serves ${address} with a certificate from crossplane-root-ca; Function Healthy`);
    }

    const syncKubeconfig = join(stateDir, "sync.kubeconfig");
    const webKubeconfig = join(stateDir, "web.kubeconfig");
    await accountKubeconfig(client, "klutch-bind-sync", syncKubeconfig);
    await accountKubeconfig(client, "klutch-bind-web", webKubeconfig);
    const health = `127.0.0.1:${await freePort()}`;
    const web = process.env.DEMO_WEB_ADDRESS ?? "127.0.0.1:8090";
    daemon(
      "sync",
      process.execPath,
      [
        join(repoRoot, "dist/cli/main.js"),
        "sync",
        // the dev clusters' API servers listen on 127.0.0.1
        "--allow-loopback-app-servers",
        "--kubeconfig",
        syncKubeconfig,
        "--namespace",
        crossplaneNamespace,
        "--status-interval",
        "5",
        "--metrics-address",
        `127.0.0.1:${await freePort()}`,
        "--health-address",
        health,
        "--web-address",
        web,
        "--web-kubeconfig",
        webKubeconfig,
      ],
      { POD_NAMESPACE: crossplaneNamespace },
      log("sync"),
    );
    await ready("sync", log("sync"), () => httpOk(health, "/readyz"), 60_000);
    step(
      `klutch-bind sync as service account ${crossplaneNamespace}/klutch-bind-sync, auto-export on, web page ${web}`,
    );

    const status: DevCrossplane = {
      control: kubeconfig,
      apiPort,
      registry,
      corePid,
      healthPort,
      functions: installed,
      sync: { health, web: `http://${web}`, log: log("sync") },
      logs: { core: log("core"), registry: log("registry"), relay: log("relay") },
    };
    writeFileSync(statusFile, JSON.stringify(status, null, 2));
    say(`up in ${elapsed()}:`);
    printStatus(status);
    say("stop it all with: make dev-crossplane-down");
  } finally {
    client.close();
  }
}

async function stopGroup(name: string): Promise<boolean> {
  const record = recorded(name);
  if (!ours(record)) return false;
  const signal = (s: NodeJS.Signals) => {
    try {
      process.kill(-record.pid, s);
    } catch {
      // the group is gone
    }
  };
  signal("SIGTERM");
  const started = Date.now();
  while (ours(record) && Date.now() - started < 15_000) await sleep(100);
  if (ours(record)) signal("SIGKILL");
  while (ours(record) && Date.now() - started < 20_000) await sleep(50);
  return true;
}

/** Deletes the Functions it installed while the core still runs (their revisions have finalizers). */
async function uninstall(): Promise<void> {
  if (!existsSync(devKubeconfig("control"))) return;
  const client = controlClient();
  try {
    for (const { name } of packages) await client.delete(functions, name).catch(() => undefined);
    await eventually(
      "Functions deleted",
      async () => {
        for (const { name } of packages) if (await client.get(functions, name)) throw new Error(`${name} still there`);
      },
      30_000,
    );
  } catch {
    // the control cluster is gone or slow: what is left there goes with it (make dev-clusters-down)
  } finally {
    client.close();
  }
}

export async function down(options: { quiet?: boolean } = {}): Promise<void> {
  const tell = options.quiet ? () => undefined : say;
  if (!existsSync(stateDir)) {
    tell("not running");
    return;
  }
  if (ours(recorded("core"))) await uninstall();
  const stopped: string[] = [];
  for (const name of ["sync", ...packages.map((p) => p.name).reverse(), "core", "relay", "registry"]) {
    if (await stopGroup(name)) stopped.push(name);
  }
  // anything else recorded (a name of an older version of this program)
  if (existsSync(pidDir)) {
    for (const file of readdirSync(pidDir).filter((f) => f.endsWith(".pid"))) {
      const name = file.slice(0, -".pid".length);
      if (name !== "crossplane-core" && (await stopGroup(name))) stopped.push(name);
    }
  }
  // the core is in the group of the unshare that started it; should it have left that group, it goes here
  const corePidFile = join(pidDir, "crossplane-core.pid");
  const corePid = existsSync(corePidFile) ? Number(readFileSync(corePidFile, "utf8")) : 0;
  try {
    if (corePid > 0 && readFileSync(`/proc/${corePid}/cmdline`, "utf8").includes("crossplane-core")) {
      process.kill(corePid, "SIGKILL");
    }
  } catch {
    // gone
  }
  rmSync(stateDir, { recursive: true, force: true });
  if (stopped.length > 0 || !options.quiet) {
    say(
      `stopped ${stopped.length > 0 ? stopped.join(", ") : "nothing (none was running)"}; removed ${shown(stateDir)}`,
    );
  }
}

async function main(verb: string | undefined): Promise<void> {
  if (verb === "up") await up();
  else if (verb === "down") await down();
  else if (verb === "status") {
    const { status, why } = await running();
    if (status) printStatus(status);
    else say(why);
    process.exitCode = status ? 0 : 1;
  } else {
    console.error("usage: node test/support/dev-crossplane.ts up | down | status");
    process.exitCode = 2;
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [verb] = process.argv.slice(2);
  await main(verb).catch((err: unknown) => {
    console.error(`[dev-crossplane] ${err instanceof Error ? err.message : String(err)}`);
    if (verb === "up") {
      console.error("[dev-crossplane] what started is left running for a look; make dev-crossplane-down stops it");
    }
    process.exitCode = 1;
  });
}
