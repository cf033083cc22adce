// The local clusters behave like real ones for what the product relies on: CRDs with a status
// subresource, watch, server-side apply.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import {
  ApiextensionsV1Api,
  type KubernetesObject,
  type KubernetesObjectApi,
  PatchStrategy,
  Watch,
} from "@kubernetes/client-node";
import { widgetCrd } from "../fixtures/crds.ts";
import type { Cluster } from "../support/cluster.ts";
import { kubeConfig, objects, onFileDone, testClusters, testNamespace, uniqueSuffix } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";
import { kubeRequest } from "../support/rest.ts";

type Widget = KubernetesObject & { spec?: { size?: number; color?: string }; status?: { phase?: string } };

describe("a local cluster serves custom resources", () => {
  let cluster: Cluster;
  let api: KubernetesObjectApi;
  let namespace: string;
  const group = `t${uniqueSuffix()}.klutch-bind.test`;
  const crdName = `widgets.${group}`;
  const apiVersion = `${group}/v1`;

  before(async () => {
    cluster = (await testClusters()).control;
    api = objects(cluster);
    namespace = await testNamespace(cluster);
    const extensions = kubeConfig(cluster).makeApiClient(ApiextensionsV1Api);
    await extensions.createCustomResourceDefinition({ body: widgetCrd(group) as never });
    onFileDone(() => extensions.deleteCustomResourceDefinition({ name: crdName }));
    await eventually("CRD established", async () => {
      const crd = await extensions.readCustomResourceDefinition({ name: crdName });
      assert.ok(crd.status?.conditions?.some((c) => c.type === "Established" && c.status === "True"));
    });
    // A new resource answers watches with 429 until its watch cache is initialized; real clients retry.
    await eventually("watch cache ready", async () => {
      const probe = await kubeRequest(
        kubeConfig(cluster),
        "GET",
        `/apis/${apiVersion}/widgets?watch=true&timeoutSeconds=1`,
      );
      assert.equal(probe.status, 200, probe.body);
    });
  });

  it("creates, watches and updates the status of a custom resource", async () => {
    const seen: string[] = [];
    let watchEnded: unknown;
    const watch = new Watch(kubeConfig(cluster));
    const stream = await watch.watch(
      `/apis/${apiVersion}/namespaces/${namespace}/widgets`,
      {},
      (type: string, obj: Widget) => seen.push(`${type}:${obj.status?.phase ?? "-"}`),
      (err: unknown) => {
        watchEnded = err ?? "closed by the server";
      },
    );
    try {
      const created = await api.create<Widget>({
        apiVersion,
        kind: "Widget",
        metadata: { name: "w1", namespace },
        spec: { size: 3 },
      });
      assert.equal(created.spec?.size, 3);

      // the main resource ignores status; only /status changes it
      const replaced = await api.replace<Widget>({ ...created, status: { phase: "Ignored" } });
      assert.equal(replaced.status?.phase, undefined);
      const path = `/apis/${apiVersion}/namespaces/${namespace}/widgets/w1/status`;
      const patched = await kubeRequest(
        kubeConfig(cluster),
        "PATCH",
        path,
        { status: { phase: "Ready" } },
        "application/merge-patch+json",
      );
      assert.equal(patched.status, 200, patched.body);
      const read = await api.read<Widget>({ apiVersion, kind: "Widget", metadata: { name: "w1", namespace } });
      assert.equal(read.status?.phase, "Ready");
      await eventually("watch saw the status", () =>
        assert.ok(seen.includes("MODIFIED:Ready"), `seen ${seen.join(",")}; watch ended: ${String(watchEnded)}`),
      );
      assert.equal(seen[0], "ADDED:-");
    } finally {
      stream.abort();
    }
  });

  it("applies with server-side apply and tracks the field manager", async () => {
    const applied = await api.patch<Widget>(
      { apiVersion, kind: "Widget", metadata: { name: "w2", namespace }, spec: { size: 1, color: "red" } },
      undefined,
      undefined,
      "klutch-bind-test",
      true,
      PatchStrategy.ServerSideApply,
    );
    assert.equal(applied.spec?.color, "red");
    const managers = applied.metadata?.managedFields?.map((f) => `${f.manager}/${f.operation}`);
    assert.deepEqual(managers, ["klutch-bind-test/Apply"]);

    // a second manager owning "size" makes a conflicting apply fail without force
    await api.patch<Widget>(
      { apiVersion, kind: "Widget", metadata: { name: "w2", namespace }, spec: { size: 5 } },
      undefined,
      undefined,
      "other-manager",
      true,
      PatchStrategy.ServerSideApply,
    );
    await assert.rejects(
      api.patch<Widget>(
        { apiVersion, kind: "Widget", metadata: { name: "w2", namespace }, spec: { size: 2, color: "red" } },
        undefined,
        undefined,
        "klutch-bind-test",
        false,
        PatchStrategy.ServerSideApply,
      ),
      (err: unknown) => String(err).includes("409") || String(err).toLowerCase().includes("conflict"),
    );
  });
});
