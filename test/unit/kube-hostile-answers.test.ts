// Answers a real API server never gives but a proxy, a broken or a hostile "app cluster" may:
// each must be an error naming what was wrong, never an empty list, never the body's text.
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, afterEach, before, describe, it } from "node:test";
import { KubeApiError, KubeClient, KubeDecodeError, type KubeObject, type ResourceRef } from "../../src/kube/client.ts";
import { Informer } from "../../src/kube/informer.ts";
import { eventually } from "../support/eventually.ts";

const widgets: ResourceRef = { group: "example.com", version: "v1", resource: "widgets", namespaced: true };
const secret = "AKIAIOSFODNN7EXAMPLE";

type Answer = (req: IncomingMessage, res: ServerResponse, url: URL) => void;
let answer: Answer = (_req, res) => res.writeHead(500).end();
let server: Server;
const clients: KubeClient[] = [];

function client(options: { maxResponseBytes?: number; maxWatchEventBytes?: number } = {}): KubeClient {
  const port = (server.address() as AddressInfo).port;
  const c = KubeClient.fromKubeconfigText(
    `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "http://127.0.0.1:${port}", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`,
    options,
  );
  clients.push(c);
  return c;
}

function send(res: ServerResponse, status: number, type: string, body: string | Buffer): void {
  res.writeHead(status, { "content-type": type });
  res.end(body);
}

const item = (name: string) => ({ metadata: { name, namespace: "ns", uid: `u-${name}`, resourceVersion: "1" } });
const list = (items: unknown[]) => ({
  kind: "WidgetList",
  apiVersion: "example.com/v1",
  metadata: { resourceVersion: "5" },
  items,
});

before(async () => {
  server = createServer((req, res) => answer(req, res, new URL(req.url ?? "/", "http://x")));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
});
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});
after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

/** Each answer a list must refuse, with what its error must say. */
const brokenLists: Array<[string, Answer, RegExp]> = [
  [
    "a sign-in page with 200",
    (_q, r) => send(r, 200, "text/html", `<html><form>sign in</form><!-- ${secret} --></html>`),
    /expected JSON, the answer was text\/html/,
  ],
  ["a JSON body without kind and items", (_q, r) => send(r, 200, "application/json", "{}"), /expected a list/],
  [
    "a list without items",
    (_q, r) => send(r, 200, "application/json", JSON.stringify({ ...list([]), items: undefined })),
    /no items array/,
  ],
  [
    "a list of another kind",
    (_q, r) =>
      send(r, 200, "application/json", JSON.stringify({ ...list([item("a")]), kind: "SecretList", apiVersion: "v1" })),
    /expected a list of example\.com\/v1/,
  ],
  [
    "items of another kind",
    (_q, r) => send(r, 200, "application/json", JSON.stringify(list([{ ...item("a"), kind: "Secret" }]))),
    /items\[0\] is of kind "Secret", expected Widget/,
  ],
  [
    "an item without a name",
    (_q, r) => send(r, 200, "application/json", JSON.stringify(list([{ metadata: {} }]))),
    /items\[0\] has no metadata\.name/,
  ],
  [
    "an item of another namespace",
    (_q, r) =>
      send(r, 200, "application/json", JSON.stringify(list([{ metadata: { ...item("a").metadata, namespace: "x" } }]))),
    /items\[0\] is in another namespace/,
  ],
  [
    "truncated JSON",
    (_q, r) => send(r, 200, "application/json", JSON.stringify(list([item("a")])).slice(0, 40)),
    /not valid JSON/,
  ],
  [
    "bytes that are not UTF-8",
    (_q, r) => send(r, 200, "application/json", Buffer.from([0x7b, 0xff, 0xfe, 0x7d])),
    /not UTF-8/,
  ],
  [
    "a Status of failure with 200",
    (_q, r) =>
      send(
        r,
        200,
        "application/json",
        JSON.stringify({ kind: "Status", apiVersion: "v1", status: "Failure", code: 403, reason: "Forbidden" }),
      ),
    /403 Forbidden/,
  ],
  [
    "an answer over the size limit",
    (_q, r) => send(r, 200, "application/json", JSON.stringify(list([item("a".repeat(200))]))),
    /larger than 100 bytes/,
  ],
];

describe("KubeClient refuses answers that are not Kubernetes JSON", () => {
  for (const [what, broken, says] of brokenLists) {
    it(`list: ${what}`, async () => {
      answer = broken;
      await assert.rejects(
        client({ maxResponseBytes: what.includes("size") ? 100 : undefined }).list(widgets, { namespace: "ns" }),
        (err: unknown) => {
          assert.ok(err instanceof KubeDecodeError || err instanceof KubeApiError, String(err));
          assert.match((err as Error).message, says);
          assert.doesNotMatch((err as Error).message, new RegExp(secret));
          return true;
        },
      );
    });
  }

  it("get: a 404 is absence only when the API server says NotFound in a Status", async () => {
    answer = (_q, r) => send(r, 404, "text/html", `<h1>not here</h1>${secret}`);
    await assert.rejects(client().get(widgets, "a", "ns"), (err: unknown) => {
      assert.ok(err instanceof KubeApiError);
      assert.equal(err.isNotFound, false);
      assert.doesNotMatch(err.message, new RegExp(secret));
      return true;
    });
    answer = (_q, r) =>
      send(
        r,
        404,
        "application/json",
        JSON.stringify({ kind: "Status", apiVersion: "v1", status: "Failure", code: 404, reason: "NotFound" }),
      );
    assert.equal(await client().get(widgets, "a", "ns"), undefined);
  });

  it("get: an object of another name or kind is an error", async () => {
    answer = (_q, r) => send(r, 200, "application/json", JSON.stringify({ kind: "Widget", ...item("b") }));
    await assert.rejects(client().get(widgets, "a", "ns"), /answered with an object named "b"/);
    answer = (_q, r) => send(r, 200, "application/json", JSON.stringify({ apiVersion: "v1", kind: "Status" }));
    await assert.rejects(client().get(widgets, "a", "ns"), KubeDecodeError);
  });

  it("a name or namespace no API server gives (., .., a slash) is an error, and never becomes a path", async () => {
    for (const name of [".", "..", "a/b", "100%"]) {
      answer = (_q, r) => send(r, 200, "application/json", JSON.stringify(list([item("a"), item(name)])));
      await assert.rejects(client().list(widgets, { namespace: "ns" }), /metadata\.name no API server gives/, name);
      const elsewhere = { ...item("a"), metadata: { ...item("a").metadata, namespace: name } };
      answer = (_q, r) => send(r, 200, "application/json", JSON.stringify(list([elsewhere])));
      await assert.rejects(client().list(widgets), /metadata\.namespace no API server gives/, name);
    }
    let asked = 0;
    answer = (_q, r) => {
      asked++;
      send(r, 200, "application/json", JSON.stringify(list([])));
    };
    for (const name of [".", ".."]) {
      await assert.rejects(client().delete(widgets, name, "ns"), /is not a name/);
      await assert.rejects(client().get(widgets, "a", name), /is not a namespace/);
    }
    assert.equal(asked, 0, "no request sent");
  });

  it("/version: a huge answer is cut off at 64 KiB", async () => {
    let sent = 0;
    answer = (_q, r) => {
      r.writeHead(200, { "content-type": "application/json" });
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      const more = () => {
        while (sent < 600 * 1024 * 1024 && r.write(chunk)) sent += chunk.length;
        if (sent < 600 * 1024 * 1024) r.once("drain", more);
      };
      r.on("error", () => {});
      more();
    };
    await assert.rejects(client().serverVersion(), /larger than 65536 bytes/);
    assert.ok(sent < 16 * 1024 * 1024, `read ${sent} bytes of 600 MB`);
  });
});

describe("KubeClient.watch refuses streams that are not watch events", () => {
  const watchCases: Array<[string, (r: ServerResponse) => void, RegExp]> = [
    ["HTML with 200", (r) => send(r, 200, "text/html", "<html>sign in</html>"), /watch answered with text\/html/],
    [
      "a line that is not JSON",
      (r) => send(r, 200, "application/json", `{"type":"ADDED","object":${secret}\n`),
      /not JSON \(\d+ characters\)/,
    ],
    [
      "an endless line",
      (r) => {
        r.writeHead(200, { "content-type": "application/json" });
        r.on("error", () => {});
        const tick = setInterval(() => r.write("x".repeat(64 * 1024)), 1);
        r.on("close", () => clearInterval(tick));
      },
      /larger than 1048576 bytes/,
    ],
    [
      "an object of another kind",
      (r) =>
        send(
          r,
          200,
          "application/json",
          `${JSON.stringify({ type: "ADDED", object: { apiVersion: "v1", kind: "Secret", ...item("a") } })}\n`,
        ),
      /is "v1", expected example\.com\/v1/,
    ],
    [
      "an unknown event type",
      (r) => send(r, 200, "application/json", `${JSON.stringify({ type: "GONE", object: item("a") })}\n`),
      /event of type "GONE"/,
    ],
    [
      "bytes that are not UTF-8",
      (r) =>
        send(
          r,
          200,
          "application/json",
          Buffer.concat([
            Buffer.from('{"type":"ADDED","object":{"x":"'),
            Buffer.from([0xc3, 0x28]),
            Buffer.from('"}}\n'),
          ]),
        ),
      /not UTF-8/,
    ],
  ];
  for (const [what, stream, says] of watchCases) {
    it(what, async () => {
      answer = (_q, r) => stream(r);
      const events: unknown[] = [];
      await assert.rejects(
        client({ maxWatchEventBytes: 1024 * 1024 }).watch(
          widgets,
          { namespace: "ns", resourceVersion: "1", kind: "Widget" },
          (e) => events.push(e),
          new AbortController().signal,
        ),
        (err: unknown) => {
          assert.match(String(err), says);
          assert.doesNotMatch(String(err), new RegExp(secret));
          return true;
        },
      );
      assert.deepEqual(events, []);
    });
  }
});

describe("Informer: a failed relist deletes nothing", () => {
  it("keeps its cache and emits no delete while lists answer with a sign-in page", async () => {
    let broken = false;
    let lists = 0;
    answer = (_q, r, url) => {
      if (url.searchParams.get("watch") === "true") {
        // the watch is cut at once: the informer relists
        r.destroy();
        return;
      }
      lists++;
      if (broken) send(r, 200, "text/html", "<html>please sign in</html>");
      else send(r, 200, "application/json", JSON.stringify(list([item("a"), item("b")])));
    };
    const informer = new Informer(client(), widgets, { namespace: "ns" });
    const deleted: string[] = [];
    informer.addHandlers({ delete: (o: KubeObject) => deleted.push(o.metadata.name) });
    informer.start();
    try {
      await informer.waitForSync(5000);
      broken = true;
      const before = lists;
      await eventually("relisted with the sign-in page", () => assert.ok(lists >= before + 2), 10_000);
      assert.equal(informer.failing, true);
      assert.match(String(informer.lastError), /expected JSON, the answer was text\/html/);
      assert.deepEqual(deleted, []);
      assert.deepEqual(
        informer
          .list()
          .map((o) => o.metadata.name)
          .sort(),
        ["a", "b"],
      );
    } finally {
      await informer.stop();
    }
  });
});

describe("KubeApiError", () => {
  it("keeps a Status message of a hostile server short", async () => {
    answer = (_q, r) =>
      send(
        r,
        500,
        "application/json",
        JSON.stringify({
          kind: "Status",
          apiVersion: "v1",
          status: "Failure",
          code: 500,
          message: "x".repeat(1_000_000),
        }),
      );
    await assert.rejects(client().list(widgets, { namespace: "ns" }), (err: unknown) => {
      assert.ok(err instanceof KubeApiError);
      assert.ok(err.message.length < 1200, `${err.message.length} characters`);
      assert.match(err.message, /… \(1000000 characters\)$/);
      return true;
    });
  });
});
