// Credentials are the binding's own: an app team holding klutch-bind:binder (as deploy/ grants it)
// can neither read nor change the Secrets of its binding namespace, and cannot make the sync use
// one of them (a provider's credentials, another team's kubeconfig) for its binding.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { refs } from "../../src/api/resources.ts";
import { createBinding } from "../../src/bind/binding.ts";
import { KubeApiError, KubeClient } from "../../src/kube/client.ts";
import { conditionOf } from "../../src/kube/conditions.ts";
import { accountKubeconfig, grant, serviceAccount } from "../support/accounts.ts";
import { kubeConfig, onFileDone, uniqueSuffix } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";
import { apply, readManifests } from "../support/manifests.ts";
import { bindingReconciledAgain } from "../support/sync-counts.ts";
import { syncEnv } from "../support/sync-env.ts";

const forbidden = (err: unknown) => err instanceof KubeApiError && err.code === 403;

describe("a tenant and the Secrets of its binding namespace", () => {
  it("cannot read, change or borrow a Secret it did not write", async () => {
    const env = await syncEnv({ resyncMs: 500 });
    await apply(
      env.control,
      readManifests("deploy/control-plane/web-rbac.yaml").filter(
        (o) => o.kind === "ClusterRole" && o.metadata?.name === "klutch-bind:binder",
      ) as never,
    );
    const tenant = await serviceAccount(env.controlClient, env.bindingNamespace, `tenant-${uniqueSuffix()}`);
    await grant(env.controlClient, tenant, "klutch-bind:binder", env.bindingNamespace);
    const asTenant = KubeClient.fromKubeconfigText(accountKubeconfig(kubeConfig(env.control), tenant).exportConfig());
    onFileDone(async () => asTenant.close());

    // a working kubeconfig someone else stored (a provider's, another team's)
    await env.controlClient.create(refs.secrets, {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "someone-elses-kubeconfig", namespace: env.bindingNamespace },
      data: { kubeconfig: Buffer.from(env.appKubeconfig).toString("base64") },
    });
    const ns = env.bindingNamespace;
    await assert.rejects(asTenant.get(refs.secrets, "someone-elses-kubeconfig", ns), forbidden, "no get");
    await assert.rejects(
      asTenant.mergePatch(refs.secrets, "someone-elses-kubeconfig", ns, {}),
      forbidden,
      "no patch (its answer would be the whole Secret)",
    );
    await assert.rejects(
      asTenant.mergePatch(refs.secrets, "someone-elses-kubeconfig", ns, {
        metadata: { annotations: { "bind.klutch.dev/kubeconfig-for": "borrowed" } },
      }),
      forbidden,
      "no marking it for its own binding",
    );
    await assert.rejects(asTenant.delete(refs.secrets, "someone-elses-kubeconfig", ns), forbidden, "no delete");

    // naming it in a binding (RBAC lets the tenant create bindings) gets it nowhere
    await env.template([]);
    await asTenant.create(refs.bindings, {
      apiVersion: "bind.klutch.dev/v1alpha1",
      kind: "AppClusterBinding",
      metadata: { name: "borrowed", namespace: ns },
      spec: {
        kubeconfigSecretRef: { name: "someone-elses-kubeconfig" },
        exports: [{ group: env.ref.group, resource: env.ref.resource }],
      },
    });
    await eventually("refused", async () => {
      const read = await env.controlClient.get(refs.bindings, "borrowed", ns);
      const connected = conditionOf(read, "Connected");
      assert.equal(connected?.reason, "KubeconfigNotMarked", JSON.stringify(read?.status));
      assert.match(connected?.message ?? "", /not a klutch-bind kubeconfig Secret/);
    });
    // the verdict stands on the next reconciles too (one runs every resync, 500 ms)
    await bindingReconciledAgain(env, "borrowed");
    const crd = await env.appClient.get(refs.crds, `${env.ref.resource}.${env.ref.group}`);
    assert.equal(crd, undefined, "nothing was installed in the cluster behind that Secret");

    // its own kubeconfig, stored as `klutch-bind bind` stores it, works
    await asTenant.delete(refs.bindings, "borrowed", ns);
    const { kept } = await createBinding(
      asTenant,
      {
        name: "own",
        namespace: ns,
        kubeconfig: env.appKubeconfig,
        exports: [
          {
            id: `${env.ref.resource}.${env.ref.group}`,
            group: env.ref.group,
            resource: env.ref.resource,
            version: "v1",
            template: "postgresqlinstances",
            claims: [],
          },
        ],
      },
      "test",
    );
    assert.equal(kept, false);
    await env.ready("own");
    // binding it again (to change its exports, say) keeps the Secret it may not replace
    const again = await createBinding(
      asTenant,
      {
        name: "own",
        namespace: ns,
        kubeconfig: env.appKubeconfig,
        exports: [],
      },
      "test",
    );
    assert.equal(again.kept, true);
  });
});
