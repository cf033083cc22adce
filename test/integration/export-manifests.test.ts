// What the function writes is what a real API server with our CRDs accepts, and the seed's own
// examples are accepted verbatim.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import type { KubernetesObject } from "@kubernetes/client-node";
import { composedKeys } from "../../src/function/composed-keys.ts";
import { runExportFunction } from "../../src/function/export-function.ts";
import { seedClaims, xrd } from "../fixtures/xrds.ts";
import type { Cluster } from "../support/cluster.ts";
import { testClusters, testNamespace, uniqueSuffix } from "../support/clusters.ts";
import { desiredJson, request } from "../support/function-client.ts";
import { apply, applyCrds, readManifests } from "../support/manifests.ts";

/** A template's spec as the API server stores it: with the defaults of klutch-bind's schema. */
function withDefaults(spec: unknown): unknown {
  const { permissionClaims, ...rest } = spec as { permissionClaims?: Array<Record<string, unknown>> };
  if (permissionClaims === undefined) return spec;
  return {
    ...rest,
    permissionClaims: permissionClaims.map((claim) => ({
      group: "",
      read: {},
      onConflict: { recreateWhenConsumerSideDeleted: true },
      ...claim,
      selector: { names: ["*"], namespaces: ["*"], ...(claim.selector as object | undefined) },
    })),
  };
}

describe("the template CRD and what the function writes, on a real API server", () => {
  let cluster: Cluster;
  before(async () => {
    cluster = (await testClusters()).control;
    await applyCrds(cluster, "deploy/control-plane/apiserviceexporttemplate-crd.yaml");
    await apply(cluster, [{ apiVersion: "v1", kind: "Namespace", metadata: { name: "crossplane-system" } }]);
  });

  it("accepts the seed's two examples verbatim", async () => {
    // in a namespace of this test's own, so no other template of the same name interferes
    const namespace = await testNamespace(cluster);
    const seeds = readManifests("test/fixtures/seed-templates.yaml").map(
      (o) => ({ ...o, metadata: { ...o.metadata, namespace } }) as KubernetesObject,
    );
    const applied = await apply(cluster, seeds);
    assert.deepEqual(
      applied.map((o) => (o as { spec: unknown }).spec),
      seeds.map((o) => withDefaults((o as { spec: unknown }).spec)),
      "stored as written with klutch-bind's defaults, nothing pruned",
    );
  });

  it("accepts the template, the ClusterRoles and the ClusterRoleBinding the function composes", async () => {
    const name = `export-${uniqueSuffix()}`;
    const rsp = await runExportFunction(
      request({
        xr: {
          apiVersion: "bind.klutch.dev/v1alpha1",
          kind: "ServiceExport",
          metadata: { name },
          spec: { xrd: "postgresqlinstances.anynines.com", permissionClaims: seedClaims },
        },
        required: { xrd: [xrd({})] },
      }),
    );
    const desired = desiredJson(rsp);
    const objects = Object.values(composedKeys).map((key) => desired[key] as unknown as KubernetesObject);
    const applied = await apply(cluster, objects);
    assert.deepEqual(
      applied.map((o) => `${o.kind}/${o.metadata?.name}`),
      [
        `APIServiceExportTemplate/${name}`,
        `ClusterRole/klutch-bind:export:${name}`,
        `ClusterRoleBinding/klutch-bind:export:${name}`,
        `ClusterRole/klutch-bind:export:${name}:claims`,
      ],
    );
    assert.deepEqual((applied[0] as { spec: unknown }).spec, withDefaults(desired[composedKeys.template]?.spec));
  });

  it("rejects a template whose claim has an unknown owner", async () => {
    const [bad] = readManifests("test/fixtures/seed-templates.yaml").slice(1);
    const broken = JSON.parse(JSON.stringify(bad)) as {
      metadata: { name: string };
      spec: { permissionClaims: Array<{ selector: { owner: string } }> };
    };
    broken.metadata.name = `broken-${uniqueSuffix()}`;
    const claim = broken.spec.permissionClaims[0];
    assert.ok(claim);
    claim.selector.owner = "Nobody";
    await assert.rejects(apply(cluster, [broken as unknown as KubernetesObject]), (err: unknown) => {
      const { code, body } = err as { code: number; body: string };
      assert.equal(code, 422);
      assert.match((JSON.parse(body) as { message: string }).message, /selector\.owner: Unsupported value: "Nobody"/);
      return true;
    });
  });
});
