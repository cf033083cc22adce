// App clusters that are broken or hostile, for the sync's safety tests: an auth proxy in front of
// a real API server that can start answering with a sign-in page, and servers that answer
// everything wrongly (huge, endless, HTML, wrong kinds, garbage, hanging, resetting).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import * as https from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";
import type { Cluster } from "./cluster.ts";

/** A kubeconfig for a plain-HTTP server on loopback: what a binding's Secret would hold. */
export function loopbackKubeconfig(port: number, token = "not-checked"): string {
  return `apiVersion: v1
kind: Config
clusters:
- name: app
  cluster: {server: "http://127.0.0.1:${port}", insecure-skip-tls-verify: true}
users:
- name: app
  user: {token: ${token}}
contexts:
- name: app
  context: {cluster: app, user: app}
current-context: app
`;
}

type Listening = { server: Server; sockets: Set<Socket>; port: number };

async function listenLoopback(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<Listening> {
  const server = createServer(handler);
  const sockets = new Set<Socket>();
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, sockets, port: (server.address() as AddressInfo).port };
}

async function close(listening: Listening): Promise<void> {
  for (const socket of listening.sockets) socket.destroy();
  await new Promise((resolve) => listening.server.close(resolve));
}

export type AuthProxy = {
  port: number;
  kubeconfig: string;
  /**
   * "pass": forward everything; "signin": lists get a 200 sign-in page, watches are cut;
   * "mutate": answers the mutate hook selects are changed by it (others pass, GETs of one object
   * among them, so a deletion can still be proven)
   */
  mode: "pass" | "signin" | "mutate";
  /** switches the mode and cuts every open connection (watches among them) */
  setMode: (mode: "pass" | "signin" | "mutate") => void;
  /** in mode "mutate": which requests to change (by URL), and how to change an answer's body */
  mutate?: {
    when: (url: URL) => boolean;
    change: (body: Buffer, watch: boolean) => { body: Buffer; contentType: string };
    /** how long a watch's first events are gathered before its changed answer is sent (default 500), or per URL */
    watchWaitMs?: number | ((url: URL) => number);
  };
  /** answers changed so far */
  mutated: number;
  /** requests answered with the sign-in page or cut so far */
  refused: number;
  /** when set and it returns a promise for a request, the request is forwarded once that settles */
  hold?: (url: URL, method: string) => Promise<void> | undefined;
  /** every request but GET that reached the proxy, in order, with Date.now() */
  writes: Array<{ method: string; path: string; at: number }>;
  stop: () => Promise<void>;
};

/** A proxy in front of a real API server, with that cluster's credentials. */
export async function startAuthProxy(cluster: Cluster): Promise<AuthProxy> {
  const kc = new KubeConfig();
  kc.loadFromFile(cluster.kubeconfigPath);
  const tls: https.RequestOptions = { headers: {} };
  await kc.applyToHTTPSOptions(tls);
  const upstream = new URL(kc.getCurrentCluster()?.server ?? "");
  const agent = new https.Agent({ keepAlive: true, ca: tls.ca, cert: tls.cert, key: tls.key });
  const proxy: AuthProxy = {
    port: 0,
    kubeconfig: "",
    mode: "pass",
    setMode: (mode) => {
      proxy.mode = mode;
      for (const socket of listening.sockets) socket.destroy();
    },
    refused: 0,
    mutated: 0,
    writes: [],
    stop: async () => {
      await close(listening);
      agent.destroy();
    },
  };
  const listening = await listenLoopback(async (req, res) => {
    if (req.method !== "GET") proxy.writes.push({ method: req.method ?? "", path: req.url ?? "", at: Date.now() });
    const held = proxy.hold?.(new URL(req.url ?? "/", "http://proxy"), req.method ?? "");
    if (held !== undefined) await held;
    if (proxy.mode === "signin") {
      proxy.refused++;
      if ((req.url ?? "").includes("watch=true")) {
        req.socket.destroy();
        return;
      }
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end("<!doctype html><html><body><form action=/login>Sign in to continue</form></body></html>");
      return;
    }
    const headers = { ...req.headers, ...(tls.headers as Record<string, string>), host: upstream.host };
    delete headers.authorization;
    Object.assign(headers, tls.headers);
    const url = new URL(req.url ?? "/", "http://proxy");
    const mutate =
      proxy.mode === "mutate" && req.method === "GET" && proxy.mutate?.when(url) ? proxy.mutate : undefined;
    const forward = https.request(
      { host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers, agent },
      (answer) => {
        if (mutate === undefined || answer.statusCode !== 200) {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
          return;
        }
        // a list in full, or what a watch sent in its first half second, changed and sent as the whole answer
        const watch = url.searchParams.get("watch") === "true";
        const chunks: Buffer[] = [];
        let sent = false;
        const send = () => {
          if (sent) return;
          sent = true;
          const changed = mutate.change(Buffer.concat(chunks), watch);
          proxy.mutated++;
          res.writeHead(200, { "content-type": changed.contentType });
          res.end(changed.body);
          answer.destroy();
        };
        answer.on("data", (chunk: Buffer) => chunks.push(chunk));
        answer.on("end", send);
        answer.on("error", () => res.destroy());
        const wait = typeof mutate.watchWaitMs === "function" ? mutate.watchWaitMs(url) : mutate.watchWaitMs;
        if (watch) setTimeout(send, wait ?? 500).unref();
      },
    );
    forward.on("error", () => res.destroy());
    res.on("close", () => forward.destroy());
    req.pipe(forward);
  });
  proxy.port = listening.port;
  proxy.kubeconfig = loopbackKubeconfig(listening.port);
  return proxy;
}

export const hostileBehaviours = [
  "hang",
  "reset",
  "huge-version",
  "endless-line",
  "html",
  "wrong-kind",
  "garbage-json",
  "invalid-utf8",
] as const;
export type HostileBehaviour = (typeof hostileBehaviours)[number];

export type HostileServer = { port: number; kubeconfig: string; requests: number; stop: () => Promise<void> };

/**
 * A server that plays a broken app cluster. /version answers like a real one except for the
 * behaviours that are about /version itself; everything else misbehaves as told.
 */
export async function startHostileServer(behaviour: HostileBehaviour): Promise<HostileServer> {
  const timers = new Set<NodeJS.Timeout>();
  const state: HostileServer = { port: 0, kubeconfig: "", requests: 0, stop: async () => undefined };
  const listening = await listenLoopback((req, res) => {
    state.requests++;
    res.on("error", () => undefined);
    const url = new URL(req.url ?? "/", "http://x");
    const json = (body: string | Buffer, status = 200) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(body);
    };
    if (behaviour === "hang") return; // accepts, never answers
    if (behaviour === "reset") {
      req.socket.destroy();
      return;
    }
    if (url.pathname === "/version") {
      if (behaviour === "huge-version") {
        // 600 MB of an endless JSON string, as fast as the reader takes it
        res.writeHead(200, { "content-type": "application/json" });
        res.write('{"gitVersion":"');
        const chunk = Buffer.alloc(1024 * 1024, 0x61);
        let sent = 0;
        const more = () => {
          while (sent < 600 && res.write(chunk)) sent++;
          if (sent < 600) res.once("drain", more);
          else res.end('"}');
        };
        more();
        return;
      }
      json(JSON.stringify({ major: "1", minor: "37", gitVersion: "v1.37.2-hostile" }));
      return;
    }
    const watch = url.searchParams.get("watch") === "true";
    switch (behaviour) {
      case "huge-version":
        json(
          JSON.stringify({
            kind: "Status",
            apiVersion: "v1",
            status: "Failure",
            code: 503,
            reason: "ServiceUnavailable",
          }),
          503,
        );
        return;
      case "endless-line": {
        res.writeHead(200, { "content-type": "application/json" });
        const tick = setInterval(() => res.write(`${"[".repeat(256 * 1024)}`), 5);
        timers.add(tick);
        res.on("close", () => {
          clearInterval(tick);
          timers.delete(tick);
        });
        return;
      }
      case "html":
        res.writeHead(200, { "content-type": "text/html" });
        res.end("<html><body>Please sign in</body></html>");
        return;
      case "wrong-kind": {
        const item = {
          apiVersion: "v1",
          kind: "Secret",
          metadata: { name: "x", namespace: "y", resourceVersion: "1" },
        };
        if (watch) json(`${JSON.stringify({ type: "ADDED", object: item })}\n`);
        else
          json(
            JSON.stringify({ apiVersion: "v1", kind: "SecretList", metadata: { resourceVersion: "1" }, items: [item] }),
          );
        return;
      }
      case "garbage-json":
        json('{"kind":"List","items":[{"metadata":');
        return;
      case "invalid-utf8":
        json(Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x3a, 0x31, 0x7d]));
        return;
    }
  });
  state.port = listening.port;
  state.kubeconfig = loopbackKubeconfig(listening.port);
  state.stop = async () => {
    for (const t of timers) clearInterval(t);
    await close(listening);
  };
  return state;
}

/**
 * A slow tenant's cluster: /version answers like a real one, every other request is taken and
 * never answered (until stop).
 */
export async function startVersionOnlyServer(): Promise<HostileServer> {
  const state: HostileServer = { port: 0, kubeconfig: "", requests: 0, stop: async () => undefined };
  const listening = await listenLoopback((req, res) => {
    state.requests++;
    res.on("error", () => undefined);
    if (new URL(req.url ?? "/", "http://x").pathname !== "/version") return;
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ major: "1", minor: "37", gitVersion: "v1.37.2-slow" }));
  });
  state.port = listening.port;
  state.kubeconfig = loopbackKubeconfig(listening.port);
  state.stop = () => close(listening);
  return state;
}

/**
 * Servers that would keep a client busy in a loop, each misbehaving only in the lists and watches
 * of the bound API's objects (paths ending in /widgets): pages with the same continue token
 * forever, 410 Expired for every list, a 503 asking for a wait longer than a timer holds, watches
 * that end after one bookmark. Everything else they answer like a real cluster, enough for the
 * sync to install the API and start its informers.
 */
export const loopingBehaviours = ["repeat-continue", "expired", "retry-huge", "bookmark-close"] as const;
export type LoopingBehaviour = (typeof loopingBehaviours)[number];

export type LoopingServer = {
  port: number;
  kubeconfig: string;
  lists: number;
  watches: number;
  /** "endless-objects": objects sent in watches so far */
  sent: number;
  stop: () => Promise<void>;
};

/** "huge-pages": the continue token of each page but the last */
const hugePageTokens = ["", "page-2", "page-3", "page-4"];
const hugePages = new Map<string, Buffer>();

/** Page at (0..3) of a list of 8 MiB pages of objects of 64 KiB each, made once per kind. */
function hugePage(apiVersion: string, kind: string, at: number): Buffer {
  const key = `${apiVersion}/${kind}/${at}`;
  let page = hugePages.get(key);
  if (page === undefined) {
    const padding = "x".repeat(64 * 1024);
    const items = Array.from({ length: 128 }, (_, i) => ({
      metadata: { name: `huge-${at}-${i}`, namespace: "flood", uid: `huge-${at}-${i}`, resourceVersion: "1" },
      spec: { padding },
    }));
    const next = hugePageTokens[at + 1];
    const metadata = { resourceVersion: "1", ...(next ? { continue: next } : {}) };
    page = Buffer.from(JSON.stringify({ apiVersion, kind: `${kind}List`, metadata, items }));
    hugePages.set(key, page);
  }
  return page;
}

/**
 * behaviour "endless-objects" (not a loop: a flood): lists are empty, and every watch sends new
 * objects, each of about 1 KiB, as fast as they are read, in namespace "flood". "huge-pages": every
 * list is 4 pages of 8 MiB each (32 MiB of JSON, within the default answer and list limits);
 * watches end at once.
 * resource: the plural whose lists and watches misbehave.
 */
export async function startLoopingServer(
  behaviour: LoopingBehaviour | "endless-objects" | "huge-pages",
  resource = "widgets",
): Promise<LoopingServer> {
  const state: LoopingServer = { port: 0, kubeconfig: "", lists: 0, watches: 0, sent: 0, stop: async () => undefined };
  /** what was applied, by path: answered back to GETs, CRDs established */
  const applied = new Map<string, Record<string, unknown>>();
  const listening = await listenLoopback((req, res) => {
    res.on("error", () => undefined);
    const url = new URL(req.url ?? "/", "http://x");
    const json = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { "content-type": "application/json", ...headers });
      res.end(typeof body === "string" || Buffer.isBuffer(body) ? body : JSON.stringify(body));
    };
    const status = (code: number, reason: string, details?: Record<string, unknown>) => ({
      kind: "Status",
      apiVersion: "v1",
      status: "Failure",
      code,
      reason,
      message: reason,
      ...(details ? { details } : {}),
    });
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      if (url.pathname === "/version") return json(200, { major: "1", minor: "37", gitVersion: "v1.37.2-looping" });
      if (url.pathname === "/api/v1/namespaces/kube-system") {
        return json(200, {
          apiVersion: "v1",
          kind: "Namespace",
          metadata: { name: "kube-system", uid: `kube-system-${behaviour}`, resourceVersion: "1" },
        });
      }
      if (req.method !== "GET") {
        const body = JSON.parse(Buffer.concat(chunks).toString() || "{}") as Record<string, unknown>;
        const merging = (req.headers["content-type"] ?? "").startsWith("application/merge-patch+json");
        const known = applied.get(url.pathname);
        if (merging && known === undefined) return json(404, status(404, "NotFound"));
        const obj = merging ? (mergePatch(known, body) as Record<string, unknown>) : body;
        const metadata = { ...(obj.metadata as object), uid: "u1", resourceVersion: "1" };
        const established = { conditions: [{ type: "Established", status: "True" }] };
        const answer = {
          ...obj,
          metadata,
          ...(obj.kind === "CustomResourceDefinition" ? { status: established } : {}),
        };
        applied.set(url.pathname, answer);
        return json(200, answer);
      }
      if (!url.pathname.endsWith(`/${resource}`)) {
        const known = applied.get(url.pathname);
        return known ? json(200, known) : json(404, status(404, "NotFound"));
      }
      const watch = url.searchParams.get("watch") === "true";
      if (watch) state.watches++;
      else state.lists++;
      const [, , group, version] = url.pathname.split("/");
      const apiVersion = `${group}/${version}`;
      const kind = applied.get(`/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${resource}.${group}`)?.spec as
        | { names?: { kind?: string } }
        | undefined;
      const kindName = kind?.names?.kind ?? "Widget";
      const list = (extra: Record<string, unknown>, items: unknown[]) => ({
        apiVersion,
        kind: `${kindName}List`,
        metadata: { resourceVersion: "1", ...extra },
        items,
      });
      switch (behaviour) {
        case "repeat-continue": {
          const items = Array.from({ length: 100 }, (_, i) => ({
            metadata: { name: `w${i}`, namespace: "default", resourceVersion: "1" },
          }));
          return json(200, list({ continue: "same" }, items));
        }
        case "expired":
          return json(410, status(410, "Expired"));
        case "retry-huge":
          return json(503, status(503, "ServiceUnavailable", { retryAfterSeconds: 3e6 }));
        case "endless-objects": {
          if (!watch) return json(200, list({}, []));
          res.writeHead(200, { "content-type": "application/json" });
          const padding = "x".repeat(900);
          const more = () => {
            while (!res.destroyed) {
              const n = ++state.sent;
              const object = {
                apiVersion,
                kind: kindName,
                metadata: { name: `flood-${n}`, namespace: "flood", uid: `flood-${n}`, resourceVersion: String(n + 1) },
                spec: { padding },
              };
              if (!res.write(`${JSON.stringify({ type: "ADDED", object })}\n`)) {
                res.once("drain", more);
                return;
              }
            }
          };
          more();
          return;
        }
        case "huge-pages": {
          if (watch) return json(200, "");
          const at = Math.max(0, hugePageTokens.indexOf(url.searchParams.get("continue") ?? ""));
          return json(200, hugePage(apiVersion, kindName, at));
        }
        case "bookmark-close": {
          if (!watch) return json(200, list({}, []));
          const bookmark = { apiVersion, kind: "Widget", metadata: { resourceVersion: "1" } };
          return json(200, `${JSON.stringify({ type: "BOOKMARK", object: bookmark })}\n`);
        }
      }
    });
  });
  state.port = listening.port;
  state.kubeconfig = loopbackKubeconfig(listening.port);
  state.stop = () => close(listening);
  return state;
}

/** RFC 7386: a JSON merge patch applied to target. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== "object" || Array.isArray(patch)) return patch;
  const merged: Record<string, unknown> =
    target !== null && typeof target === "object" && !Array.isArray(target) ? { ...(target as object) } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete merged[key];
    else merged[key] = mergePatch(merged[key], value);
  }
  return merged;
}

/** Text that must never show up anywhere: what a tenant might point a binding at by mistake. */
export function credentialsFile(): { text: string; secrets: string[] } {
  const secrets = ["AKIAZZQ7EXAMPLEKEYID", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzzEXAMPLEKEY", "hunter2-db-password"];
  return {
    text: `[default]\naws_access_key_id = ${secrets[0]}\naws_secret_access_key = ${secrets[1]}\n# db: postgres://app:${secrets[2]}@db:5432/app\n`,
    secrets,
  };
}
