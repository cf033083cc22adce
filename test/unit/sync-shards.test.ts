import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { pino } from "pino";
import { bindingKey } from "../../src/api/binding-spec.ts";
import { KubeApiError, KubeClient, type KubeObject } from "../../src/kube/client.ts";
import { fenced, NotServedError } from "../../src/sync/replicas/fence.ts";
import { newIdentity } from "../../src/sync/replicas/membership.ts";
import {
  isLive,
  type MemberLease,
  type Observations,
  observe,
  ownerOf,
  planShard,
  rejoinAfterMs,
  renewDeadlineMs,
  type ShardView,
} from "../../src/sync/replicas/shard-assignment.ts";
import { ShardCoordinator } from "../../src/sync/replicas/shards.ts";
import { eventually } from "../support/eventually.ts";
import { loopbackKubeconfig } from "../support/hostile-cluster.ts";

const uids = Array.from({ length: 1000 }, (_, i) => `0000${i}-uid-${i * 7919}`);

function owners(members: string[]): Map<string, string | undefined> {
  return new Map(uids.map((u) => [u, ownerOf(u, members)]));
}

describe("rendezvous hashing of bindings over replicas", () => {
  it("gives every binding one owner, whatever order the replicas are listed in", () => {
    const a = owners(["r1", "r2", "r3"]);
    const b = owners(["r3", "r1", "r2"]);
    assert.deepEqual(a, b);
    assert.equal(ownerOf("x", []), undefined);
  });

  it("spreads bindings evenly enough", () => {
    const counts = new Map<string, number>();
    for (const owner of owners(["r1", "r2", "r3"]).values())
      counts.set(owner ?? "", (counts.get(owner ?? "") ?? 0) + 1);
    for (const [member, n] of counts) assert.ok(n > 270 && n < 400, `${member}: ${n} of 1000`);
  });

  it("moves only the joining replica's share when one joins, and only the leaving one's when one leaves", () => {
    const before = owners(["r1", "r2", "r3"]);
    const joined = owners(["r1", "r2", "r3", "r4"]);
    let moved = 0;
    for (const [uid, owner] of joined) {
      if (owner === before.get(uid)) continue;
      moved++;
      assert.equal(owner, "r4", `${uid} moved from ${before.get(uid)} to ${owner}`);
    }
    assert.ok(moved > 180 && moved < 320, `${moved} of 1000 moved to the fourth replica`);
    const left = owners(["r1", "r3"]);
    for (const [uid, owner] of left) {
      if (before.get(uid) !== "r2") assert.equal(owner, before.get(uid), `${uid} moved though its owner stayed`);
    }
  });
});

function lease(identity: string, serving: string[], version = "1", released = false): MemberLease {
  return { identity, serving, durationMs: 10_000, version, released };
}

describe("shard membership", () => {
  it("counts a replica live while its Lease changed within its duration, as this process saw it", () => {
    const t0 = 1_000_000;
    let seen: Observations = observe(new Map(), [lease("b", [], "5")], t0);
    assert.ok(isLive(lease("b", [], "5"), seen, t0 + 10_000));
    assert.ok(!isLive(lease("b", [], "5"), seen, t0 + 10_001), "unchanged for longer than its duration");
    seen = observe(seen, [lease("b", [], "5")], t0 + 9_000);
    assert.ok(!isLive(lease("b", [], "5"), seen, t0 + 10_001), "seeing it again unchanged does not renew it");
    seen = observe(seen, [lease("b", [], "6")], t0 + 9_500);
    assert.ok(isLive(lease("b", [], "6"), seen, t0 + 19_000), "a change renews it from when it was seen");
    assert.ok(!isLive(lease("b", [], "6", true), seen, t0 + 9_600), "released");
    assert.equal(observe(seen, [], t0).size, 0, "gone from the list: forgotten");
  });

  it("stops everything before the others could see the Lease expire", () => {
    assert.ok(renewDeadlineMs(15_000) < 15_000);
    assert.equal(renewDeadlineMs(15_000), 10_000);
  });

  it("names replicas as Leases may be named, uniquely per start", () => {
    const id = newIdentity("Sync_Pod.7--");
    assert.match(id, /^sync-pod\.7-[a-z0-9]{1,6}$/);
    assert.notEqual(newIdentity("p"), newIdentity("p"));
  });
});

describe("what a replica does about its bindings", () => {
  const now = 5_000_000;
  /** a view at now; every lease seen (changed) at seenAt */
  function view(partial: Partial<ShardView> & Pick<ShardView, "leases" | "bindings">, seenAt = now): ShardView {
    return {
      me: "a",
      observations: observe(new Map(), partial.leases, seenAt),
      now,
      serving: new Set(),
      written: new Set(),
      published: new Set(),
      ...partial,
    };
  }
  const mineWith = (members: string[]) => uids.find((u) => ownerOf(u, members) === "a") ?? "";
  const theirsWith = (members: string[], other: string) => uids.find((u) => ownerOf(u, members) === other) ?? "";

  it("claims a binding that is its own and held by no other live replica, and starts it once the claim was written", () => {
    const x = mineWith(["a", "b"]);
    const leases = [lease("a", []), lease("b", [])];
    const first = planShard(view({ leases, bindings: [x] }));
    assert.deepEqual(first.claim, [x]);
    assert.deepEqual(first.start, []);
    const published = new Set([x]);
    const notYetWritten = planShard(view({ leases, bindings: [x], published }));
    assert.deepEqual([notYetWritten.claim, notYetWritten.start], [[], []], "claimed, not written yet: wait");
    const written = planShard(
      view({ leases: [lease("a", [x]), lease("b", [])], bindings: [x], published, written: published }),
    );
    assert.deepEqual(written.start, [x]);
  });

  it("waits while the old owner's live Lease lists the binding (a join), and takes it once the list is shorter", () => {
    const x = mineWith(["a", "b"]);
    const waiting = planShard(view({ leases: [lease("a", []), lease("b", [x])], bindings: [x] }));
    assert.deepEqual([waiting.claim, waiting.start], [[], []]);
    const handedOver = planShard(view({ leases: [lease("a", []), lease("b", [])], bindings: [x] }));
    assert.deepEqual(handedOver.claim, [x]);
  });

  it("voids the list of an expired Lease: a dead replica's bindings move", () => {
    const x = mineWith(["a"]);
    const leases = [lease("a", []), lease("b", [x])];
    const stillLive = planShard(view({ leases, bindings: [x] }, now - 9_000));
    assert.deepEqual(stillLive.claim, [], "b's Lease is within its duration");
    assert.deepEqual(stillLive.members, ["a", "b"]);
    const expired = planShard(view({ leases, bindings: [x] }, now - 10_001));
    assert.deepEqual(expired.members, ["a"]);
    assert.ok(expired.claim.includes(x));
  });

  it("stops a binding that moved to a joining replica, and drops a claim another live replica holds too", () => {
    const members = ["a", "b"];
    const moved = theirsWith(members, "b");
    const contested = mineWith(members);
    const plan = planShard(
      view({
        leases: [lease("a", [moved, contested]), lease("b", [contested])],
        bindings: [moved, contested],
        serving: new Set([moved]),
        published: new Set([moved, contested]),
        written: new Set([moved, contested]),
      }),
    );
    assert.deepEqual(plan.stop, [moved]);
    assert.deepEqual(plan.drop, [contested]);
    assert.deepEqual([plan.start, plan.claim], [[], []]);
  });

  it("keeps serving a binding another replica only claims, and stops one that is gone", () => {
    const x = mineWith(["a", "b"]);
    const plan = planShard(
      view({
        leases: [lease("a", [x, "gone"]), lease("b", [x])],
        bindings: [x],
        serving: new Set([x, "gone"]),
        published: new Set([x, "gone"]),
        written: new Set([x, "gone"]),
      }),
    );
    assert.deepEqual(plan.stop, ["gone"]);
    assert.deepEqual([plan.drop, plan.start, plan.claim], [[], [], []]);
  });
});

/** Leases in memory, as the API server keeps them: resourceVersions, 404 and 409. */
class FakeLeases {
  readonly items = new Map<string, KubeObject>();
  #version = 0;
  /** clients whose requests fail, as if the API server were out of their reach */
  readonly cutOff = new Set<string>();
  /** clients whose requests take effect at once but are answered this many ms later (a slow API server) */
  readonly slowAnswers = new Map<string, number>();
  /** every request, by client, in order */
  readonly requests: Array<{ client: string; method: string; name: string; at: number; ok: boolean }> = [];

  clientFor(client: string): KubeClient {
    const check = (method: string, name: string) => {
      const ok = !this.cutOff.has(client);
      this.requests.push({ client, method, name, at: Date.now(), ok });
      if (!ok) throw new Error(`${method}: connection refused`);
    };
    const answer = async <T>(value: T): Promise<T> => {
      await sleep(this.slowAnswers.get(client) ?? 0);
      return value;
    };
    const store = (obj: KubeObject): KubeObject => {
      const stored = structuredClone({
        ...obj,
        metadata: {
          ...obj.metadata,
          resourceVersion: String(++this.#version),
          uid: obj.metadata.uid ?? obj.metadata.name,
        },
      });
      this.items.set(obj.metadata.name, stored);
      return structuredClone(stored);
    };
    const fake = {
      create: async (_ref: unknown, obj: KubeObject) => {
        check("POST", obj.metadata.name);
        if (this.items.has(obj.metadata.name)) throw new KubeApiError("POST", obj.metadata.name, 409, {});
        return answer(store(obj));
      },
      update: async (_ref: unknown, obj: KubeObject) => {
        check("PUT", obj.metadata.name);
        const current = this.items.get(obj.metadata.name);
        if (current === undefined) throw new KubeApiError("PUT", obj.metadata.name, 404, {});
        if (current.metadata.resourceVersion !== obj.metadata.resourceVersion) {
          throw new KubeApiError("PUT", obj.metadata.name, 409, {});
        }
        return answer(store(obj));
      },
      get: async (_ref: unknown, name: string) => {
        check("GET", name);
        const found = this.items.get(name);
        return answer(found && structuredClone(found));
      },
      list: async () => {
        check("LIST", "");
        return answer({
          items: [...this.items.values()].map((l) => structuredClone(l)),
          resourceVersion: "",
          kind: "LeaseList",
        });
      },
      delete: async (_ref: unknown, name: string) => {
        check("DELETE", name);
        return answer(this.items.delete(name));
      },
    };
    return fake as unknown as KubeClient;
  }

  /** when client's last write of the Lease name went through */
  lastWrite(client: string, name: string): number {
    const writes = this.requests.filter(
      (r) => r.client === client && r.name === name && r.ok && (r.method === "PUT" || r.method === "POST"),
    );
    return writes.at(-1)?.at ?? 0;
  }
}

/** Which replica runs each binding, across replicas: a start while another runs it is an overlap. */
class Runners {
  readonly #by = new Map<string, string>();
  readonly overlaps: string[] = [];

  started(uid: string, replica: string): void {
    const other = this.#by.get(uid);
    if (other !== undefined && other !== replica)
      this.overlaps.push(`${uid}: ${replica} started it while ${other} ran it`);
    this.#by.set(uid, replica);
  }

  stopped(uid: string, replica: string): void {
    if (this.#by.get(uid) === replica) this.#by.delete(uid);
  }
}

/** A binding controller as the coordinator sees it: serving is what it runs, with each start's time. */
function fakeController(
  bindings: KubeObject[],
  serves: () => (uid: string) => boolean,
  runners = new Runners(),
  name = "",
) {
  const running = new Map<string, number>();
  const stopped: Array<{ uid: string; at: number }> = [];
  const reconcile = (key: string) => {
    const uid = bindings.find((b) => bindingKey(b) === key)?.metadata.uid ?? "";
    if (serves()(uid)) {
      if (running.has(uid)) return;
      running.set(uid, Date.now());
      runners.started(uid, name);
    } else if (running.delete(uid)) {
      stopped.push({ uid, at: Date.now() });
      runners.stopped(uid, name);
    }
  };
  return {
    running,
    stopped,
    // every binding is reconciled often, as the resync does, so a lost replica's stop shows at once
    tick: () => {
      for (const b of bindings) reconcile(bindingKey(b));
    },
    controller: {
      bindings: () => bindings,
      resync: (keys: string[]) => {
        for (const key of keys) reconcile(key);
      },
      handOver: async (keys: string[]) => {
        for (const key of keys) reconcile(key);
      },
    },
  };
}

const durationSeconds = 0.6;
const durationMs = durationSeconds * 1000;

/** Replicas over one set of fake Leases, each with a fake controller reconciling every binding every 20 ms. */
function fleet(bindingCount: number) {
  const leases = new FakeLeases();
  const runners = new Runners();
  const bindings: KubeObject[] = Array.from({ length: bindingCount }, (_, i) => ({
    apiVersion: "bind.klutch.dev/v1alpha1",
    kind: "AppClusterBinding",
    metadata: { name: `b${i}`, namespace: "ns", uid: `uid-${i}` },
  }));
  const lost: Array<{ replica: string; reason: string; at: number }> = [];
  const replicas: Array<{ coordinator: ShardCoordinator; timer: NodeJS.Timeout }> = [];
  const replica = (name: string) => {
    const coordinator: ShardCoordinator = new ShardCoordinator({
      client: leases.clientFor(name),
      namespace: "ns",
      leaseDurationSeconds: durationSeconds,
      logger: pino({ level: process.env.KLB_TEST_LOG ?? "silent" }),
      identity: name,
      onLost: (reason) => lost.push({ replica: name, reason, at: Date.now() }),
    });
    const fake = fakeController(bindings, () => (uid) => coordinator.serves(uid), runners, name);
    const timer = setInterval(fake.tick, 20);
    replicas.push({ coordinator, timer });
    return { coordinator, fake };
  };
  /** every binding runs on its owner of members, and nowhere else */
  const servedBy = (members: Array<{ coordinator: ShardCoordinator; fake: ReturnType<typeof fakeController> }>) => {
    const ids = members.map((m) => m.coordinator.identity);
    for (const binding of bindings) {
      const uid = binding.metadata.uid ?? "";
      const owner = ownerOf(uid, ids);
      for (const m of members) {
        assert.equal(m.fake.running.has(uid), m.coordinator.identity === owner, `${uid} (owner ${owner})`);
      }
    }
  };
  const stopAll = async () => {
    for (const r of replicas) clearInterval(r.timer);
    await Promise.all(replicas.map((r) => r.coordinator.stop()));
  };
  return { leases, runners, bindings, lost, replica, servedBy, stopAll };
}

describe("shard coordinators over one set of Leases", () => {
  it("share the bindings without overlap; one that cannot renew stops before the other takes its bindings, and joins again as a new member once its Lease expired", async () => {
    const { leases, runners, bindings, lost, replica, servedBy, stopAll } = fleet(20);
    const a = replica("a");
    const b = replica("b");
    try {
      await a.coordinator.start(a.fake.controller);
      await b.coordinator.start(b.fake.controller);
      await eventually("every binding served by its owner of a and b", () => servedBy([a, b]));
      const aHad = [...a.fake.running.keys()];
      assert.ok(aHad.length > 0 && aHad.length < bindings.length);

      leases.cutOff.add("a");
      const cutAt = Date.now();
      await eventually("b serves every binding", () => assert.equal(b.fake.running.size, bindings.length));
      const aLost = lost.filter((l) => l.replica === "a");
      assert.equal(aLost.length, 1, "a knew it lost its Lease");
      assert.match(aLost[0]?.reason ?? "", /not renewed/);
      const lostAt = aLost[0]?.at ?? 0;
      assert.ok(lostAt - cutAt <= renewDeadlineMs(durationMs) + 300, `lost after ${lostAt - cutAt} ms`);
      assert.equal(a.fake.running.size, 0, "a serves nothing");
      assert.equal(a.coordinator.identity, "a", "not joined again yet");
      const lastStop = Math.max(...a.fake.stopped.map((s) => s.at));
      const firstTakeOver = Math.min(...aHad.map((uid) => b.fake.running.get(uid) ?? Infinity));
      assert.ok(lastStop < firstTakeOver, `a stopped at ${lastStop}, b took over at ${firstTakeOver}`);
      // a's last renewal came at most a renewal period (a fifth of the duration) before the cut
      assert.ok(firstTakeOver - cutAt >= durationMs * 0.8, "b waited for a's Lease to expire");

      // a stays cut off past the time it may join again: it tries, fails, and tries again
      const renewed = leases.lastWrite("a", "klutch-bind-sync-shard-a");
      await sleep(renewed + rejoinAfterMs(durationMs) + 400 - Date.now());
      assert.equal(a.coordinator.identity, "a", "not joined while cut off");
      leases.cutOff.delete("a");
      await eventually("a joined again under a new identity and serves its share", () => {
        assert.match(a.coordinator.identity, /^a-[a-z0-9]+$/);
        servedBy([a, b]);
      });
      const rejoined = leases.requests.filter((r) => r.name === `klutch-bind-sync-shard-${a.coordinator.identity}`);
      const firstTry = rejoined[0];
      assert.ok(firstTry !== undefined && firstTry.method === "POST" && !firstTry.ok, "the first try failed");
      assert.ok(
        firstTry.at >= renewed + durationMs,
        `the new Lease waited for the old one to expire (${firstTry.at - renewed} ms after its last renewal)`,
      );
      assert.ok(
        rejoined.some((r) => r.method === "POST" && r.ok),
        "created once a could reach it",
      );
      assert.ok(a.fake.running.size > 0, "a serves a share again");
      assert.deepEqual(runners.overlaps, [], "no binding served by both at once");
    } finally {
      await stopAll();
    }
  });

  it("a coordinator whose event loop was blocked past its renew deadline serves nothing from the next question on, before its timer ran, and joins again", async () => {
    const { lost, replica, servedBy, runners, stopAll } = fleet(10);
    const a = replica("a");
    const b = replica("b");
    try {
      await a.coordinator.start(a.fake.controller);
      await b.coordinator.start(b.fake.controller);
      await eventually("every binding served by its owner", () => servedBy([a, b]));
      const [uid] = [...a.fake.running.keys()];
      assert.ok(uid !== undefined);
      assert.ok(a.coordinator.mayWrite(uid), "served: its syncs write");
      // as a SIGSTOP or a long synchronous task would: answers that came meanwhile run before any timer
      const blockedUntil = Date.now() + renewDeadlineMs(durationMs) + 200;
      while (Date.now() < blockedUntil) {
        // blocked
      }
      assert.equal(a.coordinator.mayWrite(uid), false, "past the deadline: its syncs write nothing");
      assert.equal(a.coordinator.serves(uid), false, "nor is it served");
      assert.equal(lost[0]?.replica, "a");
      assert.match(lost[0]?.reason ?? "", /not renewed/);
      assert.deepEqual(a.coordinator.serving, new Map(), "a serves nothing");
      await eventually("both joined again under new identities, and serve their shares", () => {
        assert.match(a.coordinator.identity, /^a-[a-z0-9]+$/);
        assert.match(b.coordinator.identity, /^b-[a-z0-9]+$/);
        servedBy([a, b]);
      });
      assert.deepEqual(runners.overlaps, [], "no binding served by both at once");
    } finally {
      await stopAll();
    }
  });

  it("a coordinator whose renewals are answered after its deadline loses its Lease though they went through, and joins again once answers are quick", async () => {
    const { leases, lost, replica, servedBy, runners, bindings, stopAll } = fleet(10);
    const a = replica("a");
    const b = replica("b");
    try {
      await a.coordinator.start(a.fake.controller);
      await b.coordinator.start(b.fake.controller);
      await eventually("every binding served by its owner", () => servedBy([a, b]));
      leases.slowAnswers.set("a", renewDeadlineMs(durationMs) + 100);
      await eventually("a lost its Lease", () => assert.ok(lost.some((l) => l.replica === "a")));
      assert.match(lost.find((l) => l.replica === "a")?.reason ?? "", /not renewed/);
      assert.equal(a.fake.running.size, 0, "a serves nothing");
      await eventually("b serves every binding", () => assert.equal(b.fake.running.size, bindings.length));
      leases.slowAnswers.delete("a");
      await eventually("a joined again under a new identity and serves its share", () => {
        assert.match(a.coordinator.identity, /^a-[a-z0-9]+$/);
        servedBy([a, b]);
      });
      assert.deepEqual(runners.overlaps, [], "no binding served by both at once");
    } finally {
      await stopAll();
    }
  });

  it("lets a binding's syncs write on while it is handed over (its Lease still lists it), and not after", async () => {
    const { bindings, replica, servedBy, runners, stopAll } = fleet(10);
    const a = replica("a");
    const seen: Array<{ serves: boolean; mayWrite: boolean }> = [];
    const handOver = a.fake.controller.handOver;
    const uidOf = (key: string) => bindings.find((x) => bindingKey(x) === key)?.metadata.uid ?? "";
    a.fake.controller.handOver = async (keys) => {
      for (const key of keys) {
        seen.push({ serves: a.coordinator.serves(uidOf(key)), mayWrite: a.coordinator.mayWrite(uidOf(key)) });
      }
      await sleep(100); // the syncs take a while to stop
      await handOver(keys);
    };
    try {
      await a.coordinator.start(a.fake.controller);
      await eventually("a serves every binding", () => servedBy([a]));
      const b = replica("b");
      await b.coordinator.start(b.fake.controller);
      await eventually("every binding served by its owner of a and b", () => servedBy([a, b]));
      assert.ok(seen.length > 0);
      assert.ok(
        seen.every((s) => !s.serves && s.mayWrite),
        "handed over: not served, but written until stopped",
      );
      const moved = bindings.map((x) => x.metadata.uid ?? "").filter((uid) => b.fake.running.has(uid));
      assert.ok(
        moved.every((uid) => !a.coordinator.mayWrite(uid)),
        "once handed over, not written",
      );
      assert.deepEqual(runners.overlaps, [], "no binding served by both at once");
    } finally {
      await stopAll();
    }
  });

  it("stop() while waiting to join again ends at once", async () => {
    const { leases, lost, replica, stopAll } = fleet(4);
    const a = replica("a");
    await a.coordinator.start(a.fake.controller);
    leases.cutOff.add("a");
    await eventually("a lost its Lease", () => assert.equal(lost.length, 1));
    const stopping = Date.now();
    await stopAll();
    assert.ok(Date.now() - stopping < 500, `stopped in ${Date.now() - stopping} ms`);
    assert.equal(a.coordinator.identity, "a", "never joined again");
  });
});

describe("a binding's clients on a replica of several", () => {
  it("send reads always, and writes only while the binding is served", async () => {
    const calls: string[] = [];
    const server = createServer((req, res) => {
      calls.push(`${req.method} ${req.url}`);
      req.resume();
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "x", namespace: "ns" } }));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    let client: KubeClient | undefined;
    try {
      client = KubeClient.fromKubeconfigText(loopbackKubeconfig((server.address() as AddressInfo).port));
      let served = true;
      const fencedClient = fenced(client, () => served, "binding ns/b");
      const ref = { group: "", version: "v1", resource: "configmaps", namespaced: true };
      const obj: KubeObject = { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "x", namespace: "ns" } };
      await fencedClient.create(ref, obj);
      served = false;
      await fencedClient.get(ref, "x", "ns");
      await fencedClient.request("GET", "/version");
      await assert.rejects(fencedClient.create(ref, obj), NotServedError);
      await assert.rejects(fencedClient.mergePatch(ref, "x", "ns", {}), /not served by this replica/);
      await assert.rejects(fencedClient.request("POST", "/api/v1/x"), NotServedError);
      assert.deepEqual(calls, [
        "POST /api/v1/namespaces/ns/configmaps",
        "GET /api/v1/namespaces/ns/configmaps/x",
        "GET /version",
      ]);
      assert.equal(client.requests, 3, "refused writes are not counted");
      fencedClient.close();
      await client.get(ref, "x", "ns");
    } finally {
      client?.close();
      server.close();
    }
  });
});
