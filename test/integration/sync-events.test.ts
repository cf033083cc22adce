// Events the sync records: on namespaced and cluster-scoped objects, each said once in a while.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pino } from "pino";
import { refs } from "../../src/api/resources.ts";
import { KubeClient } from "../../src/kube/client.ts";
import { EventRecorder } from "../../src/sync/events.ts";
import { clientConfig, onFileDone, testClusters, testNamespace, uniqueSuffix } from "../support/clusters.ts";

describe("event recorder", () => {
  it("records an event once, not again for the same object, reason and message", async () => {
    const { control } = await testClusters();
    const client = KubeClient.fromConfig(clientConfig(control));
    onFileDone(async () => client.close());
    const namespace = await testNamespace(control, "events");
    const recorder = new EventRecorder(client, pino({ level: "silent" }));
    const binding = {
      apiVersion: "bind.klutch.dev/v1alpha1",
      kind: "AppClusterBinding",
      name: "b1",
      namespace,
      uid: `uid-${uniqueSuffix()}`,
    };
    await recorder.warn(binding, "Unreachable", "app cluster down");
    await recorder.warn(binding, "Unreachable", "app cluster down");
    await recorder.warn(binding, "Unreachable", "app cluster still down");
    const { items } = await client.list(refs.events, { namespace, fieldSelector: `involvedObject.uid=${binding.uid}` });
    assert.deepEqual(items.map((e) => e.message).sort(), ["app cluster down", "app cluster still down"]);
    assert.ok(items.every((e) => e.type === "Warning" && e.reason === "Unreachable"));

    // a cluster-scoped object (an XRD) has its events in default
    const xrd = {
      apiVersion: "apiextensions.crossplane.io/v2",
      kind: "CompositeResourceDefinition",
      name: `x${uniqueSuffix()}.klutch-bind.test`,
      uid: `uid-${uniqueSuffix()}`,
    };
    await recorder.warn(xrd, "InvalidPermissionClaims", "bad claims");
    await recorder.warn(xrd, "InvalidPermissionClaims", "bad claims");
    const forXrd = await client.list(refs.events, {
      namespace: "default",
      fieldSelector: `involvedObject.uid=${xrd.uid}`,
    });
    onFileDone(() => Promise.all(forXrd.items.map((e) => client.delete(refs.events, e.metadata.name, "default"))));
    assert.equal(forXrd.items.length, 1);
    assert.equal((forXrd.items[0]?.involvedObject as { name?: string } | undefined)?.name, xrd.name);
  });
});
