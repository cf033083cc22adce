// The client's HTTP/2 path (h2.ts, KubeClient's #openStream) against real local TLS servers: ALPN
// negotiation and its fallbacks, the server's stream limit, the write gates, deadlines, sessions
// the server ends, watches, and idle sessions (which must not end a process that is still waiting).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import * as http2 from "node:http2";
import * as https from "node:https";
import type { AddressInfo } from "node:net";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import * as tls from "node:tls";
import { fileURLToPath } from "node:url";
import { KubeClient, type KubeObject, type ResourceRef, type WatchEvent } from "../../src/kube/client.ts";
import { H2Sessions, negotiateH2 } from "../../src/kube/h2.ts";
import { makePki, type Pki } from "../support/certs.ts";
import { eventually } from "../support/eventually.ts";

const configMaps: ResourceRef = { group: "", version: "v1", resource: "configmaps", namespaced: true };

type Seen = { method: string; url: URL; version: string; headers: IncomingHttpHeaders; body: string };
type Reply = ServerResponse | http2.Http2ServerResponse;
type Handler = (seen: Seen, res: Reply) => void;
type TestServer = {
  port: number;
  seen: Seen[];
  /** TLS connections accepted */
  connections: () => number;
  /** HTTP/2 sessions accepted (each on its own TLS connection) */
  sessions: Set<http2.ServerHttp2Session>;
  stop: () => Promise<void>;
};

let pki: Pki;
const servers: TestServer[] = [];
const clients: KubeClient[] = [];
const pools: H2Sessions[] = [];

before(() => {
  pki = makePki();
});

afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  for (const pool of pools.splice(0)) pool.close();
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

after(() => rmSync(join(pki.serverDir, ".."), { recursive: true, force: true }));

/** A TLS server on 127.0.0.1: "h2" speaks HTTP/2 (and HTTP/1.1 to clients without ALPN), "https" HTTP/1.1 only. */
async function serve(kind: "h2" | "https", handler: Handler, settings?: http2.Settings): Promise<TestServer> {
  const seen: Seen[] = [];
  const onRequest = (req: IncomingMessage | http2.Http2ServerRequest, res: Reply) => {
    const chunks: Buffer[] = [];
    const request = req as IncomingMessage; // both are Readables with these fields
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const url = new URL(req.url ?? "/", "https://server");
      const body = Buffer.concat(chunks).toString();
      const one = { method: req.method ?? "", url, version: req.httpVersion, headers: req.headers, body };
      seen.push(one);
      handler(one, res);
    });
  };
  const cert = readFileSync(join(pki.serverDir, "tls.crt"));
  const key = readFileSync(join(pki.serverDir, "tls.key"));
  const server =
    kind === "h2"
      ? http2.createSecureServer({ cert, key, allowHTTP1: true, ...(settings ? { settings } : {}) }, onRequest)
      : https.createServer({ cert, key }, onRequest);
  let connections = 0;
  const sockets = new Set<tls.TLSSocket>();
  server.on("secureConnection", (socket: tls.TLSSocket) => {
    connections++;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session: http2.ServerHttp2Session) => sessions.add(session));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const started: TestServer = {
    port: (server.address() as AddressInfo).port,
    seen,
    connections: () => connections,
    sessions,
    stop: async () => {
      for (const session of sessions) session.destroy();
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  servers.push(started);
  return started;
}

function json(res: Reply, status: number, body: unknown): void {
  (res as ServerResponse).writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

function configMap(name: string, data: Record<string, string> = {}): KubeObject {
  return { apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace: "ns", resourceVersion: "1" }, data };
}

/** A kubeconfig for https://127.0.0.1:port that trusts the test CA. */
function tlsKubeconfig(port: number): string {
  return `apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: "https://127.0.0.1:${port}", certificate-authority-data: ${pki.ca.toString("base64")}}
users:
- name: local
  user: {token: h2-token}
contexts:
- name: local
  context: {cluster: local, user: local}
current-context: local
`;
}

function newClient(server: TestServer, options: Parameters<typeof KubeClient.fromKubeconfigText>[1] = {}) {
  const client = KubeClient.fromKubeconfigText(tlsKubeconfig(server.port), { timeoutMs: 10_000, ...options });
  clients.push(client);
  return client;
}

const version: Handler = (_seen, res) => json(res, 200, { gitVersion: "v1.34.0" });
/** a bound for tests that would otherwise hang when what they check is broken */
const bounded = { timeout: 20_000 };

describe("KubeClient over HTTP/2", () => {
  it("sends GET, POST, PATCH and list as streams of one session", bounded, async () => {
    const server = await serve("h2", (seen, res) => {
      if (seen.method === "POST") json(res, 201, JSON.parse(seen.body));
      else if (seen.method === "PATCH") json(res, 200, configMap("a", JSON.parse(seen.body).data));
      else if (seen.url.pathname.endsWith("/configmaps")) {
        json(res, 200, { kind: "ConfigMapList", apiVersion: "v1", metadata: { resourceVersion: "7" }, items: [] });
      } else json(res, 200, configMap("a"));
    });
    const client = newClient(server);
    assert.equal((await client.get(configMaps, "a", "ns"))?.metadata.name, "a");
    // larger than one DATA frame (16 KiB), and not ASCII
    const created = configMap("b", { big: "é€".repeat(20_000), small: "x" });
    assert.deepEqual(await client.create(configMaps, created), created);
    assert.deepEqual((await client.mergePatch(configMaps, "a", "ns", { data: { k: "v" } })).data, { k: "v" });
    assert.equal((await client.list(configMaps, { namespace: "ns" })).resourceVersion, "7");

    assert.deepEqual(
      server.seen.map((s) => `${s.method} ${s.version}`),
      ["GET 2.0", "POST 2.0", "PATCH 2.0", "GET 2.0"],
    );
    assert.deepEqual(JSON.parse(server.seen[1]?.body ?? ""), created);
    assert.equal(server.seen[2]?.headers["content-type"], "application/merge-patch+json");
    assert.equal(server.seen[0]?.headers.authorization, "Bearer h2-token");
    assert.equal(server.seen[3]?.url.searchParams.get("limit"), "500");
    assert.deepEqual(await client.connections(), { protocol: "h2", open: 1 });
    assert.equal(server.connections(), 1, "the connection ALPN chose h2 on is the session's");
    assert.equal(client.requests, 4);
  });

  it("speaks HTTP/1.1 to a server without h2, and when told to", bounded, async () => {
    const h1 = await serve("https", version);
    const toH1 = newClient(h1);
    assert.equal((await toH1.serverVersion()).gitVersion, "v1.34.0");
    await toH1.serverVersion();
    assert.deepEqual(
      h1.seen.map((s) => s.version),
      ["1.1", "1.1"],
    );
    assert.equal((await toH1.connections())?.protocol, "http/1.1");

    const h2 = await serve("h2", version);
    const noH2 = newClient(h2, { http2: false });
    await noH2.serverVersion();
    assert.equal(h2.seen[0]?.version, "1.1");
    assert.deepEqual(await noH2.connections(), { protocol: "http/1.1", open: 1 });
    assert.equal(h2.sessions.size, 0);
  });

  for (const warm of [true, false]) {
    it(
      `opens another session at the server's stream limit, also in a burst (${warm ? "after a first request" : "cold"})`,
      bounded,
      async () => {
        const held: Reply[] = [];
        const server = await serve(
          "h2",
          (seen, res) => {
            if (seen.url.pathname !== "/slow") return version(seen, res);
            held.push(res);
            // all five at the server at once, or none answered (the client's deadline fails the test)
            if (held.length === 5) for (const r of held) json(r, 200, { done: true });
          },
          { maxConcurrentStreams: 2 },
        );
        const client = newClient(server, { timeoutMs: 5_000 });
        if (warm) await client.serverVersion(); // the session is up and its settings known
        const slow = [1, 2, 3, 4, 5].map(() => client.request("GET", "/slow"));
        assert.deepEqual(await Promise.all(slow), Array(5).fill({ done: true }));
        assert.equal(server.sessions.size, 3, "5 streams at once, 2 per session");
        assert.equal((await client.connections())?.open, 3, "the client holds them too");
      },
    );
  }

  it("fails a watch whose connection is cut, rather than ending it", bounded, async () => {
    let cut: (() => void) | undefined;
    const server = await serve("h2", (_seen, reply) => {
      const res = reply as http2.Http2ServerResponse;
      res.writeHead(200, { "content-type": "application/json" });
      res.write(`${JSON.stringify({ type: "ADDED", object: configMap("a") })}\n`);
      cut = () => res.stream.session?.destroy();
    });
    const client = newClient(server);
    const watching = client.watch(configMaps, { resourceVersion: "1" }, () => cut?.(), new AbortController().signal);
    await assert.rejects(watching, /watch connection closed before the stream ended$/);
    assert.equal(server.seen[0]?.version, "2.0");
  });

  it("asks the gates right before a stream is made, after waiting for a request slot", bounded, async () => {
    let release: (() => void) | undefined;
    const server = await serve("h2", (seen, res) => {
      if (seen.url.pathname === "/slow") release = () => json(res, 200, {});
      else json(res, 201, JSON.parse(seen.body));
    });
    const client = newClient(server, { maxConnections: 1 });
    const fenced = client.gated(() => new Error("fenced"));
    await assert.rejects(fenced.create(configMaps, configMap("a")), /^Error: fenced$/);

    let open = true;
    const gated = client.gated(() => (open ? undefined : new Error("fenced")));
    const slow = client.request("GET", "/slow");
    await eventually("the slow request holds the only slot", () => assert.ok(release));
    const waiting = gated.create(configMaps, configMap("b"));
    await sleep(50); // it passed the gate when called, and waits for the slot now
    open = false;
    release?.();
    await slow;
    await assert.rejects(waiting, /^Error: fenced$/);
    assert.deepEqual(
      server.seen.map((s) => s.method),
      ["GET"],
    );
    assert.equal(client.requests, 1, "refused writes are not counted");
    open = true;
    await gated.create(configMaps, configMap("c")); // the slot was passed on
    assert.equal(client.requests, 2);
    assert.equal((await client.connections())?.protocol, "h2");
  });

  it("ends a stream without an answer at the deadline, and the next request works", bounded, async () => {
    const server = await serve("h2", (seen, res) => {
      if (seen.url.pathname !== "/hang") version(seen, res);
    });
    const client = newClient(server, { timeoutMs: 200 });
    await assert.rejects(client.request("GET", "/hang"), /GET \/hang: no complete answer from .* within 200 ms/);
    assert.equal((await client.serverVersion()).gitVersion, "v1.34.0");
    assert.equal(server.sessions.size, 1);
  });

  for (const stall of ["tls", "settings"] as const) {
    it(
      `gives up at the deadline on a server that stalls ${stall === "tls" ? "its TLS handshake" : "before its HTTP/2 settings"}, and tries afresh`,
      bounded,
      async () => {
        // tls: takes the TCP connection and says nothing; settings: agrees on h2, then says nothing
        const sockets = new Set<import("node:net").Socket>();
        const cert = readFileSync(join(pki.serverDir, "tls.crt"));
        const key = readFileSync(join(pki.serverDir, "tls.key"));
        const server = stall === "tls" ? net.createServer() : tls.createServer({ cert, key, ALPNProtocols: ["h2"] });
        server.on(stall === "tls" ? "connection" : "secureConnection", (socket: import("node:net").Socket) => {
          sockets.add(socket);
        });
        await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
        const port = (server.address() as AddressInfo).port;
        try {
          const client = KubeClient.fromKubeconfigText(tlsKubeconfig(port), { timeoutMs: 300 });
          clients.push(client);
          for (let attempt = 0; attempt < 2; attempt++) {
            const started = performance.now();
            await assert.rejects(client.request("GET", "/version"), /within 300 ms/);
            assert.ok(performance.now() - started < 5_000, "rejected near its deadline");
          }
          assert.equal(client.requests, 0, "nothing was sent");
        } finally {
          for (const socket of sockets) socket.destroy();
          await new Promise((resolve) => server.close(resolve));
        }
      },
    );
  }

  it(
    "fails a request whose connection closes before the server's settings: one handshake, no loop",
    bounded,
    async () => {
      // a TLS front whose backend is gone: agrees on h2, then closes
      const cert = readFileSync(join(pki.serverDir, "tls.crt"));
      const key = readFileSync(join(pki.serverDir, "tls.key"));
      let handshakes = 0;
      const server = tls.createServer({ cert, key, ALPNProtocols: ["h2"] }, (socket) => {
        handshakes++;
        socket.on("error", () => {});
        socket.destroy();
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      try {
        const client = KubeClient.fromKubeconfigText(tlsKubeconfig((server.address() as AddressInfo).port), {
          timeoutMs: 3_000,
        });
        clients.push(client);
        for (let request = 1; request <= 2; request++) {
          await assert.rejects(client.request("GET", "/version"), /closed before it was ready/);
          // the first request's connection was the one that chose the protocol
          assert.ok(handshakes <= request + 1, `${handshakes} TLS handshakes for ${request} requests`);
        }
        assert.equal(client.requests, 0, "nothing was sent");
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
    },
  );

  it("fails the requests of a session the server ends, and opens a new one for the next", bounded, async () => {
    const server = await serve("h2", (seen, reply) => {
      const res = reply as http2.Http2ServerResponse;
      if (seen.url.pathname === "/destroy") res.stream.session?.destroy();
      else version(seen, res);
    });
    const client = newClient(server);
    await assert.rejects(client.request("GET", "/destroy"), (err: unknown) => {
      assert.ok(err instanceof Error);
      assert.match(err.message, /^GET \/destroy: /);
      return true;
    });
    assert.equal((await client.serverVersion()).gitVersion, "v1.34.0");
    assert.equal(server.sessions.size, 2);

    for (const session of server.sessions) if (!session.destroyed) session.goaway();
    await eventually("the client heard the GOAWAY", async () =>
      assert.deepEqual(await client.connections(), { protocol: "h2", open: 0 }),
    );
    assert.equal((await client.serverVersion()).gitVersion, "v1.34.0");
    assert.equal(server.sessions.size, 3);
    assert.deepEqual(await client.connections(), { protocol: "h2", open: 1 });
  });

  it("watches over a stream: events until the server ends it, or until aborted", bounded, async () => {
    let held: http2.Http2ServerResponse | undefined;
    const server = await serve("h2", (seen, reply) => {
      const res = reply as http2.Http2ServerResponse;
      res.writeHead(200, { "content-type": "application/json" });
      res.write(`${JSON.stringify({ type: "ADDED", object: configMap("a") })}\n`);
      const modified = `${JSON.stringify({ type: "MODIFIED", object: configMap("a", { k: "v" }) })}\n`;
      // resourceVersion 5: the stream stays open after two events
      if (seen.url.searchParams.get("resourceVersion") !== "5") res.end(modified);
      else {
        res.write(modified);
        held = res;
      }
    });
    const client = newClient(server);
    const events: WatchEvent[] = [];
    const options = { namespace: "ns", resourceVersion: "1", kind: "ConfigMap" };
    await client.watch(configMaps, options, (e) => events.push(e), new AbortController().signal);
    assert.deepEqual(
      events.map((e) => `${e.type} ${e.object.metadata.name} ${JSON.stringify(e.object.data)}`),
      ["ADDED a {}", 'MODIFIED a {"k":"v"}'],
    );
    const sent = server.seen[0];
    assert.equal(sent?.version, "2.0");
    assert.equal(sent?.url.pathname, "/api/v1/namespaces/ns/configmaps");
    assert.equal(sent?.url.searchParams.get("watch"), "true");

    events.length = 0;
    const abort = new AbortController();
    const watching = client.watch(
      configMaps,
      { ...options, resourceVersion: "5" },
      (e) => {
        events.push(e);
        if (events.length === 2) abort.abort();
      },
      abort.signal,
    );
    await watching;
    assert.equal(events.length, 2);
    await eventually("the server saw the stream end", () => assert.ok(held?.stream.closed));
    assert.deepEqual(await client.connections(), { protocol: "h2", open: 1 });
  });
});

/** GET path on a pool: the status, once the whole answer arrived. */
async function get(pool: H2Sessions, path: string): Promise<number | undefined> {
  const stream = await pool.request({ ":method": "GET", ":path": path }, { endStream: true }, () => undefined);
  return new Promise((resolve, reject) => {
    let status: number | undefined;
    stream.on("response", (headers) => {
      status = headers[":status"];
    });
    stream.on("error", reject);
    stream.on("end", () => resolve(status));
    stream.resume();
  });
}

describe("H2Sessions", () => {
  it(
    "pings a quiet connection that holds streams: keeps it while answered, ends it when the peer falls silent",
    bounded,
    async () => {
      const server = await serve("h2", (seen, reply) => {
        if (seen.url.pathname !== "/watch") return version(seen, reply);
        (reply as http2.Http2ServerResponse).writeHead(200, { "content-type": "application/json" }); // and nothing more
      });
      // a relay that can drop everything in both directions: a peer gone without a word
      let silent = false;
      const relayed = new Set<net.Socket>();
      const relay = net.createServer((inbound) => {
        const outbound = net.connect(server.port, "127.0.0.1");
        for (const [from, to] of [
          [inbound, outbound],
          [outbound, inbound],
        ] as const) {
          relayed.add(from);
          from.on("data", (chunk: Buffer) => {
            if (!silent) to.write(chunk);
          });
          from.on("close", () => to.destroy());
          from.on("error", () => to.destroy());
        }
      });
      await new Promise<void>((resolve) => relay.listen(0, "127.0.0.1", resolve));
      try {
        const origin = new URL(`https://127.0.0.1:${(relay.address() as AddressInfo).port}`);
        const target = { secureContext: tls.createSecureContext({ ca: pki.ca }) };
        const first = await negotiateH2(origin, target, 5_000);
        const pool = new H2Sessions(origin, target, first, { idleMs: 100, pingTimeoutMs: 300 });
        pools.push(pool);
        const watch = await pool.request({ ":method": "GET", ":path": "/watch" }, { endStream: true }, () => undefined);
        const ended = new Promise<string>((resolve) => {
          watch.on("error", (err) => resolve(err.message));
          watch.on("close", () => resolve(`closed (code ${watch.rstCode})`));
        });
        await once(watch, "response");
        await sleep(1_000); // ten quiet spells, each pinged and answered
        assert.equal(watch.closed, false, "a quiet stream on an answering connection stays");
        assert.equal(pool.sessions, 1);
        silent = true;
        const started = performance.now();
        const how = await ended;
        assert.ok(
          performance.now() - started < 5_000,
          `ended ${Math.round(performance.now() - started)} ms after the silence`,
        );
        assert.match(how, /PING|closed/);
        await eventually("the silent connection left the pool", () => assert.equal(pool.sessions, 0), 2_000);
      } finally {
        for (const socket of relayed) socket.destroy();
        await new Promise((resolve) => relay.close(resolve));
      }
    },
  );

  it("closes a session left idle, and opens another for the next request", bounded, async () => {
    const server = await serve("h2", version);
    const origin = new URL(`https://127.0.0.1:${server.port}`);
    const target = { secureContext: tls.createSecureContext({ ca: pki.ca }) };
    const pool = new H2Sessions(origin, target, await negotiateH2(origin, target, 5_000), { idleMs: 200 });
    pools.push(pool);
    assert.equal(await get(pool, "/version"), 200);
    assert.equal(pool.sessions, 1);
    await eventually("the idle session closed", () => assert.equal(pool.sessions, 0), 5_000);
    assert.equal(await get(pool, "/version"), 200);
    assert.equal(pool.sessions, 1);
    assert.equal(server.sessions.size, 2);
  });

  it(
    "closes a session as idle once its streams ended, though it was busy when its idle time first passed",
    bounded,
    async () => {
      // the answer comes after three idle times: the session is busy then, idle only afterwards
      const server = await serve("h2", (seen, res) => setTimeout(() => version(seen, res), 300));
      const origin = new URL(`https://127.0.0.1:${server.port}`);
      const target = { secureContext: tls.createSecureContext({ ca: pki.ca }) };
      const pool = new H2Sessions(origin, target, await negotiateH2(origin, target, 5_000), { idleMs: 100 });
      pools.push(pool);
      assert.equal(await get(pool, "/version"), 200);
      await eventually("the session closed once idle", () => assert.equal(pool.sessions, 0), 5_000);
    },
  );

  it("keeps a session that connects slower than its idle time for the request waiting on it", bounded, async () => {
    const server = await serve("h2", version);
    // a relay that holds the server's first bytes (TLS handshake, SETTINGS) back for 400 ms
    const relayed = new Set<net.Socket>();
    const relay = net.createServer((inbound) => {
      const outbound = net.connect(server.port, "127.0.0.1");
      const opened = performance.now();
      relayed.add(inbound).add(outbound);
      inbound.on("data", (chunk: Buffer) => outbound.write(chunk));
      outbound.on("data", (chunk: Buffer) => {
        const wait = Math.max(0, 400 - (performance.now() - opened));
        if (wait === 0) inbound.write(chunk);
        else setTimeout(() => inbound.writable && inbound.write(chunk), wait);
      });
      for (const socket of [inbound, outbound]) {
        socket.on("close", () => (socket === inbound ? outbound : inbound).destroy());
        socket.on("error", () => undefined);
      }
    });
    await new Promise<void>((resolve) => relay.listen(0, "127.0.0.1", resolve));
    try {
      const origin = new URL(`https://127.0.0.1:${(relay.address() as AddressInfo).port}`);
      const target = { secureContext: tls.createSecureContext({ ca: pki.ca }) };
      const pool = new H2Sessions(origin, target, undefined, { idleMs: 100 });
      pools.push(pool);
      assert.equal(await get(pool, "/version"), 200);
    } finally {
      for (const socket of relayed) socket.destroy();
      await new Promise((resolve) => relay.close(resolve));
    }
  });

  it("keeps a process alive while a session connects", bounded, async () => {
    const server = await serve("h2", version);
    const dir = mkdtempSync(join(tmpdir(), "klb-h2-"));
    try {
      const script = join(dir, "idle.mjs");
      const h2 = fileURLToPath(new URL("../../src/kube/h2.ts", import.meta.url));
      // the second request connects with nothing else keeping the event loop alive
      writeFileSync(
        script,
        `import { readFileSync } from "node:fs";
import * as tls from "node:tls";
import { H2Sessions, negotiateH2 } from ${JSON.stringify(h2)};
const [port, caFile] = process.argv.slice(2);
const origin = new URL("https://127.0.0.1:" + port);
const target = { secureContext: tls.createSecureContext({ ca: readFileSync(caFile) }) };
const pool = new H2Sessions(origin, target, await negotiateH2(origin, target, 5_000), { idleMs: 100 });
async function get() {
  const stream = await pool.request({ ":method": "GET", ":path": "/version" }, { endStream: true }, () => undefined);
  return new Promise((resolve, reject) => {
    let status;
    stream.on("response", (headers) => { status = headers[":status"]; });
    stream.on("error", reject);
    stream.on("end", () => resolve(status));
    stream.resume();
  });
}
if ((await get()) !== 200) throw new Error("first request failed");
while (pool.sessions > 0) await new Promise((resolve) => setTimeout(resolve, 20));
if ((await get()) !== 200) throw new Error("second request failed");
console.log("ok");
`,
      );
      const child = spawn(process.execPath, [script, String(server.port), join(pki.serverDir, "ca.crt")], {
        stdio: ["ignore", "pipe", "pipe"],
        timeout: 15_000,
      });
      let out = "";
      child.stdout.on("data", (chunk: Buffer) => {
        out += chunk;
      });
      child.stderr.on("data", (chunk: Buffer) => {
        out += chunk;
      });
      const code = await new Promise((resolve) => child.on("close", (c, signal) => resolve(c ?? signal)));
      assert.equal(out.trim(), "ok", out);
      assert.equal(code, 0, out);
      assert.equal(server.sessions.size, 2, "the idle session closed, another opened");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
