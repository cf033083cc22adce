// The client and informer against a scripted fake API server: what a real one rarely does on
// demand (429s, cut connections, split chunks, ERROR events, failing lists).
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import {
  type ClientOptions,
  KubeApiError,
  KubeClient,
  KubeDecodeError,
  type KubeObject,
  type ResourceRef,
  resourcePath,
} from "../../src/kube/client.ts";
import { Informer } from "../../src/kube/informer.ts";
import { eventually } from "../support/eventually.ts";

type Handler = (req: IncomingMessage, res: ServerResponse, url: URL) => void;

const widgets: ResourceRef = { group: "example.com", version: "v1", resource: "widgets", namespaced: true };
const configMaps: ResourceRef = { group: "", version: "v1", resource: "configmaps", namespaced: true };

let server: Server;
let handler: Handler;
// what a test started, ended after it so that nothing leaks into the next test's `seen`
const clients: KubeClient[] = [];
const informers: Informer[] = [];
const seen: Array<{ method: string; url: URL; headers: IncomingMessage["headers"]; body: string }> = [];

function kubeconfig(port: number, user = "    token: secret-token"): string {
  return `apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: http://127.0.0.1:${port}
    insecure-skip-tls-verify: true
users:
- name: fake
  user:
${user}
contexts:
- name: fake
  context: {cluster: fake, user: fake}
current-context: fake
`;
}

function port(): number {
  return (server.address() as AddressInfo).port;
}

function newClient(options: ClientOptions = {}): KubeClient {
  const client = KubeClient.fromKubeconfigText(kubeconfig(port()), { userAgent: "unit-test", ...options });
  clients.push(client);
  return client;
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

function status(code: number, reason: string, message: string) {
  return { kind: "Status", apiVersion: "v1", status: "Failure", code, reason, message };
}

function widget(name: string, rv: string, uid = `uid-${name}`): KubeObject {
  return {
    apiVersion: "example.com/v1",
    kind: "Widget",
    metadata: { name, namespace: "ns", uid, resourceVersion: rv },
  };
}

function listOf(rv: string, items: KubeObject[]) {
  // lists omit apiVersion and kind on their items
  return {
    kind: "WidgetList",
    apiVersion: "example.com/v1",
    metadata: { resourceVersion: rv },
    items: items.map(({ apiVersion: _a, kind: _k, ...rest }) => rest),
  };
}

before(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const url = new URL(req.url ?? "/", "http://fake");
      seen.push({ method: req.method ?? "", url, headers: req.headers, body: Buffer.concat(chunks).toString() });
      handler(req, res, url);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
});

after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

afterEach(async () => {
  await Promise.all(informers.splice(0).map((i) => i.stop()));
  for (const client of clients.splice(0)) client.close();
});

beforeEach(() => {
  seen.length = 0;
  handler = (_req, res) => json(res, 404, status(404, "NotFound", "not scripted"));
});

describe("resourcePath", () => {
  it("builds core, group, namespaced, cluster-scoped and subresource paths", () => {
    assert.equal(resourcePath(configMaps), "/api/v1/configmaps");
    assert.equal(resourcePath(configMaps, "ns"), "/api/v1/namespaces/ns/configmaps");
    assert.equal(resourcePath(widgets, "ns", "w", "status"), "/apis/example.com/v1/namespaces/ns/widgets/w/status");
    const crds = {
      group: "apiextensions.k8s.io",
      version: "v1",
      resource: "customresourcedefinitions",
      namespaced: false,
    };
    assert.equal(resourcePath(crds, "ignored", "a.b"), "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/a.b");
    assert.equal(resourcePath(configMaps, "ns", "a b:c"), "/api/v1/namespaces/ns/configmaps/a%20b%3Ac");
    // no API server names an object so: "/" would be another path, "." and ".." the collection or its parent
    for (const name of ["a/b", ".", "..", "50%"]) {
      assert.throws(() => resourcePath(configMaps, "ns", name), /is not a name/);
      assert.throws(() => resourcePath(configMaps, name, "a"), /is not a namespace/);
    }
    assert.throws(
      () => resourcePath(widgets, undefined, "w"),
      /widgets\.example\.com\/v1 is namespaced: w needs a namespace/,
    );
  });
});

describe("KubeClient.fromKubeconfigText", () => {
  it("explains what is wrong with a kubeconfig", () => {
    assert.throws(() => KubeClient.fromKubeconfigText("{not yaml: ["), /^Error: invalid kubeconfig: /);
    assert.throws(
      () => KubeClient.fromKubeconfigText("apiVersion: v1\nkind: Config\n"),
      /invalid kubeconfig: no contexts/,
    );
    assert.throws(
      () => KubeClient.fromKubeconfigText(kubeconfig(1).replace("current-context: fake", "current-context: gone")),
      /current-context "gone" does not exist/,
    );
    assert.throws(
      () => KubeClient.fromKubeconfigText(kubeconfig(1).replace(/ {4}server: .*\n/, "")),
      /invalid kubeconfig: .*server is missing/,
    );
  });

  it("takes the only context when none is current", () => {
    const client = KubeClient.fromKubeconfigText(kubeconfig(1234).replace("current-context: fake", ""));
    assert.equal(client.server, "http://127.0.0.1:1234");
    client.close();
  });
});

describe("KubeClient.request", () => {
  it("sends JSON with credentials and counts requests", async () => {
    handler = (_req, res) => json(res, 201, { ok: true });
    const client = newClient();
    const answer = await client.request("POST", "/api/v1/things", {
      body: { a: "é" },
      query: { dryRun: "All", skipped: undefined },
    });
    assert.deepEqual(answer, { ok: true });
    const sent = seen[0];
    assert.ok(sent);
    assert.equal(sent.headers.authorization, "Bearer secret-token");
    assert.equal(sent.headers["user-agent"], "unit-test");
    assert.equal(sent.headers["content-type"], "application/json");
    assert.equal(sent.url.search, "?dryRun=All");
    await client.request("GET", "/api/v1/things?labelSelector=a%3Db", { query: { limit: "1" } });
    assert.equal(seen[1]?.url.pathname, "/api/v1/things");
    assert.equal(seen[1]?.url.search, "?labelSelector=a%3Db&limit=1");
    assert.equal(client.requests, 2);
    assert.deepEqual(JSON.parse(sent.body), { a: "é" });
  });

  it("retries 429 as Retry-After says, then gives up", async () => {
    let calls = 0;
    handler = (_req, res) => {
      calls++;
      if (calls === 1) json(res, 429, status(429, "TooManyRequests", "slow down"), { "retry-after": "1" });
      else json(res, 200, { calls });
    };
    const client = newClient();
    const started = Date.now();
    assert.deepEqual(await client.request("GET", "/x"), { calls: 2 });
    assert.ok(Date.now() - started >= 900, "waited for Retry-After");

    handler = (_req, res) => json(res, 429, status(429, "TooManyRequests", "still busy"), { "retry-after": "0" });
    await assert.rejects(client.request("GET", "/y"), (err: unknown) => {
      assert.ok(err instanceof KubeApiError);
      assert.equal(err.code, 429);
      assert.equal(err.message, "GET /y: 429 TooManyRequests: still busy");
      return true;
    });
    assert.equal(client.requests, 2 + 4);
  });

  it("says what an answer without a Status body was, never what it said", async () => {
    handler = (_req, res) => {
      res.writeHead(503, { "content-type": "text/plain" });
      res.end("upstream down, password=hunter2\n");
    };
    await assert.rejects(newClient().request("GET", "/z"), (err: unknown) => {
      assert.ok(err instanceof KubeApiError);
      assert.equal(
        err.message,
        "GET /z: 503 ServiceUnavailable: the answer was text/plain, 32 bytes, not a Kubernetes Status",
      );
      assert.equal(err.reason, "ServiceUnavailable");
      return true;
    });
  });

  it("gives up on a server that does not answer", async () => {
    handler = () => {};
    await assert.rejects(
      newClient({ timeoutMs: 200 }).request("GET", "/slow"),
      /^Error: GET \/slow: no complete answer/,
    );
  });

  it("keeps to its rate limit", async () => {
    handler = (_req, res) => json(res, 200, {});
    const client = newClient({ qps: 20, burst: 1 });
    const started = Date.now();
    await Promise.all([1, 2, 3, 4, 5].map(() => client.request("GET", "/r")));
    assert.ok(Date.now() - started >= 180, `5 requests at 20 qps, burst 1, took ${Date.now() - started} ms`);
  });

  it("refuses requests once closed", async () => {
    const client = newClient();
    client.close();
    await assert.rejects(client.request("GET", "/closed"), /client for .* is closed/);
  });

  it("sets apiVersion and kind on listed items and follows continue", async () => {
    handler = (_req, res, url) => {
      const page = url.searchParams.get("continue");
      assert.equal(url.searchParams.get("limit"), "2");
      if (page === null)
        json(res, 200, {
          ...listOf("7", [widget("a", "1"), widget("b", "2")]),
          metadata: { resourceVersion: "7", continue: "next" },
        });
      else json(res, 200, listOf("7", [widget("c", "3")]));
    };
    const { items, resourceVersion } = await newClient().list(widgets, { namespace: "ns", limit: 2 });
    assert.equal(resourceVersion, "7");
    assert.deepEqual(
      items.map((i) => `${i.apiVersion} ${i.kind} ${i.metadata.name}`),
      ["example.com/v1 Widget a", "example.com/v1 Widget b", "example.com/v1 Widget c"],
    );
  });

  it("lists in one go when the continue token expired", async () => {
    handler = (_req, res, url) => {
      if (url.searchParams.get("continue") !== null) json(res, 410, status(410, "Expired", "continue expired"));
      else if (url.searchParams.get("limit") === null)
        json(res, 200, listOf("9", [widget("a", "1"), widget("b", "9")]));
      else json(res, 200, { ...listOf("7", [widget("a", "1")]), metadata: { resourceVersion: "7", continue: "next" } });
    };
    const { items, resourceVersion } = await newClient().list(widgets, { namespace: "ns", limit: 1 });
    assert.equal(resourceVersion, "9");
    assert.equal(items.length, 2);
  });
});

describe("KubeClient against a server that pages or retries forever", () => {
  // what these check, broken, loops: the bound ends the test instead
  const bounded = { timeout: 20_000 };
  it("rejects a list whose pages repeat a continue token, naming it", bounded, async () => {
    handler = (_req, res) =>
      json(res, 200, { ...listOf("7", [widget("a", "1")]), metadata: { resourceVersion: "7", continue: "same" } });
    await assert.rejects(newClient().list(widgets, { namespace: "ns" }), (err: unknown) => {
      assert.ok(err instanceof KubeDecodeError);
      assert.match(err.message, /page 2 repeats the continue token "same" of an earlier page/);
      return true;
    });
    assert.equal(seen.length, 2);

    // a cycle of two tokens too
    handler = (_req, res, url) => {
      const next = url.searchParams.get("continue") === "a" ? "b" : "a";
      json(res, 200, { ...listOf("7", [widget("a", "1")]), metadata: { resourceVersion: "7", continue: next } });
    };
    await assert.rejects(newClient().list(widgets, { namespace: "ns" }), /page 3 repeats the continue token "a"/);
  });

  it("bounds a list that pages on and on: its objects, its bytes and its time", bounded, async () => {
    let n = 0;
    const fresh = (_req: IncomingMessage, res: ServerResponse) => {
      n++;
      json(res, 200, {
        ...listOf("7", [widget(`a${n}`, "1"), widget(`b${n}`, "1")]),
        metadata: { resourceVersion: "7", continue: `token-${n}` },
      });
    };
    handler = fresh;
    await assert.rejects(
      newClient({ maxListItems: 100 }).list(widgets, { namespace: "ns" }),
      (err: unknown) => err instanceof KubeDecodeError && /more than 100 objects/.test(err.message),
    );
    assert.equal(n, 51, "a page of two objects past the bound");

    n = 0;
    await assert.rejects(
      newClient({ maxListBytes: 50_000 }).list(widgets, { namespace: "ns" }),
      /the list's pages are larger than 50000 bytes together/,
    );
    assert.ok(n > 10 && n < 1000, `${n} pages`);

    n = 0;
    handler = (req, res) => setTimeout(() => fresh(req, res), 50);
    const slow = newClient({ listTimeoutMs: 1_000 });
    const arrived = seen.length;
    await assert.rejects(
      slow.list(widgets, { namespace: "ns" }),
      /the list did not end within 1000 ms \(\d+ pages, \d+ objects so far\)/,
    );
    assert.ok(n < 25, `${n} pages of 50 ms each in a second`);
    // the page under way at the deadline reaches the server here, not in the next test's record
    await eventually("every page sent arrived", () => assert.equal(seen.length - arrived, slow.requests));
  });

  it("lists in one go only once when the continue token expires again", bounded, async () => {
    handler = (_req, res, url) => {
      if (url.searchParams.get("continue") !== null) json(res, 410, status(410, "Expired", "continue expired"));
      else json(res, 200, { ...listOf("7", [widget("a", "1")]), metadata: { resourceVersion: "7", continue: "next" } });
    };
    await assert.rejects(newClient().list(widgets, { namespace: "ns", limit: 1 }), (err: unknown) => {
      assert.ok(err instanceof KubeApiError);
      assert.equal(err.code, 410);
      return true;
    });
    assert.deepEqual(
      seen.map((s) => `limit=${s.url.searchParams.get("limit")} continue=${s.url.searchParams.get("continue")}`),
      ["limit=1 continue=null", "limit=1 continue=next", "limit=null continue=null", "limit=null continue=next"],
    );
  });

  it("ends a list when its signal aborts", bounded, async () => {
    handler = () => {}; // never answers
    const abort = new AbortController();
    const listing = newClient().list(widgets, { namespace: "ns" }, abort.signal);
    await eventually("list sent", () => assert.equal(seen.length, 1));
    abort.abort(new Error("stopped"));
    await assert.rejects(listing, /stopped|aborted/);
  });

  it("keeps a request and its 429 retries within its one deadline", bounded, async () => {
    handler = (_req, res) => json(res, 429, status(429, "TooManyRequests", "later"), { "retry-after": "2" });
    const client = newClient({ timeoutMs: 1_000 });
    await assert.rejects(
      client.request("GET", "/busy"),
      (err: unknown) => err instanceof KubeApiError && err.code === 429,
    );
    assert.equal(seen.length, 1, "a wait of 2 s does not fit in a deadline of 1 s: the 429 is the answer");

    // slow 429s: each retry has what is left of the deadline, not a deadline of its own
    seen.length = 0;
    handler = (_req, res) =>
      setTimeout(() => json(res, 429, status(429, "TooManyRequests", "later"), { "retry-after": "0" }), 400);
    // (the 429 when one comes right at the deadline)
    await assert.rejects(client.request("GET", "/busy"), /no complete answer from .* within 1000 ms|429/);
    assert.ok(seen.length <= 3, `${seen.length} attempts of 400 ms each`);
  });

  it("waits a second on a 429 whose retry hint is no usable number, not at once", bounded, async () => {
    // as JSON text: 1e400 is Infinity once parsed
    for (const hint of ["-5", '"soon"', "1e400"]) {
      seen.length = 0;
      handler = (_req, res) => {
        res.writeHead(429, { "content-type": "application/json" });
        res.end(`{"kind":"Status","status":"Failure","code":429,"details":{"retryAfterSeconds":${hint}}}`);
      };
      await assert.rejects(newClient({ timeoutMs: 1_500 }).request("GET", "/busy"), /429 TooManyRequests/);
      assert.ok(seen.length <= 2, `${seen.length} requests in 1.5 s with retryAfterSeconds ${hint}`);
    }
  });
});

describe("KubeClient.gated", () => {
  it("asks the gate again right before sending: a write that waited in the rate limiter is refused", async () => {
    handler = (_req, res) => json(res, 201, { ok: true });
    const client = newClient({ qps: 5, burst: 1 });
    const observed: string[] = [];
    client.observeRequests((o) => observed.push(`${o.method} ${o.status}`));
    let open = true;
    const gated = client.gated(() => (open ? undefined : new Error("gate closed")));
    await gated.request("POST", "/first"); // takes the only token
    const waiting = gated.request("POST", "/second"); // waits about 200 ms for the next one
    open = false;
    await assert.rejects(waiting, /^Error: gate closed$/);
    assert.deepEqual(
      seen.map((r) => `${r.method} ${r.url.pathname}`),
      ["POST /first"],
    );
    assert.equal(client.requests, 1);
    assert.deepEqual(observed, ["POST 201"]);
  });

  it("lets GETs and watches through a closed gate, composes gates, and counts as its parent", async () => {
    handler = (_req, res, url) => {
      if (url.searchParams.get("watch") === "true") {
        res.writeHead(200, { "content-type": "application/json" });
        res.end();
      } else json(res, 200, {});
    };
    const client = newClient();
    let inner = true;
    const outer = client.gated(() => undefined).gated(() => (inner ? undefined : new Error("inner")));
    await outer.request("PUT", "/a");
    inner = false;
    await assert.rejects(outer.request("PUT", "/b"), /inner/);
    await outer.request("GET", "/c");
    await outer.watch(widgets, { namespace: "ns", resourceVersion: "1" }, () => {}, new AbortController().signal);
    const refusing = client.gated(() => new Error("never"));
    await assert.rejects(refusing.impersonating({ username: "u" }).request("DELETE", "/d"), /never/);
    assert.equal(client.requests, 3, "the PUT, the GET and the watch; refused writes are not counted");
    assert.equal(outer.requests, client.requests);
  });

  it("shares the bearer token with its parent, and closing it leaves the parent open", async () => {
    handler = (_req, res) => json(res, 200, {});
    const client = newClient();
    const gated = client.gated(() => undefined);
    client.setBearerToken("renewed");
    await gated.request("GET", "/a");
    gated.setBearerToken("renewed-again");
    await client.request("GET", "/b");
    assert.deepEqual(
      seen.map((r) => r.headers.authorization),
      ["Bearer renewed", "Bearer renewed-again"],
    );
    gated.close();
    await assert.rejects(gated.request("GET", "/c"), /is closed/);
    await client.request("GET", "/d");
    client.close();
    await assert.rejects(client.gated(() => undefined).request("GET", "/e"), /is closed/);
  });
});

describe("KubeClient connections", () => {
  it("sends a burst over its bounded pool, keeps the connections, and gives watches their own", async () => {
    const sockets = new Set<unknown>();
    const onConnection = (socket: unknown) => sockets.add(socket);
    server.on("connection", onConnection);
    try {
      let releaseWatch = () => {};
      handler = (req, res, url) => {
        if (url.searchParams.get("watch") === "true") {
          res.writeHead(200, { "content-type": "application/json" });
          res.flushHeaders();
          releaseWatch = () => res.end();
          return;
        }
        setTimeout(() => json(res, 200, { path: req.url }), 5);
      };
      const client = newClient({ maxConnections: 2 });
      const watching = client.watch(
        widgets,
        { namespace: "ns", resourceVersion: "1" },
        () => {},
        new AbortController().signal,
      );
      await eventually("watch open", () => assert.equal(sockets.size, 1));
      // the watch holds its connection: requests still have their two
      await Promise.all(Array.from({ length: 20 }, (_, i) => client.request("GET", `/burst-${i}`)));
      assert.equal(sockets.size, 3, "one for the watch, two for twenty requests");
      await Promise.all(Array.from({ length: 10 }, (_, i) => client.request("GET", `/again-${i}`)));
      assert.equal(sockets.size, 3, "the pool's connections were kept for the next burst");
      releaseWatch();
      await watching;
    } finally {
      server.off("connection", onConnection);
    }
  });

  it("asks the gate again once a connection is free: a write that waited for one is refused, unsent", async () => {
    let answerSlow = () => {};
    handler = (_req, res, url) => {
      if (url.pathname === "/slow") answerSlow = () => json(res, 200, {});
      else json(res, 201, {});
    };
    const client = newClient({ maxConnections: 1 });
    let open = true;
    const gated = client.gated(() => (open ? undefined : new Error("gate closed")));
    const slow = client.request("GET", "/slow");
    await eventually("slow request in", () => assert.equal(seen.length, 1));
    const waiting = gated.request("POST", "/write"); // passes the gate, then waits for the connection
    await new Promise((resolve) => setTimeout(resolve, 50));
    open = false;
    answerSlow();
    await slow;
    await assert.rejects(waiting, /^Error: gate closed$/);
    await client.request("GET", "/after");
    assert.deepEqual(
      seen.map((r) => `${r.method} ${r.url.pathname}`),
      ["GET /slow", "GET /after"],
    );
    assert.equal(client.requests, 2, "the refused write is not counted");
  });
});

describe("KubeClient.watch", () => {
  it("decodes events split anywhere, even inside a character", async () => {
    const stream = Buffer.from(
      `${[
        { type: "ADDED", object: { ...widget("ä", "1"), spec: { text: "日本" } } },
        {
          type: "BOOKMARK",
          object: { kind: "Widget", apiVersion: "example.com/v1", metadata: { resourceVersion: "5" } },
        },
        { type: "DELETED", object: widget("ä", "6") },
      ]
        .map((e) => JSON.stringify(e))
        .join("\n")}\n`,
    );
    handler = (_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      // one byte at a time: every multi-byte character arrives split
      let i = 0;
      const next = () => {
        if (i >= stream.length) return res.end();
        res.write(stream.subarray(i, i + 1));
        i++;
        setImmediate(next);
      };
      next();
    };
    const events: string[] = [];
    await newClient().watch(
      widgets,
      { namespace: "ns", resourceVersion: "1" },
      (e) => events.push(`${e.type}:${e.object.metadata.name ?? e.object.metadata.resourceVersion}`),
      new AbortController().signal,
    );
    assert.deepEqual(events, ["ADDED:ä", "BOOKMARK:5", "DELETED:ä"]);
    const url = seen[0]?.url;
    assert.equal(url?.pathname, "/apis/example.com/v1/namespaces/ns/widgets");
    assert.equal(url?.searchParams.get("watch"), "true");
    assert.equal(url?.searchParams.get("allowWatchBookmarks"), "true");
    assert.equal(url?.searchParams.get("resourceVersion"), "1");
  });

  it("rejects with 410 from an ERROR event in the stream", async () => {
    handler = (_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.write(`${JSON.stringify({ type: "ADDED", object: widget("a", "2") })}\n`);
      res.write(
        `${JSON.stringify({ type: "ERROR", object: status(410, "Expired", "too old resource version: 1 (5)") })}\n`,
      );
      // the server would keep the stream open; the client must not wait for its end
    };
    const events: string[] = [];
    await assert.rejects(
      newClient().watch(widgets, { resourceVersion: "1" }, (e) => events.push(e.type), new AbortController().signal),
      (err: unknown) => {
        assert.ok(err instanceof KubeApiError);
        assert.equal(err.code, 410);
        assert.equal(err.message, "GET /apis/example.com/v1/widgets: 410 Expired: too old resource version: 1 (5)");
        return true;
      },
    );
    assert.deepEqual(events, ["ADDED"]);
  });

  it("retries a 429 before the stream starts, and rejects on other statuses", async () => {
    let calls = 0;
    handler = (_req, res) => {
      calls++;
      if (calls === 1)
        json(res, 429, status(429, "TooManyRequests", "storage is (re)initializing"), { "retry-after": "0" });
      else if (calls === 2) res.writeHead(200, { "content-type": "application/json" }).end();
      else json(res, 403, status(403, "Forbidden", "no"));
    };
    const client = newClient();
    await client.watch(widgets, { resourceVersion: "1" }, () => {}, new AbortController().signal);
    assert.equal(calls, 2);
    await assert.rejects(
      client.watch(widgets, { resourceVersion: "1" }, () => {}, new AbortController().signal),
      (err: unknown) => err instanceof KubeApiError && err.code === 403,
    );
  });

  it("rejects when the connection breaks mid-stream and resolves when aborted", async () => {
    handler = (_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.write(`${JSON.stringify({ type: "ADDED", object: widget("a", "2") })}\n`);
      setTimeout(() => res.socket?.destroy(), 20);
    };
    const client = newClient();
    await assert.rejects(
      client.watch(widgets, { resourceVersion: "1" }, () => {}, new AbortController().signal),
      /closed before the stream ended|socket hang up|aborted/,
    );

    handler = (_req, res) => res.writeHead(200, { "content-type": "application/json" }).flushHeaders();
    const abort = new AbortController();
    const watching = client.watch(widgets, { resourceVersion: "1" }, () => {}, abort.signal);
    setTimeout(() => abort.abort(), 50);
    await watching;
  });

  it("rejects with what onEvent threw", async () => {
    handler = (_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.write(`${JSON.stringify({ type: "ADDED", object: widget("a", "2") })}\n`);
    };
    await assert.rejects(
      newClient().watch(
        widgets,
        { resourceVersion: "1" },
        () => {
          throw new Error("consumer failed");
        },
        new AbortController().signal,
      ),
      /consumer failed/,
    );
  });
});

/** A fake server for one informer: lists come from `lists` in turn (the last repeats), watches from `watches`. */
function scriptInformer(lists: Array<() => [number, unknown]>, watches: Array<(res: ServerResponse) => void>) {
  const counts = { list: 0, watch: 0 };
  handler = (_req, res, url) => {
    if (url.searchParams.get("watch") === "true") {
      const script = watches[Math.min(counts.watch, watches.length - 1)];
      counts.watch++;
      res.writeHead(200, { "content-type": "application/json" });
      script?.(res);
      return;
    }
    const script = lists[Math.min(counts.list, lists.length - 1)];
    counts.list++;
    const [code, body] = script?.() ?? [500, status(500, "InternalError", "no script")];
    json(res, code, body);
  };
  return counts;
}

function event(type: string, object: unknown): string {
  return `${JSON.stringify({ type, object })}\n`;
}

describe("Informer (scripted server)", () => {
  function recorded(informer: Informer): string[] {
    const events: string[] = [];
    informer.addHandlers({
      add: (o) => events.push(`add:${o.metadata.name}:${o.metadata.resourceVersion}`),
      update: (p, o) =>
        events.push(`update:${o.metadata.name}:${p.metadata.resourceVersion}->${o.metadata.resourceVersion}`),
      delete: (o) => events.push(`delete:${o.metadata.name}`),
    });
    return events;
  }

  it("relists after a 410 and emits only the differences", async () => {
    const counts = scriptInformer(
      [
        () => [
          200,
          listOf("10", [widget("same", "1"), widget("changed", "2"), widget("gone", "3"), widget("reborn", "4")]),
        ],
        () => [
          200,
          listOf("20", [
            widget("same", "1"),
            widget("changed", "12"),
            widget("reborn", "15", "uid-new"),
            widget("new", "16"),
          ]),
        ],
      ],
      [
        (res) => {
          // a MODIFIED with an unchanged resourceVersion is no update
          res.write(event("MODIFIED", widget("same", "1")));
          res.write(event("ERROR", status(410, "Expired", "too old")));
        },
        (res) => res.write(event("ADDED", widget("later", "21"))),
      ],
    );
    const informer = new Informer(newClient(), widgets, { namespace: "ns" });
    const events = recorded(informer);
    informer.start();
    informers.push(informer);
    await informer.waitForSync(2000);
    await eventually("relisted and watching again", () => assert.ok(events.includes("add:later:21")), 5000);
    assert.deepEqual(events.slice(0, 4), ["add:same:1", "add:changed:2", "add:gone:3", "add:reborn:4"]);
    assert.deepEqual(events.slice(4), [
      "update:changed:2->12",
      "delete:gone",
      "delete:reborn",
      "add:reborn:15",
      "add:new:16",
      "add:later:21",
    ]);
    assert.equal(counts.list, 2);
    assert.equal(informer.failing, false);
    assert.equal(informer.get("reborn", "ns")?.metadata.uid, "uid-new");
    assert.equal(informer.get("reborn", "ns")?.kind, "Widget");
    const url = seen.find((s) => s.url.searchParams.get("watch") === "true")?.url;
    const timeout = Number(url?.searchParams.get("timeoutSeconds"));
    assert.ok(timeout >= 240 && timeout <= 360, `timeoutSeconds ${timeout}`);
    assert.equal(url?.searchParams.get("resourceVersion"), "10");
  });

  it("re-watches from the last bookmark when a watch ends", async () => {
    scriptInformer(
      [() => [200, listOf("10", [])]],
      [
        (res) => {
          res.write(
            event("BOOKMARK", { kind: "Widget", apiVersion: "example.com/v1", metadata: { resourceVersion: "33" } }),
          );
          res.end();
        },
        () => {},
      ],
    );
    const informer = new Informer(newClient(), widgets);
    informer.start();
    informers.push(informer);
    await eventually("second watch", () =>
      assert.deepEqual(
        seen
          .filter((s) => s.url.searchParams.get("watch") === "true")
          .map((s) => s.url.searchParams.get("resourceVersion")),
        ["10", "33"],
      ),
    );
  });

  it("backs off while listing fails, says so, and recovers", async () => {
    const errors: unknown[] = [];
    scriptInformer(
      [
        () => [500, status(500, "InternalError", "etcd is sad")],
        () => [500, status(500, "InternalError", "etcd is still sad")],
        () => [200, listOf("10", [widget("a", "1")])],
      ],
      [() => {}],
    );
    const informer = new Informer(newClient(), widgets, { onError: (e) => errors.push(e) });
    informer.start();
    informers.push(informer);
    await eventually("failing", () => assert.equal(informer.failing, true), 2000);
    assert.match(String(informer.lastError), /500 InternalError: etcd is sad/);
    const started = Date.now();
    await informer.waitForSync(5000);
    // 200 ms and 400 ms, each jittered by ±20 %
    assert.ok(Date.now() - started >= 250, "backed off between attempts");
    assert.equal(informer.failing, false);
    assert.equal(errors.length, 2);
    assert.deepEqual(
      informer.list().map((o) => o.metadata.name),
      ["a"],
    );
  });

  it("does not spin on watches that end at once", async () => {
    scriptInformer([() => [200, listOf("10", [])]], [(res) => res.end()]);
    const informer = new Informer(newClient(), widgets);
    informer.start();
    await informer.waitForSync(2000);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await informer.stop();
    const watches = seen.filter((s) => s.url.searchParams.get("watch") === "true").length;
    // 200 + 400 ms of backoff fit in the second, 800 more do not
    assert.ok(watches >= 2 && watches <= 4, `${watches} watches in 1s`);
  });

  it("does not spin on watches that send a bookmark and end", async () => {
    const bookmark = { kind: "Widget", apiVersion: "example.com/v1", metadata: { resourceVersion: "11" } };
    const counts = scriptInformer([() => [200, listOf("10", [])]], [(res) => res.end(event("BOOKMARK", bookmark))]);
    const informer = new Informer(newClient(), widgets);
    informer.start();
    informers.push(informer);
    await informer.waitForSync(2000);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    // 200 + 400 + 800 ms of backoff: three or four watches in the time
    assert.ok(counts.watch <= 6, `${counts.watch} watches in 1.5 s`);
    assert.equal(counts.list, 1);
  });

  it("caps a server's huge retry hint at its longest backoff rather than retrying at once", async () => {
    const busy = { ...status(503, "ServiceUnavailable", "busy"), details: { retryAfterSeconds: 3e6 } };
    const counts = scriptInformer([() => [503, busy]], [() => {}]);
    const informer = new Informer(newClient(), widgets);
    informer.start();
    informers.push(informer);
    await eventually("failing", () => assert.equal(informer.failing, true), 2000);
    // 3e6 s is more than a timer holds (it would fire at once): it waits 30 s instead
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal(counts.list, 1);
  });

  it("relists at once after one 410, then backs off while every list answers 410, and says so", async () => {
    const counts = scriptInformer([() => [410, status(410, "Expired", "too old")]], [() => {}]);
    const informer = new Informer(newClient(), widgets);
    informer.start();
    informers.push(informer);
    await eventually("failing", () => assert.equal(informer.failing, true), 2000);
    assert.match(String(informer.lastError), /410 Expired: too old/);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    // at once, then after 200, 400 and 800 ms of backoff (each jittered by ±20 %)
    assert.ok(counts.list >= 2 && counts.list <= 7, `${counts.list} lists in 1.5 s`);
  });

  it("backs off while every watch from a fresh list answers 410", async () => {
    const counts = scriptInformer(
      [() => [200, listOf("10", [])]],
      [(res) => res.end(event("ERROR", status(410, "Expired", "too old resource version")))],
    );
    const informer = new Informer(newClient(), widgets);
    informer.start();
    informers.push(informer);
    await informer.waitForSync(2000);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.ok(counts.list <= 7 && counts.watch <= 7, `${counts.list} lists, ${counts.watch} watches in 1.5 s`);
  });

  it("stops while waiting for a list that does not come", async () => {
    handler = () => {};
    const informer = new Informer(newClient(), widgets);
    informer.start();
    await eventually("list sent", () => assert.equal(seen.length, 1));
    const started = Date.now();
    await informer.stop();
    assert.ok(Date.now() - started < 500);
    await assert.rejects(informer.waitForSync(50), /informer for widgets\.example\.com\/v1 not synced within 50 ms/);
  });
});
