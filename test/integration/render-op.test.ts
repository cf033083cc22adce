// Operation mode through the real `crossplane alpha render op`, on examples/auto-export: the
// Operation a WatchOperation makes for a labelled XRD, and what its answer does on a real API server.
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { stringify } from "yaml";
import { refs } from "../../src/api/resources.ts";
import { claimsAnnotation, exportLabel } from "../../src/export/labelled.ts";
import { KubeClient, type KubeObject } from "../../src/kube/client.ts";
import { xrd } from "../fixtures/xrds.ts";
import { clientConfig, onFileDone, testClusters, uniqueSuffix } from "../support/clusters.ts";
import { crossplaneCrd, xrdCrdFile } from "../support/crossplane-standin.ts";
import { eventually } from "../support/eventually.ts";
import { applyCrds } from "../support/manifests.ts";
import { type RenderSetup, renderSetup } from "../support/render.ts";
import { crossplaneUnavailable, repoRoot } from "../support/tools.ts";

const example = join(repoRoot, "examples", "auto-export", "operation.yaml");
const exampleXrdName = "postgresqlinstances.anynines.com";

describe("crossplane alpha render op through the function", { skip: crossplaneUnavailable() }, () => {
  let setup: RenderSetup;
  let client: KubeClient;
  const group = `op${uniqueSuffix()}.klutch-bind.test`;
  const name = `gadgets.${group}`;

  function xrdManifest(metadata: Partial<KubeObject["metadata"]>): KubeObject {
    const manifest = xrd({ group, plural: "gadgets", kind: "Gadget", scope: "Namespaced" }) as KubeObject;
    return { ...manifest, metadata: { ...manifest.metadata, ...metadata } };
  }

  /** Renders the example Operation, pointed at `xrd`, which is written to a file as Crossplane would pass it. */
  async function renderOp(xrd: KubeObject) {
    const operation = join(setup.work, "operation.yaml");
    writeFileSync(operation, readFileSync(example, "utf8").replace(`name: ${exampleXrdName}`, `name: ${name}`));
    const required = join(setup.work, "xrd.yaml");
    writeFileSync(required, stringify(xrd));
    return setup.crossplane("alpha", "render", "op", operation, setup.functionsFile, "-e", required, "-r");
  }

  before(async () => {
    setup = await renderSetup();
    const { control } = await testClusters();
    client = KubeClient.fromConfig(clientConfig(control));
    onFileDone(async () => client.close());
    await client.apply(refs.crds, crossplaneCrd(xrdCrdFile), "test", true);
    await applyCrds(control, "deploy/control-plane/apiserviceexporttemplate-crd.yaml");
    await client.apply(
      refs.namespaces,
      { apiVersion: "v1", kind: "Namespace", metadata: { name: "crossplane-system" } },
      "test",
    );
    await eventually("Crossplane's XRD API served", () => client.list(refs.xrds));
    onFileDone(() => client.delete(refs.xrds, name));
  });
  after(() => setup.stop());

  it("renders the template and RBAC for a labelled XRD; applied, they go when the XRD goes", async () => {
    const claims = [{ group: "", resource: "secrets", version: "v1", selector: { owner: "Provider" } }];
    const live = await client.create(
      refs.xrds,
      xrdManifest({ labels: { [exportLabel]: "true" }, annotations: { [claimsAnnotation]: stringify(claims) } }),
    );
    assert.ok(live.metadata.uid);

    const { code, docs, stderr } = await renderOp(live);
    assert.equal(code, 0, stderr);
    assert.deepEqual(docs.map((d) => d.kind).sort(), [
      "APIServiceExportTemplate",
      "ClusterRole",
      "ClusterRole",
      "ClusterRoleBinding",
      "Operation",
    ]);
    assert.deepEqual(
      docs.filter((d) => d.kind === "Result"),
      [],
      "a live XRD has a uid: no NoOwner warning",
    );
    const operation = docs.find((d) => d.kind === "Operation");
    const status = operation?.status as {
      appliedResourceRefs: unknown[];
      pipeline: Array<{ step: string; output: unknown }>;
    };
    assert.equal(status.appliedResourceRefs.length, 4);
    assert.deepEqual(status.pipeline, [
      {
        step: "export",
        output: {
          exported: { group, resource: "gadgets", version: "v1", kind: "Gadget", scope: "Namespaced" },
          template: { name, namespace: "crossplane-system" },
        },
      },
    ]);
    const template = docs.find((d) => d.kind === "APIServiceExportTemplate");
    assert.deepEqual(template?.spec, {
      APIServiceSelector: { group, resource: "gadgets", version: "v1" },
      permissionClaims: claims,
    });
    const rendered = docs.filter((d) => d.kind !== "Operation") as KubeObject[];
    for (const doc of rendered) {
      assert.deepEqual(doc.metadata.ownerReferences, [
        {
          apiVersion: "apiextensions.crossplane.io/v2",
          kind: "CompositeResourceDefinition",
          name,
          uid: live.metadata.uid,
        },
      ]);
    }

    // What the Operation controller does with the answer: apply each object. Deleting the XRD then
    // lets the garbage collector remove all of them (about 40 s here: it learns new kinds slowly).
    const refOf = (kind: string) =>
      ({
        APIServiceExportTemplate: refs.templates,
        ClusterRole: refs.clusterRoles,
        ClusterRoleBinding: refs.clusterRoleBindings,
      })[kind];
    for (const doc of rendered) {
      const ref = refOf(doc.kind);
      assert.ok(ref, doc.kind);
      await client.apply(ref, doc, "apiextensions.crossplane.io/operation", true);
    }
    await client.delete(refs.xrds, name);
    await eventually(
      "the exported objects are garbage collected with the XRD",
      async () => {
        for (const doc of rendered) {
          const ref = refOf(doc.kind);
          assert.ok(ref);
          assert.equal(await client.get(ref, doc.metadata.name, doc.metadata.namespace), undefined, doc.metadata.name);
        }
      },
      120_000,
    );
  });

  it("renders nothing for an XRD without the label, and says why", async () => {
    const { code, docs, stderr } = await renderOp({ ...xrdManifest({ uid: "1" }) });
    assert.equal(code, 0, stderr);
    assert.deepEqual(
      docs.filter((d) => d.kind !== "Operation" && d.kind !== "Result"),
      [],
    );
    const results = docs.filter((d) => d.kind === "Result");
    assert.equal(results.length, 1, stringify(results));
    assert.equal(results[0]?.severity, "SEVERITY_NORMAL");
    assert.match(String(results[0]?.message), /not labelled bind\.klutch\.dev\/export=true/);
  });

  it("fails the step on a broken claims annotation, naming it", async () => {
    const { code, stderr } = await renderOp(
      xrdManifest({
        uid: "1",
        labels: { [exportLabel]: "true" },
        annotations: { [claimsAnnotation]: "- {group: ''}" },
      }),
    );
    assert.notEqual(code, 0);
    assert.match(
      stderr,
      /pipeline step "export" returned a fatal result: metadata\.annotations\["bind\.klutch\.dev\/permission-claims"\]\[0\]\.resource/,
    );
  });
});
