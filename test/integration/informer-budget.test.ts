// Informers sharing a cache budget, on a real API server: growth past it fails the list or watch
// and changes nothing; what shrinks or stops gives its share back.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { CacheBudget, CacheFullError } from "../../src/kube/cache-budget.ts";
import { KubeClient } from "../../src/kube/client.ts";
import { Informer } from "../../src/kube/informer.ts";
import { onFileDone, testClusters, testNamespace } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";

const configMaps = { group: "", version: "v1", resource: "configmaps", namespaced: true };

describe("informers sharing a cache budget", () => {
  it("fail past it without changing their caches, and recover when room is given back", async () => {
    const cluster = (await testClusters()).control;
    const client = KubeClient.fromKubeconfigText(readFileSync(cluster.kubeconfigPath, "utf8"));
    onFileDone(async () => client.close());
    const [a, b] = [await testNamespace(cluster, "budget-a"), await testNamespace(cluster, "budget-b")];
    const make = async (namespace: string, from: number, count: number) => {
      for (let i = from; i < from + count; i++) {
        await client.create(configMaps, {
          apiVersion: "v1",
          kind: "ConfigMap",
          metadata: { name: `cm-${i}`, namespace, labels: { "budget-test": "yes" } },
          data: { i: String(i) },
        });
      }
    };
    await make(a, 0, 10);
    await make(b, 0, 10);
    const budget = new CacheBudget({ maxObjects: 25, maxBytes: 10 * 1024 * 1024 }, "the test's caches");
    const informerA = new Informer(client, configMaps, { namespace: a, labelSelector: "budget-test", budget });
    const informerB = new Informer(client, configMaps, { namespace: b, labelSelector: "budget-test", budget });
    onFileDone(() => Promise.all([informerA.stop(), informerB.stop()]));
    informerA.start();
    informerB.start();
    await Promise.all([informerA.waitForSync(30_000), informerB.waitForSync(30_000)]);
    assert.equal(budget.objects, 20);
    assert.ok(budget.bytes > 0);

    // a's watch takes 5 more, then fails; its relist (30 > 25) fails too and keeps what it had
    await make(a, 10, 10);
    await eventually("a is failing with the budget full", () => {
      assert.ok(informerA.failing);
      assert.ok(informerA.lastError instanceof CacheFullError, String(informerA.lastError));
      assert.match(String(informerA.lastError), /the test's caches would hold \d+ objects.*limit of 25 objects/);
    });
    assert.equal(budget.objects, 25);
    assert.equal(informerA.list().length, 15, "a keeps the objects it had");
    assert.equal(informerB.list().length, 10, "b untouched");
    assert.equal(informerB.failing, false);

    // b shrinks: a's next relist fits. The budget counts both caches, so it is checked once b's
    // cache has seen its last deletion too, not only a's relist (which can come first).
    for (let i = 0; i < 10; i++) await client.delete(configMaps, `cm-${i}`, b);
    await eventually(
      "a recovered and b saw its deletions",
      () => {
        assert.equal(informerB.list().length, 0);
        assert.equal(informerA.list().length, 20);
        assert.equal(informerA.failing, false);
      },
      40_000,
    );
    assert.equal(budget.objects, 20);

    await informerA.stop();
    assert.equal(budget.objects, 0, "a stopped: its share given back");
    await informerB.stop();
    assert.equal(budget.objects, 0);
    assert.equal(budget.bytes, 0);
    assert.throws(() => informerA.start(), /budget was given back/);
  });
});
