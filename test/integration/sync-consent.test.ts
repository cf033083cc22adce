// Consent and scope: templates count only in the namespaces the sync reads them from, and a
// template whose claims grow does not extend a binding until the binding accepts them.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { acceptAll } from "../../src/api/consent.ts";
import { providerNamespace } from "../../src/api/naming.ts";
import { refs } from "../../src/api/resources.ts";
import type { PermissionClaim } from "../../src/export/types.ts";
import { conditionOf } from "../../src/kube/conditions.ts";
import { testNamespace, uniqueSuffix } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";
import { syncEnv } from "../support/sync-env.ts";

const secrets: PermissionClaim = { group: "", resource: "secrets", version: "v1", selector: { owner: "Provider" } };
const configMaps: PermissionClaim = {
  group: "",
  resource: "configmaps",
  version: "v1",
  selector: { owner: "Consumer", names: ["app-settings"] },
};

describe("templates and consent", () => {
  it("reads templates only from its template namespaces", async () => {
    const env = await syncEnv({ resyncMs: 500 });
    // a template for the API, but in a namespace the sync does not read templates from
    const elsewhere = await testNamespace(env.control, "rogue-templates");
    await env.template([secrets], elsewhere);
    await env.kubeconfigSecret("scoped", env.appKubeconfig);
    await env.controlClient.create(refs.bindings, {
      apiVersion: "bind.klutch.dev/v1alpha1",
      kind: "AppClusterBinding",
      metadata: { name: "scoped", namespace: env.bindingNamespace },
      spec: {
        kubeconfigSecretRef: { name: "scoped-kubeconfig" },
        exports: [{ group: env.ref.group, resource: "postgresqlinstances" }],
      },
    });
    await eventually("the template elsewhere does not count", async () => {
      const read = await env.controlClient.get(refs.bindings, "scoped", env.bindingNamespace);
      assert.match(
        conditionOf(read, "Ready")?.message ?? "",
        /no APIServiceExportTemplate exports postgresqlinstances/,
      );
    });
    await env.template([]);
    await env.ready("scoped");
  });

  it("records the claims a binding accepted; claims added later wait for consent", async () => {
    const env = await syncEnv({ resyncMs: 500 });
    const binding = await env.bind("consenting", [secrets]);
    await env.ready("consenting");
    await eventually("the accepted claims are recorded on the binding", async () => {
      const read = await env.controlClient.get(refs.bindings, "consenting", env.bindingNamespace);
      const exports = (read?.spec as { exports?: Array<{ permissionClaims?: unknown }> } | undefined)?.exports ?? [];
      assert.deepEqual(exports[0]?.permissionClaims, acceptAll([secrets]));
    });
    const ns = `consent-${uniqueSuffix()}`;
    await env.appObject(ns, "db");
    const pns = providerNamespace(binding.metadata.uid ?? "", ns);
    await eventually("copied", async () => assert.ok(await env.controlClient.get(env.ref, "db", pns)));

    // the provider adds a claim: the app's settings go up to the control plane, if accepted
    await env.template([secrets, configMaps]);
    await env.appClient.create(refs.configMaps, {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "app-settings", namespace: ns },
      data: { plan: "gold" },
    });
    await eventually("the binding says the new claim waits", async () => {
      const read = await env.controlClient.get(refs.bindings, "consenting", env.bindingNamespace);
      const claims = conditionOf(read, "ClaimsAccepted");
      assert.equal(claims?.status, "False");
      assert.match(claims?.message ?? "", /configmaps\.core \(owner Consumer\)/);
      assert.equal(conditionOf(read, "Ready")?.status, "True", "what was accepted still syncs");
    });
    // a Secret of the accepted claim, made after the ConfigMap, comes down: the claims the sync
    // runs now have seen later changes than the ConfigMap
    await env.controlClient.create(refs.secrets, {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "consent-probe", namespace: pns },
      stringData: { probe: "1" },
    });
    await eventually("the accepted claim still syncs", async () =>
      assert.ok(await env.appClient.get(refs.secrets, "consent-probe", ns)),
    );
    assert.equal(await env.controlClient.get(refs.configMaps, "app-settings", pns), undefined, "not synced unaccepted");

    // accepting it (as klutch-bind bind or the web page would record it)
    const read = await env.controlClient.get(refs.bindings, "consenting", env.bindingNamespace);
    const spec = read?.spec as { exports: Array<Record<string, unknown>> };
    await env.controlClient.mergePatch(refs.bindings, "consenting", env.bindingNamespace, {
      spec: { exports: [{ ...spec.exports[0], permissionClaims: acceptAll([secrets, configMaps]) }] },
    });
    await eventually("synced once accepted", async () => {
      const copy = await env.controlClient.get(refs.configMaps, "app-settings", pns);
      assert.deepEqual(copy?.data, { plan: "gold" });
      const now = await env.controlClient.get(refs.bindings, "consenting", env.bindingNamespace);
      assert.equal(conditionOf(now, "ClaimsAccepted")?.status, "True");
    });
  });
});
