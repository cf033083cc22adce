import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pino } from "pino";
import { KubeApiError, type KubeClient, type KubeObject } from "../../src/kube/client.ts";
import {
  isLive,
  type MemberLease,
  type Observations,
  observe,
  ownerOf,
  planShard,
  renewDeadlineMs,
  type ShardView,
} from "../../src/sync/shard-assignment.ts";
import { newIdentity, ShardCoordinator } from "../../src/sync/shards.ts";
import { eventually } from "../support/eventually.ts";

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
  /** identities whose requests fail, as if the API server were out of their reach */
  readonly cutOff = new Set<string>();

  clientFor(identity: string): KubeClient {
    const check = (method: string) => {
      if (this.cutOff.has(identity)) throw new Error(`${method}: connection refused`);
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
        check("POST");
        if (this.items.has(obj.metadata.name)) throw new KubeApiError("POST", obj.metadata.name, 409, {});
        return store(obj);
      },
      update: async (_ref: unknown, obj: KubeObject) => {
        check("PUT");
        const current = this.items.get(obj.metadata.name);
        if (current === undefined) throw new KubeApiError("PUT", obj.metadata.name, 404, {});
        if (current.metadata.resourceVersion !== obj.metadata.resourceVersion) {
          throw new KubeApiError("PUT", obj.metadata.name, 409, {});
        }
        return store(obj);
      },
      get: async (_ref: unknown, name: string) => {
        check("GET");
        const found = this.items.get(name);
        return found && structuredClone(found);
      },
      list: async () => {
        check("LIST");
        return {
          items: [...this.items.values()].map((l) => structuredClone(l)),
          resourceVersion: "",
          kind: "LeaseList",
        };
      },
      delete: async (_ref: unknown, name: string) => {
        check("DELETE");
        return this.items.delete(name);
      },
    };
    return fake as unknown as KubeClient;
  }
}

/** A binding controller as the coordinator sees it: serving is what it runs, with each start's time. */
function fakeController(bindings: KubeObject[], serves: () => (uid: string) => boolean) {
  const running = new Map<string, number>();
  const stopped: Array<{ uid: string; at: number }> = [];
  const reconcile = (key: string) => {
    const uid = bindings.find((b) => b.metadata.name === key)?.metadata.uid ?? "";
    if (serves()(uid)) {
      if (!running.has(uid)) running.set(uid, Date.now());
    } else if (running.delete(uid)) stopped.push({ uid, at: Date.now() });
  };
  return {
    running,
    stopped,
    // every binding is reconciled often, as the resync does, so a lost replica's stop shows at once
    tick: () => {
      for (const b of bindings) reconcile(b.metadata.name);
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

describe("shard coordinators over one set of Leases", () => {
  it("share the bindings without overlap; one that cannot renew stops before the other takes its bindings", async () => {
    const leases = new FakeLeases();
    const bindings: KubeObject[] = Array.from({ length: 20 }, (_, i) => ({
      apiVersion: "bind.klutch.dev/v1alpha1",
      kind: "AppClusterBinding",
      metadata: { name: `b${i}`, namespace: "ns", uid: `uid-${i}` },
    }));
    const lost: Array<{ reason: string; at: number }> = [];
    const durationSeconds = 0.6;
    const replica = (name: string) => {
      const coordinator: ShardCoordinator = new ShardCoordinator({
        client: leases.clientFor(name),
        namespace: "ns",
        leaseDurationSeconds: durationSeconds,
        logger: pino({ level: "silent" }),
        identity: name,
        onLost: (reason) => lost.push({ reason, at: Date.now() }),
      });
      const fake = fakeController(bindings, () => (uid) => coordinator.serves(uid));
      const timer = setInterval(fake.tick, 20);
      return { coordinator, fake, timer };
    };
    const a = replica("a");
    const b = replica("b");
    try {
      await a.coordinator.start(a.fake.controller);
      await b.coordinator.start(b.fake.controller);
      const both = new Set<string>();
      const overlap = setInterval(() => {
        for (const uid of a.fake.running.keys()) if (b.fake.running.has(uid)) both.add(uid);
      }, 5);
      try {
        await eventually("every binding served by its owner of a and b", () => {
          for (const binding of bindings) {
            const uid = binding.metadata.uid ?? "";
            const owner = ownerOf(uid, ["a", "b"]) === "a" ? a : b;
            assert.ok(owner.fake.running.has(uid), `${uid} not served by its owner`);
          }
        });
        const aHad = [...a.fake.running.keys()];
        assert.ok(aHad.length > 0 && aHad.length < bindings.length);

        leases.cutOff.add("a");
        const cutAt = Date.now();
        await eventually("b serves every binding", () => assert.equal(b.fake.running.size, bindings.length));
        assert.equal(lost.length, 1, "a knew it lost its Lease");
        assert.match(lost[0]?.reason ?? "", /not renewed/);
        const lostAt = lost[0]?.at ?? 0;
        assert.ok(lostAt - cutAt <= renewDeadlineMs(durationSeconds * 1000) + 300, `lost after ${lostAt - cutAt} ms`);
        assert.equal(a.fake.running.size, 0, "a serves nothing");
        const lastStop = Math.max(...a.fake.stopped.map((s) => s.at));
        const firstTakeOver = Math.min(...aHad.map((uid) => b.fake.running.get(uid) ?? Infinity));
        assert.ok(lastStop < firstTakeOver, `a stopped at ${lastStop}, b took over at ${firstTakeOver}`);
        // a's last renewal came at most a renewal period (a fifth of the duration) before the cut
        assert.ok(firstTakeOver - cutAt >= durationSeconds * 800, "b waited for a's Lease to expire");
        assert.deepEqual([...both], [], "no binding served by both at once");
      } finally {
        clearInterval(overlap);
      }
    } finally {
      clearInterval(a.timer);
      clearInterval(b.timer);
      await b.coordinator.stop();
      await a.coordinator.stop();
    }
  });
});
