// --leader-elect: a leader writes only while its Lease holds, judged on the clock at each write. A
// leader whose process stalls past the renew deadline (a freeze, a blocked event loop) must not
// write even once more when it wakes, before any of its timers had a chance to notice; and a
// standby takes the Lease over after it expired.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pino } from "pino";
import { refs } from "../../src/api/resources.ts";
import { KubeClient } from "../../src/kube/client.ts";
import { fenced, NotServedError } from "../../src/sync/replicas/fence.ts";
import { LeaderElector } from "../../src/sync/replicas/leader.ts";
import { clientConfig, onFileDone, testClusters, testNamespace, uniqueSuffix } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";

describe("leader election", () => {
  it("a leader stalled past its renew deadline writes nothing when it wakes, and a standby takes over", async () => {
    const { control: cluster } = await testClusters();
    const client = KubeClient.fromConfig(clientConfig(cluster));
    onFileDone(async () => client.close());
    const namespace = await testNamespace(cluster, "leader");
    const name = `sync-${uniqueSuffix()}`;
    const options = { client, namespace, name, leaseDurationSeconds: 3, logger: pino({ level: "silent" }) };
    const leader = new LeaderElector({ ...options, identity: "a" });
    await leader.acquire();
    const lost: string[] = [];
    leader.keepRenewing((reason) => lost.push(reason));
    const writes = fenced(client, () => leader.holds(), "leader a");
    const configMap = (n: string) => ({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: n, namespace } });

    assert.equal(leader.holds(), true);
    await writes.create(refs.configMaps, configMap("while-leading"));
    await new Promise((resolve) => setTimeout(resolve, 1500)); // a renewal or two
    assert.equal(leader.holds(), true, "renewals keep the lease");

    // the event loop stalls longer than two thirds of the lease: no timer of the leader runs meanwhile
    const wake = Date.now() + 2500;
    while (Date.now() < wake) {
      /* a freeze */
    }
    assert.equal(leader.holds(), false, "woken past the deadline, it no longer holds the lease");
    await assert.rejects(writes.create(refs.configMaps, configMap("after-the-stall")), NotServedError);
    assert.equal(await client.get(refs.configMaps, "after-the-stall", namespace), undefined);
    await eventually("the leader reports the loss", () => assert.ok(lost.length === 1, lost.join("; ")));

    const standby = new LeaderElector({ ...options, identity: "b" });
    const started = Date.now();
    await standby.acquire();
    assert.ok(standby.holds());
    assert.ok(Date.now() - started < 8_000, `the standby took over after ${Date.now() - started} ms`);
    await standby.release();
    await leader.release();
  });
});
