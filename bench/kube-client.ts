// Why the Kubernetes client is hand-written (issue 25 point 5): our KubeClient (src/kube) against
// @kubernetes/client-node and undici with HTTP/2 on, all talking to the same private API server.
// Measures TLS connections for 200 concurrent GETs (a TCP relay counts sockets), client CPU per
// GET, resident memory an import costs, a quiet list-and-watch's requests, and what a watch
// answered with 500 makes each client do. Prints a markdown table and writes
// bench/results/tmp/kube-client.json.
//
//   node bench/kube-client.ts [--watch-seconds 120] [--gets 500] [--failing-seconds 10]
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { CoreV1Api, KubeConfig, makeInformer } from "@kubernetes/client-node";
import { Agent, request } from "undici";
import { KubeClient, type ResourceRef } from "../src/kube/client.ts";
import { Informer } from "../src/kube/informer.ts";
import { startCluster, stopCluster } from "../test/support/cluster.ts";

const { values } = parseArgs({
  options: {
    "watch-seconds": { type: "string", default: "120" },
    "failing-seconds": { type: "string", default: "10" },
    gets: { type: "string", default: "500" },
    concurrent: { type: "string", default: "200" },
  },
});
const whole = (name: keyof typeof values) => {
  const v = Number(values[name]);
  if (!Number.isInteger(v) || v <= 0) throw new Error(`--${name} must be a positive whole number, got ${values[name]}`);
  return v;
};
const watchSeconds = whole("watch-seconds");
const failingSeconds = whole("failing-seconds");
const gets = whole("gets");
const concurrent = whole("concurrent");
const repo = join(import.meta.dirname, "..");
/** the built client when there is one (make build): importing the .ts source adds Node's type stripper */
const ourModule = existsSync(join(repo, "dist/kube/client.js"))
  ? join(repo, "dist/kube/client.js")
  : join(repo, "src/kube/client.ts");
const say = (text: string) => console.error(`[bench] ${text}`);

type ClientName = "KubeClient (ours)" | "@kubernetes/client-node" | "undici (allowH2)";
/** one client under test: a GET of the default namespace, made against a kubeconfig */
type Getter = { get(): Promise<void>; close(): Promise<void> };

type Row = {
  client: ClientName;
  tlsConnections: number;
  concurrentGetMs: number;
  cpuMsPerGet: number;
  importRssMiB: number;
  watch: WatchFigures | undefined;
  failingWatch: FailingFigures | undefined;
};
type WatchFigures = { requests: number; lists: number; watches: number; asksBookmarks: boolean };
type FailingFigures = { requests: number; lists: number; watches: number; verdict: string };

const namespaces: ResourceRef = { group: "", version: "v1", resource: "namespaces", namespaced: false };
const configmaps: ResourceRef = { group: "", version: "v1", resource: "configmaps", namespaced: true };

/** a TCP relay in front of the API server: counts the connections (TLS handshakes) clients open */
async function relay(target: URL): Promise<{ url: URL; count(): number; reset(): void; close(): void }> {
  let opened = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((inbound) => {
    opened++;
    const outbound = net.connect(Number(target.port), target.hostname);
    sockets.add(inbound).add(outbound);
    inbound.pipe(outbound).pipe(inbound);
    const end = () => {
      inbound.destroy();
      outbound.destroy();
      sockets.delete(inbound);
      sockets.delete(outbound);
    };
    inbound.on("error", end).on("close", end);
    outbound.on("error", end).on("close", end);
  });
  await new Promise<void>((resolve) => server.listen(0, target.hostname, resolve));
  const address = server.address() as net.AddressInfo;
  const url = new URL(target);
  url.port = String(address.port);
  return {
    url,
    count: () => opened,
    reset: () => {
      opened = 0;
    },
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

/**
 * A plain-HTTP recorder on loopback that forwards to the API server with the admin's credentials:
 * every request a client makes is seen with its query. failWatches answers each watch with 500.
 */
async function recorder(target: URL, tlsOptions: https.RequestOptions) {
  const seen: URL[] = [];
  let failWatches = false;
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://recorder");
    seen.push(url);
    if (failWatches && url.searchParams.get("watch") === "true") {
      res.writeHead(500, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          kind: "Status",
          apiVersion: "v1",
          status: "Failure",
          message: "bench: watch refused",
          code: 500,
        }),
      );
      return;
    }
    const headers = { ...req.headers };
    delete headers.authorization;
    delete headers.host;
    const upstream = https.request(
      {
        ...tlsOptions,
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: { ...headers, ...(tlsOptions.headers as Record<string, string> | undefined) },
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on("error", () => res.destroy());
    res.on("close", () => upstream.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    setFailWatches: (on: boolean) => {
      failWatches = on;
    },
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

function withServer(kubeconfig: string, server: string, insecure = false): string {
  const kc = new KubeConfig();
  kc.loadFromString(kubeconfig);
  const clusters = kc
    .getClusters()
    .map((c) =>
      insecure
        ? { name: c.name, server, skipTLSVerify: true }
        : { ...c, server, skipTLSVerify: c.skipTLSVerify ?? false },
    );
  const users = insecure ? kc.getUsers().map((u) => ({ name: u.name, token: "bench" })) : kc.getUsers();
  const out = new KubeConfig();
  out.loadFromOptions({
    clusters,
    users,
    contexts: kc.getContexts(),
    currentContext: kc.getCurrentContext(),
  });
  return out.exportConfig();
}

async function tlsOptionsOf(kubeconfig: string): Promise<https.RequestOptions> {
  const kc = new KubeConfig();
  kc.loadFromString(kubeconfig);
  const options: https.RequestOptions = {};
  await kc.applyToHTTPSOptions(options);
  return options;
}

function ours(kubeconfig: string): Getter {
  const client = KubeClient.fromKubeconfigText(kubeconfig);
  return {
    get: async () => {
      if ((await client.get(namespaces, "default")) === undefined) throw new Error("KubeClient: no namespace default");
    },
    close: async () => client.close(),
  };
}

function clientNode(kubeconfig: string): Getter {
  const kc = new KubeConfig();
  kc.loadFromString(kubeconfig);
  const api = kc.makeApiClient(CoreV1Api);
  return {
    get: async () => {
      const ns = await api.readNamespace({ name: "default" });
      if (ns.metadata?.name !== "default") throw new Error("client-node: no namespace default");
    },
    close: async () => {},
  };
}

async function undiciH2(kubeconfig: string): Promise<Getter> {
  const options = await tlsOptionsOf(kubeconfig);
  const kc = new KubeConfig();
  kc.loadFromString(kubeconfig);
  const server = kc.getCurrentCluster()?.server;
  if (server === undefined) throw new Error("undici: the kubeconfig has no current cluster");
  const agent = new Agent({
    allowH2: true,
    connect: { ca: options.ca, cert: options.cert, key: options.key, rejectUnauthorized: true },
  });
  const headers = { accept: "application/json", ...(options.headers as Record<string, string> | undefined) };
  return {
    get: async () => {
      const res = await request(`${server}/api/v1/namespaces/default`, { dispatcher: agent, headers });
      const body = (await res.body.json()) as { metadata?: { name?: string } };
      if (res.statusCode !== 200 || body.metadata?.name !== "default") {
        throw new Error(`undici: GET answered ${res.statusCode}`);
      }
    },
    close: () => agent.close(),
  };
}

/** RSS a fresh process grows by when it imports only this module (mean of 3 children) */
function importRss(specifier: string): number {
  const script = `const before = process.memoryUsage().rss; await import(${JSON.stringify(specifier)});
globalThis.gc?.(); await new Promise((r) => setTimeout(r, 50));
console.log(process.memoryUsage().rss - before);`;
  const deltas: number[] = [];
  for (let i = 0; i < 3; i++) {
    const child = spawnSync(process.execPath, ["--expose-gc", "--input-type=module", "-e", script], {
      cwd: repo,
      encoding: "utf8",
    });
    if (child.status !== 0) throw new Error(`importing ${specifier} failed: ${child.stderr}`);
    deltas.push(Number(child.stdout.trim()));
  }
  return deltas.reduce((a, b) => a + b, 0) / deltas.length / 1024 / 1024;
}

async function cpuPerGet(getter: Getter): Promise<number> {
  for (let i = 0; i < 50; i++) await getter.get();
  const before = process.cpuUsage();
  for (let i = 0; i < gets; i++) await getter.get();
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1000 / gets;
}

function tally(
  seen: URL[],
  from: number,
): { requests: number; lists: number; watches: number; asksBookmarks: boolean } {
  const mine = seen.slice(from);
  const watches = mine.filter((u) => u.searchParams.get("watch") === "true");
  return {
    requests: mine.length,
    lists: mine.length - watches.length,
    watches: watches.length,
    asksBookmarks: watches.some((u) => u.searchParams.get("allowWatchBookmarks") === "true"),
  };
}

/** a list-and-watch of config maps in a quiet namespace, by each client's own informer */
async function informerRun(
  client: "ours" | "client-node",
  kubeconfig: string,
  namespace: string,
  seconds: number,
): Promise<void> {
  if (client === "ours") {
    const kube = KubeClient.fromKubeconfigText(kubeconfig);
    const informer = new Informer(kube, configmaps, { namespace, onError: () => {} });
    informer.start();
    await sleep(seconds * 1000);
    await informer.stop();
    kube.close();
    return;
  }
  const kc = new KubeConfig();
  kc.loadFromString(kubeconfig);
  const api = kc.makeApiClient(CoreV1Api);
  const informer = makeInformer(kc, `/api/v1/namespaces/${namespace}/configmaps`, () =>
    api.listNamespacedConfigMap({ namespace }),
  );
  informer.on("error", () => {});
  await informer.start();
  await sleep(seconds * 1000);
  await informer.stop();
}

const stateDir = mkdtempSync(join(tmpdir(), "klb-kube-client-"));
say(`starting a private cluster in ${stateDir}`);
const cluster = await startCluster("kube-client-bench", stateDir, { progress: (line) => say(line) });
const rows: Row[] = [];
try {
  const adminKubeconfig = readFileSync(cluster.kubeconfigPath, "utf8");
  const server = new URL(cluster.server);
  const counter = await relay(server);
  const relayed = withServer(adminKubeconfig, counter.url.origin);
  const direct = adminKubeconfig;
  const tlsOptions = await tlsOptionsOf(adminKubeconfig);
  const record = await recorder(server, tlsOptions);
  const recorded = withServer(adminKubeconfig, record.url, true);
  const quietNs = `kube-client-bench-${Math.random().toString(36).slice(2, 8)}`;
  const admin = KubeClient.fromKubeconfigText(adminKubeconfig);
  await admin.create(namespaces, { apiVersion: "v1", kind: "Namespace", metadata: { name: quietNs } });
  admin.close();

  const makers: { name: ClientName; make(kubeconfig: string): Getter | Promise<Getter>; module: string }[] = [
    { name: "KubeClient (ours)", make: ours, module: pathToFileURL(ourModule).href },
    { name: "@kubernetes/client-node", make: clientNode, module: "@kubernetes/client-node" },
    { name: "undici (allowH2)", make: undiciH2, module: "undici" },
  ];
  for (const maker of makers) {
    say(`${maker.name}: ${concurrent} concurrent GETs through the counting relay`);
    counter.reset();
    const burst = await maker.make(relayed);
    const started = performance.now();
    await Promise.all(Array.from({ length: concurrent }, () => burst.get()));
    const concurrentGetMs = performance.now() - started;
    const tlsConnections = counter.count();
    await burst.close();

    say(`${maker.name}: CPU over ${gets} sequential GETs`);
    const sequential = await maker.make(direct);
    const cpuMsPerGet = await cpuPerGet(sequential);
    await sequential.close();

    say(`${maker.name}: memory an import costs`);
    const importRssMiB = importRss(maker.module);

    let watch: WatchFigures | undefined;
    let failingWatch: FailingFigures | undefined;
    const informerClient =
      maker.name === "KubeClient (ours)"
        ? "ours"
        : maker.name === "@kubernetes/client-node"
          ? "client-node"
          : undefined;
    if (informerClient !== undefined) {
      say(`${maker.name}: a quiet list-and-watch for ${watchSeconds} s`);
      const from = record.seen.length;
      await informerRun(informerClient, recorded, quietNs, watchSeconds);
      watch = tally(record.seen, from);

      say(`${maker.name}: a watch answered with 500 for ${failingSeconds} s`);
      record.setFailWatches(true);
      const failFrom = record.seen.length;
      await informerRun(informerClient, recorded, quietNs, failingSeconds);
      record.setFailWatches(false);
      const failed = tally(record.seen, failFrom);
      const verdict =
        failed.watches <= 1
          ? "gives up after the first 500"
          : failed.requests > failingSeconds * 20
            ? "spins (no backoff)"
            : "retries with backoff (relists)";
      failingWatch = { requests: failed.requests, lists: failed.lists, watches: failed.watches, verdict };
    }
    rows.push({ client: maker.name, tlsConnections, concurrentGetMs, cpuMsPerGet, importRssMiB, watch, failingWatch });
  }
  counter.close();
  record.close();
} finally {
  say("stopping the private cluster");
  await stopCluster(stateDir, { removeData: true });
}

const fixed = (v: number, digits: number) => v.toFixed(digits);
const table = [
  `| client | TLS connections, ${concurrent} concurrent GETs | their wall time | client CPU per GET | RSS an import costs | quiet list-and-watch, ${watchSeconds} s: requests (lists + watches), bookmarks asked | watch answered 500, ${failingSeconds} s: requests (lists + watches) |`,
  "|---|---|---|---|---|---|---|",
  ...rows.map(
    (r) =>
      `| ${[
        r.client,
        String(r.tlsConnections),
        `${fixed(r.concurrentGetMs, 0)} ms`,
        `${fixed(r.cpuMsPerGet, 3)} ms`,
        `${fixed(r.importRssMiB, 1)} MiB`,
        r.watch === undefined
          ? "n/a (no informer or watch helper)"
          : `${r.watch.requests} (${r.watch.lists} + ${r.watch.watches}), ${r.watch.asksBookmarks ? "yes" : "no"}`,
        r.failingWatch === undefined
          ? "n/a"
          : `${r.failingWatch.requests} (${r.failingWatch.lists} + ${r.failingWatch.watches}): ${r.failingWatch.verdict}`,
      ].join(" | ")} |`,
  ),
].join("\n");
console.log(table);
const outDir = join(repo, "bench/results/tmp");
mkdirSync(outDir, { recursive: true });
writeFileSync(
  join(outDir, "kube-client.json"),
  `${JSON.stringify({ date: new Date().toISOString(), watchSeconds, failingSeconds, gets, concurrent, rows }, null, 2)}\n`,
);
say(`wrote ${join(outDir, "kube-client.json")}`);
