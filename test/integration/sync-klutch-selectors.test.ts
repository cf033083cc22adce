// A template written as klutch-bind users write it (no group, labelSelectors, fieldSelectors):
// what its claims select arrives, nothing else does.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { providerNamespace } from "../../src/api/naming.ts";
import { refs } from "../../src/api/resources.ts";
import type { KubeObject } from "../../src/kube/client.ts";
import { uniqueSuffix } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";
import { syncEnv } from "../support/sync-env.ts";

function secret(namespace: string, name: string, labels: Record<string, string>, type = "Opaque"): KubeObject {
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name, namespace, labels },
    type,
    data: { value: Buffer.from(name).toString("base64") },
  };
}

describe("klutch-bind's claim selectors", () => {
  it("copies only what labelSelectors and fieldSelectors select", async () => {
    const env = await syncEnv({ resyncMs: 500 });
    await env.template([
      {
        resource: "secrets",
        version: "v1",
        selector: {
          owner: "Provider",
          labelSelectors: [{ "example.com/role": "credentials" }, { "example.com/shared": "yes" }],
          fieldSelectors: ["type!=kubernetes.io/tls"],
        },
      },
      {
        resource: "configmaps",
        version: "v1",
        selector: { owner: "Consumer", fieldSelectors: ["metadata.name=app-config"] },
      },
    ]);
    await env.kubeconfigSecret("klutch-shaped", env.appKubeconfig);
    const binding = await env.controlClient.create(refs.bindings, {
      apiVersion: "bind.klutch.dev/v1alpha1",
      kind: "AppClusterBinding",
      metadata: { name: "klutch-shaped", namespace: env.bindingNamespace },
      spec: {
        kubeconfigSecretRef: { name: "klutch-shaped-kubeconfig" },
        exports: [{ group: env.ref.group, resource: "postgresqlinstances" }],
      },
    });
    await env.ready("klutch-shaped");
    const ns = `klutch-${uniqueSuffix()}`;
    await env.appObject(ns, "db");
    const pns = providerNamespace(binding.metadata.uid ?? "", ns);
    await eventually("provider copy", async () => assert.ok(await env.controlClient.get(env.ref, "db", pns)));

    for (const s of [
      secret(pns, "selected-by-role", { "example.com/role": "credentials" }),
      secret(pns, "selected-as-shared", { "example.com/shared": "yes" }),
      secret(pns, "other-role", { "example.com/role": "internal" }),
      secret(pns, "no-labels", {}),
      {
        ...secret(pns, "tls-credentials", { "example.com/role": "credentials" }),
        type: "kubernetes.io/tls",
        data: {
          "tls.crt": Buffer.from("c").toString("base64"),
          "tls.key": Buffer.from("k").toString("base64"),
        },
      },
    ]) {
      await env.controlClient.create(refs.secrets, s);
    }
    for (const name of ["app-config", "other-config"]) {
      await env.appClient.create(refs.configMaps, {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name, namespace: ns },
        data: { name },
      });
    }
    await eventually("the selected ones arrive", async () => {
      assert.ok(await env.appClient.get(refs.secrets, "selected-by-role", ns));
      assert.ok(await env.appClient.get(refs.secrets, "selected-as-shared", ns));
      assert.ok(await env.controlClient.get(refs.configMaps, "app-config", pns));
    });
    // later changes of what is selected, on the same watches: once they are synced, the sync has
    // seen the objects made before them
    await env.controlClient.create(refs.secrets, secret(pns, "selected-later", { "example.com/role": "credentials" }));
    await env.appClient.mergePatch(refs.configMaps, "app-config", ns, { data: { name: "app-config", later: "yes" } });
    await eventually("the later changes arrive", async () => {
      assert.ok(await env.appClient.get(refs.secrets, "selected-later", ns));
      const copy = await env.controlClient.get(refs.configMaps, "app-config", pns);
      assert.equal((copy?.data as Record<string, string> | undefined)?.later, "yes");
    });
    for (const name of ["other-role", "no-labels", "tls-credentials"]) {
      assert.equal(await env.appClient.get(refs.secrets, name, ns), undefined, `${name} never reaches the app cluster`);
    }
    assert.equal(await env.controlClient.get(refs.configMaps, "other-config", pns), undefined);
  });
});
