// klutch-bind's own AppClusterBinding (klutch.anynines.com/v1alpha1), written as its users write
// it: served like ours, with klutch-bind's conditions, and one owner per app cluster across both.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { kubeconfigSecretMarks } from "../../src/api/kubeconfig-secret.ts";
import { finalizer, providerNamespace } from "../../src/api/naming.ts";
import { refs } from "../../src/api/resources.ts";
import { conditionOf } from "../../src/kube/conditions.ts";
import { dropFinalizers, onFileDone, testNamespace, uniqueSuffix } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";
import { syncEnv } from "../support/sync-env.ts";

describe("klutch-bind's AppClusterBinding", () => {
  it("binds with kubeconfigSecretRef and apiExports, reports SecretValid, Ready and KonnectorDeployed", async () => {
    const env = await syncEnv({ resyncMs: 500 });
    await env.template([]);
    const ns = env.bindingNamespace;
    // the kubeconfig in a Secret of its own namespace, named with the binding's namespace
    const secrets = await testNamespace(env.control, "klutch-secrets");
    await env.controlClient.create(refs.secrets, {
      apiVersion: "v1",
      kind: "Secret",
      metadata: {
        name: "team-a-cluster",
        namespace: secrets,
        ...kubeconfigSecretMarks({ group: refs.klutchBindings.group, namespace: ns, name: "team-a" }),
      },
      data: { kubeconfig: Buffer.from(env.appKubeconfig).toString("base64") },
    });
    const binding = await env.controlClient.create(refs.klutchBindings, {
      apiVersion: "klutch.anynines.com/v1alpha1",
      kind: "AppClusterBinding",
      metadata: { name: "team-a", namespace: ns },
      spec: {
        kubeconfigSecretRef: { name: "team-a-cluster", namespace: secrets, key: "kubeconfig" },
        apiExports: [{ group: env.ref.group, resource: env.ref.resource }],
        konnector: { deploy: true },
      },
    });
    onFileDone(async () => {
      await dropFinalizers(env.controlClient, refs.klutchBindings, "team-a", ns);
    });
    await eventually("Ready", async () => {
      const read = await env.controlClient.get(refs.klutchBindings, "team-a", ns);
      assert.equal(conditionOf(read, "Ready")?.status, "True", JSON.stringify(read?.status));
      assert.equal(conditionOf(read, "SecretValid")?.status, "True");
      const konnector = conditionOf(read, "KonnectorDeployed");
      assert.equal(konnector?.status, "False");
      assert.match(konnector?.message ?? "", /spec\.konnector\.deploy is ignored: .* no konnector is deployed/);
      assert.ok(read?.metadata.finalizers?.includes(finalizer));
    });
    const appNs = `klutch-binding-${uniqueSuffix()}`;
    await env.appObject(appNs, "db");
    const pns = providerNamespace(binding.metadata.uid ?? "", appNs);
    await eventually("spec up", async () => assert.ok(await env.controlClient.get(env.ref, "db", pns)));

    // ours for the same cluster and API is refused, naming klutch-bind's
    await env.bindWith("ours-too", env.appKubeconfig);
    await eventually("refused across the two kinds", async () => {
      const read = await env.controlClient.get(refs.bindings, "ours-too", ns);
      assert.match(
        conditionOf(read, "Ready")?.message ?? "",
        new RegExp(`through AppClusterBinding ${ns}/team-a \\(klutch\\.anynines\\.com\\)`),
      );
    });

    // the refused one goes first: once team-a is gone it may take the export over, and put the
    // finalizer back on the app object this test then waits to see released
    await env.controlClient.delete(refs.bindings, "ours-too", ns);
    await eventually("the refused binding gone", async () =>
      assert.equal(await env.controlClient.get(refs.bindings, "ours-too", ns), undefined),
    );

    // deleted with kubectl: released as ours are
    await env.controlClient.delete(refs.klutchBindings, "team-a", ns);
    await eventually("gone, app object released", async () => {
      assert.equal(await env.controlClient.get(refs.klutchBindings, "team-a", ns), undefined);
      const app = await env.appClient.get(env.ref, "db", appNs);
      assert.ok(app && !app.metadata.finalizers?.includes(finalizer));
    });
  });

  it("says SecretValid=False, naming the marks and the flag, for an unmarked Secret (the default: marked)", async () => {
    const env = await syncEnv({ resyncMs: 500 });
    await env.template([]);
    const ns = env.bindingNamespace;
    await env.controlClient.create(refs.secrets, {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "plain", namespace: ns },
      data: { kubeconfig: Buffer.from(env.appKubeconfig).toString("base64") },
    });
    await env.controlClient.create(refs.klutchBindings, {
      apiVersion: "klutch.anynines.com/v1alpha1",
      kind: "AppClusterBinding",
      metadata: { name: "unmarked", namespace: ns },
      spec: {
        kubeconfigSecretRef: { name: "plain", namespace: ns, key: "kubeconfig" },
        apiExports: [{ group: env.ref.group, resource: env.ref.resource }],
      },
    });
    await eventually("SecretValid=False", async () => {
      const read = await env.controlClient.get(refs.klutchBindings, "unmarked", ns);
      const valid = conditionOf(read, "SecretValid");
      assert.equal(valid?.status, "False", JSON.stringify(read?.status));
      assert.equal(valid?.reason, "KubeconfigNotMarked");
      assert.match(valid?.message ?? "", /label it app\.kubernetes\.io\/managed-by=klutch-bind/);
      assert.match(
        valid?.message ?? "",
        new RegExp(`annotate it bind\\.klutch\\.dev/kubeconfig-for=klutch\\.anynines\\.com/${ns}/unmarked`),
      );
      // the default (marked) names the opt-in that would take this Secret as it is
      assert.match(valid?.message ?? "", /or run the sync with --kubeconfig-secrets same-namespace/);
      assert.equal(conditionOf(read, "Ready")?.status, "False");
    });
  });
});
