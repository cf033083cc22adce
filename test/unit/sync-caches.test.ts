// What the sync's caches keep (no managedFields; no last-applied annotation where lean), its own
// writes read over a cache that lags, and the queue's live lane ahead of a first list's backlog.
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { pino } from "pino";
import { KubeClient, type KubeObject, type ResourceRef } from "../../src/kube/client.ts";
import { intern, lastAppliedAnnotation, leanObject, withoutManagedFields } from "../../src/kube/lean.ts";
import { InformerRegistry } from "../../src/sync/informers.ts";
import { compareVersions, RecentWrites } from "../../src/sync/mirror/recent-writes.ts";
import { WorkQueue } from "../../src/sync/queue.ts";
import { eventually } from "../support/eventually.ts";

const widgets: ResourceRef = { group: "example.com", version: "v1", resource: "widgets", namespaced: true };
const managedFields = [{ manager: "kubectl", operation: "Update", fieldsV1: { "f:spec": { "f:size": {} } } }];

function widget(name: string, rv: string): KubeObject {
  return {
    apiVersion: "example.com/v1",
    kind: "Widget",
    metadata: {
      name,
      namespace: "ns",
      uid: `uid-${name}`,
      resourceVersion: rv,
      managedFields,
      annotations: { [lastAppliedAnnotation]: '{"spec":{"size":1}}', note: "kept" },
    },
    spec: { size: 1 },
  };
}

describe("the sync's caches", () => {
  let server: Server;
  let client: KubeClient;
  before(async () => {
    server = createServer((req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      if (req.url?.includes("watch=true")) {
        const changed = { ...widget("b", "12"), spec: { size: 2 } };
        res.write(`${JSON.stringify({ type: "ADDED", object: changed })}\n`);
        return; // held open: the informer stops it
      }
      const { apiVersion: _a, kind: _k, ...item } = widget("a", "10");
      res.end(
        JSON.stringify({
          apiVersion: "example.com/v1",
          kind: "WidgetList",
          metadata: { resourceVersion: "11" },
          items: [item],
        }),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as AddressInfo).port;
    client = KubeClient.fromKubeconfigText(
      `apiVersion: v1
clusters: [{name: c, cluster: {server: "http://127.0.0.1:${port}", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`,
    );
  });
  after(() => {
    client.close();
    server.closeAllConnections();
    server.close();
  });

  for (const lean of [false, true]) {
    it(`keeps no managedFields${lean ? " and no last-applied annotation (lean)" : ""}, listed or watched`, async () => {
      const registry = new InformerRegistry(client, pino({ level: "silent" }));
      const { informer } = registry.acquire(widgets, { lean });
      try {
        await eventually(
          "listed and watched",
          () => assert.ok(informer.get("b", "ns"), String(informer.lastError)),
          5000,
        );
        for (const obj of informer.list()) {
          assert.equal(obj.metadata.managedFields, undefined, obj.metadata.name);
          assert.equal(obj.metadata.annotations?.note, "kept");
          assert.equal(lastAppliedAnnotation in (obj.metadata.annotations ?? {}), !lean, obj.metadata.name);
        }
        assert.deepEqual(informer.get("b", "ns")?.spec, { size: 2 });
      } finally {
        await registry.stopAll();
      }
    });
  }

  it("leanObject leaves the object it is given alone and drops an emptied annotations map", () => {
    const obj = widget("a", "1");
    obj.metadata.annotations = { [lastAppliedAnnotation]: "{}" };
    const lean = leanObject(obj);
    assert.equal(lean.metadata.annotations, undefined);
    assert.ok(obj.metadata.managedFields && obj.metadata.annotations?.[lastAppliedAnnotation]);
  });
});

describe("repeated strings in the caches", () => {
  // as a list answer arrives: every object parsed from its own JSON, so no two share a string
  const parsed = (count: number) =>
    Array.from(
      { length: count },
      (_, i) =>
        JSON.parse(
          JSON.stringify({
            apiVersion: "b0.bench.klutch-bind.dev/v1",
            kind: "Widget",
            metadata: {
              name: `w-${i}`,
              namespace: `klutch-bind-0123456789abcdef-${i % 5}`,
              uid: `00000000-0000-0000-0000-${String(i).padStart(12, "0")}`,
              labels: { "bind.klutch.dev/binding": "6a1f0e2a-1111-2222-3333-444455556666", team: "orders-platform" },
              annotations: { "bind.klutch.dev/consumer-namespace": `team-orders-namespace-${i % 5}` },
              finalizers: ["bind.klutch.dev/sync"],
            },
            spec: { size: i },
          }),
        ) as KubeObject,
    );

  it("keeps every value as it was", () => {
    const [obj] = parsed(1) as [KubeObject];
    assert.deepEqual(withoutManagedFields(obj), obj);
    assert.deepEqual(leanObject(obj), obj);
    assert.equal(intern("x".repeat(300)), "x".repeat(300));
  });

  it("holds one copy of the strings many objects repeat", () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const heapOf = (make: () => unknown[]) => {
      gc();
      const before = process.memoryUsage().heapUsed;
      const kept = make();
      gc();
      const used = process.memoryUsage().heapUsed - before;
      assert.ok(kept.length > 0);
      return used;
    };
    const count = 20_000;
    const plain = heapOf(() => parsed(count));
    const cached = heapOf(() => parsed(count).map(leanObject));
    // measured: about 0.6 of the plain size; without interning the copies are a little larger
    assert.ok(
      cached < plain * 0.8,
      `cached ${Math.round(cached / 1024)} KiB, as parsed ${Math.round(plain / 1024)} KiB`,
    );
  });
});

describe("RecentWrites", () => {
  const at = (rv: string) => ({
    apiVersion: "v1",
    kind: "W",
    metadata: { name: "a", namespace: "ns", resourceVersion: rv },
  });

  it("gives its write while the cache is older or empty, the cache once it caught up", () => {
    const written = new RecentWrites();
    written.note(at("20"));
    assert.equal(written.get(undefined, "a", "ns")?.metadata.resourceVersion, "20");
    assert.equal(written.get(at("19"), "a", "ns")?.metadata.resourceVersion, "20");
    assert.equal(written.get(at("21"), "a", "ns")?.metadata.resourceVersion, "21");
    assert.equal(written.size, 0);
  });

  it("forgets a write on its own event or a later deletion, not on an earlier object's deletion", () => {
    const written = new RecentWrites();
    written.note(at("20"));
    written.seen(at("15"), true); // the object before ours, deleted before we created
    assert.equal(written.size, 1);
    written.seen(at("25"), true);
    assert.equal(written.get(undefined, "a", "ns"), undefined);
    written.note(at("30"));
    written.seen(at("30"), false);
    assert.equal(written.size, 0);
  });

  it("forgets a write when the written object itself is deleted, at an older version (a relist's word)", () => {
    const written = new RecentWrites();
    const withUid = (rv: string, uid: string) => ({ ...at(rv), metadata: { ...at(rv).metadata, uid } });
    written.note(withUid("20", "u1"));
    written.seen(withUid("15", "u0"), true); // an earlier object of the name: the write holds
    assert.equal(written.size, 1);
    written.seen(withUid("15", "u1"), true); // ours, deleted while the watch was away
    assert.equal(written.get(undefined, "a", "ns"), undefined);
  });

  it("says an event is its write's own only for that very version of that very object", () => {
    const written = new RecentWrites();
    const withUid = (rv: string, uid: string) => ({ ...at(rv), metadata: { ...at(rv).metadata, uid } });
    written.note(withUid("20", "u1"));
    assert.equal(written.seen(withUid("19", "u1"), false), false, "an older version is news");
    assert.equal(written.seen(withUid("20", "u2"), false), false, "another object of the same name is news");
    written.note(withUid("20", "u1"));
    assert.equal(written.seen(withUid("20", "u1"), true), false, "a deletion is news");
    written.note(withUid("20", "u1"));
    assert.equal(written.seen(withUid("21", "u1"), false), false, "someone else's later change is news");
    written.note(withUid("30", "u1"));
    assert.equal(written.seen(withUid("30", "u1"), false), true);
    assert.equal(written.seen(withUid("30", "u1"), false), false, "said once: the write is forgotten");
  });

  it("compares resourceVersions as numbers, and only numbers", () => {
    assert.equal(compareVersions(at("9"), at("10")), -1);
    assert.equal(compareVersions(at("10"), at("9")), 1);
    assert.equal(compareVersions(at("x"), at("x")), 0);
    assert.equal(compareVersions(at("x1"), at("10")), undefined);
  });
});

describe("WorkQueue lanes", () => {
  it("takes keys of the live lane before the backlog, and promotes a backlog key added live", async () => {
    const runs: string[] = [];
    const queue = new WorkQueue({ workers: 1, process: async (key) => void runs.push(key) });
    for (let i = 0; i < 5; i++) queue.add(`old-${i}`, "backlog");
    queue.add("new");
    queue.add("old-3", "live");
    queue.add("new", "backlog"); // already live: stays live
    assert.equal(queue.depth, 6);
    queue.start();
    await eventually("all run", () => assert.equal(runs.length, 6));
    await sleep(10);
    await queue.stop();
    assert.deepEqual(runs, ["new", "old-3", "old-0", "old-1", "old-2", "old-4"]);
  });

  it("takes thousands of keys in order", async () => {
    const runs: string[] = [];
    const queue = new WorkQueue({ workers: 1, process: async (key) => void runs.push(key) });
    const keys = Array.from({ length: 5000 }, (_, i) => `k${i}`);
    for (const k of keys) queue.add(k, "backlog");
    queue.start();
    await eventually("all run", () => assert.equal(runs.length, keys.length), 10_000);
    await queue.stop();
    assert.deepEqual(runs, keys);
  });
});
