// Issue 24 point 10, on real API servers: klutch-bind's cluster-scoped claim (selector.namespaces:
// []) is refused, not ignored: the binding says ClaimFieldsActedOn=False naming
// selector.namespaces (its other claims sync as before), and a required one keeps the export from
// being Ready, saying why.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { refs } from "../../src/api/resources.ts";
import { conditionOf } from "../../src/kube/conditions.ts";
import { boundWith, secret } from "../support/claim-binding.ts";
import { eventually } from "../support/eventually.ts";
import { syncEnv } from "../support/sync-env.ts";

const clusterScoped = {
  group: "storage.k8s.io",
  resource: "storageclasses",
  version: "v1",
  selector: { namespaces: [], owner: "Provider" },
};

describe("a cluster-scoped claim (selector.namespaces: [])", () => {
  it("is named as not acted on while the other claims sync; a required one keeps the export from being Ready", async () => {
    const env = await syncEnv({ resyncMs: 500 });
    const { ns, pns } = await boundWith(env, "cluster-wide", [
      clusterScoped,
      { resource: "secrets", version: "v1", selector: { owner: "Provider" } },
    ]);
    await eventually("named on the binding", async () => {
      const read = await env.controlClient.get(refs.bindings, "cluster-wide", env.bindingNamespace);
      const acted = conditionOf(read, "ClaimFieldsActedOn");
      assert.equal(acted?.status, "False", JSON.stringify(read?.status));
      assert.match(
        acted?.message ?? "",
        /storageclasses\.storage\.k8s\.io \(owner Provider\) selector\.namespaces is \[\] \(a cluster-scoped claim\): the sync syncs namespaced objects only/,
      );
      assert.equal(conditionOf(read, "Ready")?.status, "True");
    });
    // the other claim syncs
    await eventually("provider namespace", async () => assert.ok(await env.controlClient.get(refs.namespaces, pns)));
    await env.controlClient.create(refs.secrets, secret(pns, "creds", { password: "one" }));
    await eventually("the namespaced claim syncs", async () =>
      assert.ok(await env.appClient.get(refs.secrets, "creds", ns)),
    );

    const other = await syncEnv({ resyncMs: 500 });
    // bound by hand: boundWith waits for Ready, which this binding never is
    await other.template([{ ...clusterScoped, required: true }]);
    await other.kubeconfigSecret("cluster-wide-required", other.appKubeconfig);
    await other.controlClient.create(refs.bindings, {
      apiVersion: "bind.klutch.dev/v1alpha1",
      kind: "AppClusterBinding",
      metadata: { name: "cluster-wide-required", namespace: other.bindingNamespace },
      spec: {
        kubeconfigSecretRef: { name: "cluster-wide-required-kubeconfig" },
        exports: [{ group: other.ref.group, resource: "postgresqlinstances" }],
      },
    });
    await eventually("not Ready, naming the field", async () => {
      const read = await other.controlClient.get(refs.bindings, "cluster-wide-required", other.bindingNamespace);
      const ready = conditionOf(read, "Ready");
      assert.equal(ready?.status, "False", JSON.stringify(read?.status));
      assert.match(
        ready?.message ?? "",
        /required claims storageclasses\.storage\.k8s\.io \(owner Provider\): selector\.namespaces is \[\] \(a cluster-scoped claim\)/,
      );
    });
  });
});
