// A slow tenant cannot stall a shard hand-over: its bindings list 30 exports each and point at a
// cluster that answers /version and nothing else, so their reconciles wait on it for minutes. When a
// second replica joins, and when the first one stops (SIGTERM), another team's bindings move within
// one lease duration: the hand-over cancels the slow reconciles instead of awaiting them, and the
// stopping replica exits well within the pod's grace period (30 s, deploy/control-plane).
// Runs the replicas without --namespace (two tenants' namespaces): on a private pair of clusters
// when KLB_TEST_CONTROL_KUBECONFIG is unset.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { kubeconfigSecretMarks } from "../../src/api/kubeconfig-secret.ts";
import { refs } from "../../src/api/resources.ts";
import { ownerOf } from "../../src/sync/replicas/shard-assignment.ts";
import { onFileDone, testNamespace, uniqueSuffix } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";
import { startVersionOnlyServer } from "../support/hostile-cluster.ts";
import { stopProcess, testSyncFlags } from "../support/processes.ts";
import {
  type BoundApi,
  bindApis,
  exportApis,
  type Replica,
  startReplica,
  watchServedBy,
} from "../support/shard-replicas.ts";
import { syncEnv } from "../support/sync-env.ts";

const leaseSeconds = 10;
const graceSeconds = 30; // the pod's terminationGracePeriodSeconds
const goodCount = 12;
const slowCount = 10;
const slowExports = 30;

describe("a shard hand-over with a slow tenant", () => {
  it("moves another team's bindings within one lease duration on a join and on SIGTERM, and SIGTERM ends within the grace period", async () => {
    const env = await syncEnv({ inProcess: false });
    const ns = env.bindingNamespace;
    const slowNs = await testNamespace(env.control, "slow-tenant");
    const slow = await startVersionOnlyServer();
    onFileDone(() => slow.stop());
    const suffix = uniqueSuffix();

    // the other team: one exported API per binding (one binding per app cluster and API)
    const apis: BoundApi[] = Array.from({ length: goodCount }, (_, i) => ({
      ref: {
        group: `h${i}-${suffix}.klutch-bind.test`,
        version: "v1",
        resource: "postgresqlinstances",
        namespaced: true,
      },
      template: `team-${String(i).padStart(2, "0")}`,
      binding: `team-${String(i).padStart(2, "0")}`,
    }));
    await exportApis(env, apis);

    const start = (name: string): Replica =>
      startReplica(env, name, [
        "--template-namespace",
        ns,
        "--lease-duration",
        String(leaseSeconds),
        ...testSyncFlags,
        "--status-interval",
        "2",
      ]);

    const a = start("replica-a");
    const idA = await a.identity;
    const uids = await bindApis(env, apis);
    // the slow tenant: 30 exports per binding, on a cluster that never answers but /version
    const slowUids: string[] = [];
    for (let i = 0; i < slowCount; i++) {
      const name = `slow-${i}`;
      await env.controlClient.create(refs.secrets, {
        apiVersion: "v1",
        kind: "Secret",
        metadata: {
          name: `${name}-kubeconfig`,
          namespace: slowNs,
          ...kubeconfigSecretMarks({ group: refs.bindings.group, namespace: slowNs, name }),
        },
        data: { kubeconfig: Buffer.from(slow.kubeconfig).toString("base64") },
      });
      const created = await env.controlClient.create(refs.bindings, {
        apiVersion: "bind.klutch.dev/v1alpha1",
        kind: "AppClusterBinding",
        metadata: { name, namespace: slowNs },
        spec: {
          kubeconfigSecretRef: { name: `${name}-kubeconfig` },
          exports: Array.from({ length: slowExports }, (_, j) => ({
            group: `s${j}.slow-${suffix}.test`,
            resource: "widgets",
          })),
        },
      });
      slowUids.push(created.metadata.uid ?? "");
    }

    // the first time each of the team's bindings showed each replica as its server
    const served = await watchServedBy(env);
    const firstServedBy = (binding: string, id: string) =>
      served.writes.get(binding)?.find((w) => w.servedBy === id)?.at;
    const servedBy = (bindings: string[], id: string, what: string, timeoutMs: number) =>
      eventually(
        what,
        () => {
          const waiting = bindings.filter((b) => firstServedBy(b, id) === undefined);
          assert.deepEqual(waiting, []);
        },
        timeoutMs,
      );
    const team = apis.map((x) => x.binding);
    await servedBy(team, idA, "the team's bindings served by the only replica", 120_000);
    // the slow tenant's reconciles are under way: its cluster was asked for CRDs and holds the requests
    await eventually("the slow tenant's cluster asked for its CRDs", () => assert.ok(slow.requests > 2 * slowCount));

    // a second replica joins: its share of the team moves within one lease duration
    const b = start("replica-b");
    const idB = await b.identity;
    const joinedAt = Date.now();
    const two = [idA, idB];
    const moved = team.filter((name) => ownerOf(uids.get(name) ?? "", two) === idB);
    const slowMoved = slowUids.filter((uid) => ownerOf(uid, two) === idB);
    assert.ok(
      moved.length > 0 && moved.length < goodCount && slowMoved.length > 0,
      `moved: ${moved.length} of the team, ${slowMoved.length} slow`,
    );
    await servedBy(moved, idB, "the moved share of the team served by the new replica", 120_000);
    const joinGapMs = Math.max(...moved.map((name) => (firstServedBy(name, idB) ?? 0) - joinedAt));

    // the first replica stops (SIGTERM) while still serving slow bindings: it exits within the grace
    // period, and the team's bindings it served move within one lease duration
    const stayed = team.filter((name) => !moved.includes(name));
    const stoppingAt = Date.now();
    await stopProcess(a.child);
    const stopSeconds = (Date.now() - stoppingAt) / 1000;
    assert.equal(a.child.exitCode, 0);
    await servedBy(stayed, idB, "the rest of the team served by the remaining replica", 120_000);
    const stopGapMs = Math.max(...stayed.map((name) => (firstServedBy(name, idB) ?? 0) - stoppingAt));
    await served.stop();

    console.log(
      `slow tenant (${slowCount} bindings x ${slowExports} exports, ${slowMoved.length} moved): a join moved ${moved.length} ` +
        `of the team's ${goodCount} bindings in ${(joinGapMs / 1000).toFixed(1)} s; SIGTERM ended in ${stopSeconds.toFixed(1)} s ` +
        `and moved ${stayed.length} in ${(stopGapMs / 1000).toFixed(1)} s (lease ${leaseSeconds} s, grace ${graceSeconds} s)`,
    );
    assert.ok(joinGapMs < leaseSeconds * 1000, `the join moved the team's bindings in ${joinGapMs} ms`);
    assert.ok(stopSeconds < graceSeconds, `SIGTERM took ${stopSeconds} s`);
    assert.ok(stopGapMs < leaseSeconds * 1000, `SIGTERM moved the team's bindings in ${stopGapMs} ms`);
  });
});
