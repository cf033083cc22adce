// A list counts against its cache budget as it is read, chunk by chunk: a paged list that would pass
// the budget ends at the page that does, and one huge page is cut before it is all in.
import assert from "node:assert/strict";
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { CacheBudget, CacheFullError } from "../../src/kube/cache-budget.ts";
import { KubeClient, type ResourceRef } from "../../src/kube/client.ts";
import { Informer } from "../../src/kube/informer.ts";
import { ListCeiling, ListCeilingError } from "../../src/kube/list-ceiling.ts";
import { eventually } from "../support/eventually.ts";

const widgets: ResourceRef = { group: "example.com", version: "v1", resource: "widgets", namespaced: true };
const MiB = 1024 * 1024;

/** A WidgetList of about `mib` MiB (objects of 64 KiB each), continued by `next` when given. */
function page(mib: number, from: number, next?: string): Buffer {
  const padding = "x".repeat(64 * 1024);
  const items = Array.from({ length: mib * 16 }, (_, i) => ({
    metadata: { name: `w${from + i}`, namespace: "ns", uid: `u${from + i}`, resourceVersion: "1" },
    spec: { padding },
  }));
  const metadata = { resourceVersion: "5", ...(next ? { continue: next } : {}) };
  return Buffer.from(JSON.stringify({ kind: "WidgetList", apiVersion: "example.com/v1", metadata, items }));
}

type Served = { pages: number; cut: number };
let server: Server;
let served: Served = { pages: 0, cut: 0 };
let answer: (url: URL, res: ServerResponse) => void = () => undefined;

function send(res: ServerResponse, body: Buffer): void {
  served.pages++;
  res.on("close", () => {
    if (!res.writableFinished) served.cut++;
  });
  res.writeHead(200, { "content-type": "application/json" });
  res.end(body);
}

function client(): KubeClient {
  const port = (server.address() as AddressInfo).port;
  return KubeClient.fromKubeconfigText(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "http://127.0.0.1:${port}", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`);
}

/** Starts an informer on the budget, waits for its first failure, and stops it. */
async function firstFailure(budget: CacheBudget): Promise<unknown> {
  const c = client();
  const informer = new Informer(c, widgets, { namespace: "ns", budget });
  informer.start();
  try {
    await eventually("the list failed", () => assert.ok(informer.failing));
    return informer.lastError;
  } finally {
    await informer.stop();
    c.close();
  }
}

before(async () => {
  server = createServer((req, res) => answer(new URL(req.url ?? "/", "http://x"), res));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
});
after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

describe("a list counted against its cache budget as it is read", () => {
  it("a paged list ends at the page that would pass the budget, with the budget's error", async () => {
    // the first page far larger than loopback's socket buffers can take in (they grow to several
    // MiB): an 8 MiB one was once written into them whole before the client stopped reading it,
    // and the server never saw the page cut
    const pages = [page(48, 0, "p2"), page(8, 800, "p3"), page(8, 1000, "p4"), page(8, 1200)];
    served = { pages: 0, cut: 0 };
    answer = (url, res) => {
      const at = ["", "p2", "p3", "p4"].indexOf(url.searchParams.get("continue") ?? "");
      send(res, pages[at] as Buffer);
    };
    const budget = new CacheBudget({ maxObjects: 50_000, maxBytes: 4 * MiB }, "tenant x's caches (--flags)");
    const err = await firstFailure(budget);
    assert.ok(err instanceof CacheFullError, String(err));
    assert.match(
      err.message,
      /^tenant x's caches \(--flags\) would hold 0 objects, 5 MiB \(5 MiB of them lists still being read\)/,
    );
    assert.equal(served.pages, 1, "no page after the one that passed the budget was asked for");
    // the server hears of the cut when the closed connection reaches it, maybe after the informer failed
    await eventually("the server saw the page cut", () =>
      assert.equal(served.cut, 1, "that page was not read to its end"),
    );
    assert.deepEqual([budget.objects, budget.bytes, budget.listingBytes], [0, 0, 0]);
  });

  it("lists of budgets with room fail at the ceiling all budgets' lists share, and give it back", async () => {
    const huge = page(32, 0);
    served = { pages: 0, cut: 0 };
    answer = (_url, res) => send(res, huge);
    const ceiling = new ListCeiling(8 * MiB, "--ceiling-flag");
    const limits = { maxObjects: 50_000, maxBytes: 64 * MiB };
    const err = await firstFailure(new CacheBudget(limits, "tenant x's caches", ceiling));
    assert.ok(err instanceof ListCeilingError, String(err));
    assert.match(err.message, /lists being read for one namespace's bindings would hold more than half of the 8 MiB/);
    await eventually("the server saw the page cut", () =>
      assert.ok(served.cut >= 1, "the page was not read to its end"),
    );
    assert.equal(ceiling.bytes, 0, "given back");
  });

  it("one huge page is cut as soon as its chunks pass the budget; a list that fits is cached", async () => {
    const huge = page(32, 0);
    served = { pages: 0, cut: 0 };
    answer = (_url, res) => send(res, huge);
    const budget = new CacheBudget({ maxObjects: 50_000, maxBytes: 4 * MiB }, "tenant x's caches (--flags)");
    assert.ok((await firstFailure(budget)) instanceof CacheFullError);
    await eventually("the server saw the page cut", () =>
      assert.ok(served.cut >= 1, "the huge page was not read to its end"),
    );
    assert.equal(budget.listingBytes, 0);

    const small = page(2, 0);
    answer = (url, res) => {
      if (url.searchParams.get("watch") === "true") return; // a watch that stays open, quiet
      send(res, small);
    };
    const c = client();
    const informer = new Informer(c, widgets, { namespace: "ns", budget });
    informer.start();
    await informer.waitForSync(10_000);
    assert.equal(informer.list().length, 32);
    assert.ok(budget.bytes > 2 * MiB && budget.bytes < 3 * MiB, String(budget.bytes));
    assert.equal(budget.listingBytes, 0);
    server.closeAllConnections();
    await informer.stop();
    c.close();
  });
});
