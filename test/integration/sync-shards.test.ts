// Sharding (klutch-bind sync --shards auto) with real processes on real API servers: 30 bindings
// over two replicas, a third joins, is frozen (SIGSTOP) for longer than the lease and woken again
// (it loses its Lease and joins again as a new member), and then one of the three is killed with
// SIGKILL during a burst. Every binding converges, each object has one provider copy, and no
// binding's status is ever written by two replicas in turn (only a hand-over changes the writer).
import assert from "node:assert/strict";
import { once } from "node:events";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { providerNamespace } from "../../src/api/naming.ts";
import { refs } from "../../src/api/resources.ts";
import type { KubeObject } from "../../src/kube/client.ts";
import { conditionOf } from "../../src/kube/conditions.ts";
import { ownerOf } from "../../src/sync/replicas/shard-assignment.ts";
import { uniqueSuffix } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";
import { freePort } from "../support/net.ts";
import { stopProcess } from "../support/processes.ts";
import {
  type BoundApi,
  bindApis,
  exportApis,
  inBatches,
  type Replica,
  startReplica,
  watchServedBy,
} from "../support/shard-replicas.ts";
import { syncEnv } from "../support/sync-env.ts";

const leaseSeconds = 5;
const bindingCount = 30;
const objectsPerBinding = 10;

describe("the sync sharded over replicas", () => {
  it("shares 30 bindings among three replicas; a join moves only its share, a frozen one's share moves and it joins again, a SIGKILL moves the dead one's within the lease, never two writers", async () => {
    const env = await syncEnv({ inProcess: false });
    const ns = env.bindingNamespace;
    const suffix = uniqueSuffix();

    // one exported API per binding: one binding per app cluster and API
    const apis: Array<BoundApi & { apiVersion: string }> = Array.from({ length: bindingCount }, (_, i) => {
      const group = `s${i}-${suffix}.klutch-bind.test`;
      const binding = `shard-${String(i).padStart(2, "0")}`;
      return {
        ref: { group, version: "v1", resource: "postgresqlinstances", namespaced: true },
        apiVersion: `${group}/v1`,
        template: `postgresqlinstances-${binding}`,
        binding,
      };
    });
    await exportApis(env, apis);

    // status.servedBy of every binding, at every write, in the order the API server took them
    const served = await watchServedBy(env);
    const writes = served.writes;

    const start = (name: string, ...extra: string[]): Replica =>
      startReplica(env, name, [
        "--allow-loopback-app-servers",
        "--namespace",
        ns,
        "--lease-duration",
        String(leaseSeconds),
        "--status-interval",
        "1",
        "--health-address",
        "",
        "--metrics-address",
        "",
        ...extra,
      ]);

    const a = start("replica-a");
    const b = start("replica-b");
    const [idA, idB] = await Promise.all([a.identity, b.identity]);

    const uids = await bindApis(env, apis);
    const servedAs = async (members: string[], what: string, timeoutMs: number) => {
      await eventually(
        what,
        async () => {
          const listed = (await env.controlClient.list(refs.bindings, { namespace: ns })).items;
          const wrong = listed.flatMap((b) => {
            const status = b.status as { servedBy?: string } | undefined;
            const want = ownerOf(b.metadata.uid ?? "", members);
            const ready = conditionOf(b, "Ready")?.status === "True";
            return status?.servedBy === want && ready
              ? []
              : [`${b.metadata.name}: ${status?.servedBy} (want ${want}, ready ${ready})`];
          });
          assert.equal(listed.length, bindingCount);
          assert.deepEqual(wrong, []);
        },
        timeoutMs,
      );
    };
    await servedAs([idA, idB], "every binding Ready, served by its owner of two replicas", 120_000);

    // a third replica joins: only its share moves, and it is served within a few renewals
    const metricsPort = await freePort();
    const c = start("replica-c", "--metrics-address", `127.0.0.1:${metricsPort}`);
    const idC = await c.identity;
    const joinedAt = Date.now();
    const three = [idA, idB, idC];
    await servedAs(three, "every binding Ready, served by its owner of three replicas", 60_000);
    const moved = apis.filter(({ binding }) => ownerOf(uids.get(binding) ?? "", three) === idC);
    const joinSeconds =
      Math.max(
        ...moved.map(({ binding }) => (writes.get(binding) ?? []).find((w) => w.servedBy === idC)?.at ?? Date.now()),
      ) - joinedAt;
    assert.ok(moved.length > 0, "the third replica got a share");
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const servedLines = metrics.split("\n").filter((l) => l.startsWith("klutch_bind_binding_served{"));
    assert.equal(servedLines.length, moved.length, servedLines.join("\n"));
    assert.ok(servedLines.every((l) => l.includes(`replica="${idC}"`)));

    // the third replica is frozen (SIGSTOP) for longer than the lease: the others take its share once
    // its Lease expired. Woken (SIGCONT), it finds its Lease lost, serves nothing (no status from it
    // for a binding another replica took: the writers' check at the end), and joins again under a
    // new identity, which gets a share of its own
    const awake = [idA, idB];
    const frozenShare = apis.filter(({ binding }) => ownerOf(uids.get(binding) ?? "", three) === idC);
    c.child.kill("SIGSTOP");
    const frozenAt = Date.now();
    try {
      await servedAs(awake, "every binding Ready, served by its owner of the two replicas awake", 60_000);
    } finally {
      c.child.kill("SIGCONT");
    }
    const frozenSeconds = (Date.now() - frozenAt) / 1000;
    assert.ok(frozenSeconds > leaseSeconds, `frozen for ${frozenSeconds} s`);
    const lostLog = await c.logged("shard lease lost: serving nothing; joining again as a new member once it expired");
    assert.equal(lostLog.shard, idC);
    assert.match(String(lostLog.reason), /not renewed/);
    assert.ok(Number(lostLog.sinceRenewalMs) >= leaseSeconds * 1000, JSON.stringify(lostLog));
    // woken, it noticed at once: late by about as long as it was frozen past its deadline
    assert.ok(Number(lostLog.deadlineMissedByMs) > 1000, JSON.stringify(lostLog));
    const rejoinedLog = await c.logged("shard member again: rejoined under a new identity");
    const idC2 = rejoinedLog.shard ?? "";
    assert.equal(rejoinedLog.previous, idC);
    assert.notEqual(idC2, idC);
    const afterFreeze = [idA, idB, idC2];
    await servedAs(
      afterFreeze,
      "every binding Ready, served by its owner once the frozen replica joined again",
      60_000,
    );
    const rejoinedSeconds = (Date.now() - frozenAt) / 1000 - frozenSeconds;
    assert.ok(
      apis.some(({ binding }) => ownerOf(uids.get(binding) ?? "", afterFreeze) === idC2),
      "the replica that joined again got a share",
    );
    const afterFreezeMetrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    assert.match(afterFreezeMetrics, /^klutch_bind_shard_lease_lost_total 1$/m);
    assert.ok(
      afterFreezeMetrics
        .split("\n")
        .filter((l) => l.startsWith("klutch_bind_binding_served{"))
        .every((l) => l.includes(`replica="${idC2}"`)),
    );

    // a burst over every binding; the replica serving most is killed with SIGKILL in the middle of it
    const appNs = `shards-${suffix}`;
    await env.appClient.create(refs.namespaces, { apiVersion: "v1", kind: "Namespace", metadata: { name: appNs } });
    const names = Array.from({ length: objectsPerBinding }, (_, i) => `db-${i}`);
    const jobs = apis.flatMap((api) => names.map((name) => ({ api, name })));
    let created = 0;
    const burst = inBatches(jobs, 10, async ({ api, name }) => {
      await env.appClient.create(api.ref, {
        apiVersion: api.apiVersion,
        kind: "PostgresqlInstance",
        metadata: { name, namespace: appNs },
        spec: { size: `${api.binding}-${name}` },
      });
      created++;
    });
    const share = (id: string) => apis.filter(({ binding }) => ownerOf(uids.get(binding) ?? "", afterFreeze) === id);
    const byShare = [
      { replica: a, id: idA },
      { replica: b, id: idB },
      { replica: c, id: idC2 },
    ].sort((x, y) => share(y.id).length - share(x.id).length);
    const { replica: victim, id: victimId } = byShare[0] as { replica: Replica; id: string };
    // mid-burst: a quarter of the creates done (a fixed 1.5 s wait once came after a fast burst had ended)
    let burstSettled = false;
    burst.then(
      () => {
        burstSettled = true;
      },
      () => {
        burstSettled = true;
      },
    );
    while (created < jobs.length / 4 && !burstSettled) await sleep(5);
    victim.child.kill("SIGKILL");
    await once(victim.child, "exit");
    const killedAt = Date.now();
    const createdAtKill = created;
    const survivors = afterFreeze.filter((id) => id !== victimId);
    await burst;
    assert.ok(createdAtKill > 0 && createdAtKill < jobs.length, `killed during the burst (${createdAtKill} created)`);
    await servedAs(survivors, "every binding Ready, served by its owner of the two survivors", 60_000);
    const orphaned = apis.filter(({ binding }) => ownerOf(uids.get(binding) ?? "", afterFreeze) === victimId);
    const moveSeconds =
      Math.max(
        ...orphaned.map(
          ({ binding }) =>
            (writes.get(binding) ?? []).find((w) => w.at >= killedAt && w.servedBy !== victimId)?.at ?? Date.now(),
        ),
      ) - killedAt;

    await eventually(
      `exactly ${jobs.length} provider copies, one per object, each with its spec`,
      async () => {
        const wrong: string[] = [];
        for (const api of apis) {
          const copies = (
            await env.controlClient.list(api.ref, { namespace: providerNamespace(uids.get(api.binding) ?? "", appNs) })
          ).items;
          const found = copies.map((o: KubeObject) => o.metadata.name).sort();
          if (JSON.stringify(found) !== JSON.stringify(names)) wrong.push(`${api.binding}: ${found.join(",")}`);
          for (const copy of copies) {
            if ((copy.spec as { size?: string }).size !== `${api.binding}-${copy.metadata.name}`) {
              wrong.push(`${api.binding}/${copy.metadata.name}: spec ${JSON.stringify(copy.spec)}`);
            }
          }
        }
        assert.deepEqual(wrong, []);
      },
      60_000,
    );

    // a status from the provider comes back through every binding
    await inBatches(apis, 10, async (api) => {
      const pns = providerNamespace(uids.get(api.binding) ?? "", appNs);
      const copy = await env.controlClient.get(api.ref, "db-0", pns);
      assert.ok(copy);
      await env.controlClient.updateStatus(api.ref, { ...copy, status: { endpoint: `${api.binding}.db` } });
    });
    await eventually("every binding brings its status down", async () => {
      for (const api of apis) {
        const consumer = await env.appClient.get(api.ref, "db-0", appNs);
        assert.equal((consumer?.status as { endpoint?: string } | undefined)?.endpoint, `${api.binding}.db`);
      }
    });

    // a survivor stops (SIGTERM, as in a rolling update): it hands its bindings over and deletes its
    // Lease, so the last replica takes them without waiting for the Lease to expire
    const leaving = survivors[0] ?? "";
    const last = survivors.filter((id) => id !== leaving);
    const leavingReplica = new Map([
      [idA, a],
      [idB, b],
      [idC2, c],
    ]).get(leaving);
    assert.ok(leavingReplica, `the replica of ${leaving}`);
    const stoppingAt = Date.now();
    await stopProcess(leavingReplica.child);
    assert.equal(leavingReplica.child.exitCode, 0);
    await servedAs(last, "every binding Ready, served by the last replica", 60_000);
    const stopSeconds = (Date.now() - stoppingAt) / 1000;

    // no binding was written by two replicas in turn: its writers, run by run, are exactly its
    // owners of two, three, the two awake while the third was frozen, the three once it joined again,
    // the two surviving replicas and the last one, each taking over from the one before
    await served.stop();
    for (const { binding } of apis) {
      const uid = uids.get(binding) ?? "";
      const owners = [[idA, idB], three, awake, afterFreeze, survivors, last].map((members) => ownerOf(uid, members));
      const runs = (writes.get(binding) ?? [])
        .map((w) => w.servedBy)
        .filter((s): s is string => s !== undefined)
        .filter((s, i, all) => i === 0 || all[i - 1] !== s);
      assert.deepEqual(
        runs,
        owners.filter((s, i) => i === 0 || owners[i - 1] !== s),
        `${binding} written by ${runs.join(" then ")}`,
      );
    }
    console.log(
      `shards: join moved ${moved.length}/${bindingCount} bindings in ${(joinSeconds / 1000).toFixed(1)} s; ` +
        `a freeze moved ${frozenShare.length} in ${frozenSeconds.toFixed(1)} s; woken, the replica found its Lease lost ` +
        `(${lostLog.sinceRenewalMs} ms after its last renewal, ${lostLog.deadlineMissedByMs} ms past its deadline), ` +
        `joined again and took its new share in ${rejoinedSeconds.toFixed(1)} s; ` +
        `SIGKILL with ${createdAtKill}/${jobs.length} objects created moved ${orphaned.length} bindings in ` +
        `${(moveSeconds / 1000).toFixed(1)} s; a SIGTERM handed all over in ${stopSeconds.toFixed(1)} s (lease ${leaseSeconds} s)`,
    );
    assert.ok(
      stopSeconds < leaseSeconds,
      `a stopping replica hands over before its Lease could expire (${stopSeconds} s)`,
    );
    assert.ok(moveSeconds < (leaseSeconds + 5) * 1000, `the dead replica's bindings moved in ${moveSeconds} ms`);
  });
});
