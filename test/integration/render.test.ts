// The real `crossplane render` against the running function, on examples/export.
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { stringify } from "yaml";
import { testClusters } from "../support/clusters.ts";
import { apply, applyCrds } from "../support/manifests.ts";
import { type Doc, type RenderSetup, renderSetup } from "../support/render.ts";
import { crossplaneUnavailable, repoRoot } from "../support/tools.ts";

const examples = join(repoRoot, "examples", "export");
type Condition = { type: string; status: string; reason: string };

function conditionsOf(doc: Doc | undefined): Condition[] {
  return (doc?.status as { conditions?: Condition[] } | undefined)?.conditions ?? [];
}

describe("crossplane render through the function", { skip: crossplaneUnavailable() }, () => {
  let setup: RenderSetup;
  let work: string;

  before(async () => {
    setup = await renderSetup();
    work = setup.work;
  });
  after(() => setup.stop());

  const render = (xrFile: string, ...flags: string[]) =>
    setup.crossplane("render", xrFile, join(examples, "composition.yaml"), setup.functionsFile, ...flags);

  it("prints the template in the seed's shape, the RBAC, and the XR's status", async () => {
    const { code, docs, stderr } = await render(
      join(examples, "xr.yaml"),
      `--required-resources=${join(examples, "required-resources.yaml")}`,
    );
    assert.equal(code, 0, stderr);
    assert.deepEqual(
      docs.map((d) => d.kind),
      ["ServiceExport", "APIServiceExportTemplate", "ClusterRole", "ClusterRole", "ClusterRoleBinding"],
    );
    const [xr, template] = docs;
    assert.deepEqual(template?.spec, {
      APIServiceSelector: { group: "anynines.com", resource: "postgresqlinstances", version: "v1" },
      permissionClaims: [
        { group: "", resource: "secrets", version: "v1", selector: { owner: "Provider" } },
        { group: "", resource: "configmaps", version: "v1", selector: { owner: "Provider" } },
      ],
    });
    assert.equal(template?.apiVersion, "example-backend.klutch.anynines.com/v1alpha1");
    const status = xr?.status as {
      exported: unknown;
      conditions: Array<{ type: string; status: string; reason: string }>;
    };
    assert.deepEqual(status.exported, {
      group: "anynines.com",
      resource: "postgresqlinstances",
      version: "v1",
      kind: "PostgresqlInstance",
      scope: "Namespaced",
    });
    assert.ok(conditionsOf(xr).some((c) => c.type === "Exported" && c.status === "True" && c.reason === "Available"));

    // everything rendered is accepted by a real API server with our CRDs (Crossplane fills the
    // owner's uid; render leaves it empty, so the reference is dropped here)
    const { control } = await testClusters();
    await applyCrds(control, "deploy/control-plane/apiserviceexporttemplate-crd.yaml");
    await apply(control, [{ apiVersion: "v1", kind: "Namespace", metadata: { name: "crossplane-system" } }]);
    const composed = docs.slice(1).map((d) => {
      const { ownerReferences: _dropped, ...metadata } = d.metadata ?? {};
      return { ...d, metadata };
    });
    const applied = await apply(control, composed);
    assert.equal(applied.length, 4);
  });

  it("reports a missing XRD as Exported=False, XRDNotFound, with a warning", async () => {
    const { code, docs, stderr } = await render(join(examples, "xr.yaml"), "--include-function-results");
    assert.equal(code, 0, stderr);
    const xr = docs.find((d) => d.kind === "ServiceExport");
    const conditions = conditionsOf(xr);
    assert.ok(conditions.some((c) => c.type === "Exported" && c.status === "False" && c.reason === "XRDNotFound"));
    assert.equal(docs.filter((d) => d.kind === "APIServiceExportTemplate").length, 0);
    const results = docs.filter((d) => d.kind === "Result");
    assert.ok(
      results.some((r) => r.severity === "SEVERITY_WARNING" && String(r.message).includes("not found")),
      stringify(results),
    );
  });

  it("fails with the field and value on a bad claim", async () => {
    const bad = readFileSync(join(examples, "xr.yaml"), "utf8").replace("owner: Provider", "owner: Somebody");
    writeFileSync(join(work, "bad-xr.yaml"), bad);
    const { code, stderr } = await render(
      join(work, "bad-xr.yaml"),
      `--required-resources=${join(examples, "required-resources.yaml")}`,
    );
    assert.notEqual(code, 0);
    assert.match(
      stderr,
      /pipeline step "export" returned a fatal result: spec\.permissionClaims\[0\]\.selector\.owner: must be one of "Provider", "Consumer", got "Somebody"/,
    );
  });

  it("refuses a claim on clusterrolebindings unless the input allows it by name", async () => {
    const claim =
      "    - group: rbac.authorization.k8s.io\n      resource: clusterrolebindings\n      version: v1\n      selector:\n        owner: Consumer\n";
    writeFileSync(join(work, "escalating-xr.yaml"), `${readFileSync(join(examples, "xr.yaml"), "utf8")}${claim}`);
    const required = `--required-resources=${join(examples, "required-resources.yaml")}`;
    const refused = await render(join(work, "escalating-xr.yaml"), required);
    assert.notEqual(refused.code, 0);
    assert.match(
      refused.stderr,
      /pipeline step "export" returned a fatal result: spec\.permissionClaims\[2\]: claims clusterrolebindings\.rbac\.authorization\.k8s\.io, which is escalation-prone .*allowedClaims/,
    );

    const composition = readFileSync(join(examples, "composition.yaml"), "utf8").replace(
      "        ttlSeconds: 60\n",
      "        ttlSeconds: 60\n        allowedClaims:\n          - {group: rbac.authorization.k8s.io, resource: clusterrolebindings}\n",
    );
    assert.match(composition, /allowedClaims/);
    writeFileSync(join(work, "allowing-composition.yaml"), composition);
    const allowed = await setup.crossplane(
      "render",
      join(work, "escalating-xr.yaml"),
      join(work, "allowing-composition.yaml"),
      setup.functionsFile,
      required,
    );
    assert.equal(allowed.code, 0, allowed.stderr);
    const claimsRole = allowed.docs.find(
      (d) => d.kind === "ClusterRole" && String(d.metadata?.name).endsWith(":claims"),
    ) as { rules?: Array<{ apiGroups: string[]; resources: string[] }> } | undefined;
    assert.ok(
      claimsRole?.rules?.some(
        (r) => r.apiGroups[0] === "rbac.authorization.k8s.io" && r.resources.join() === "clusterrolebindings",
      ),
      stringify(claimsRole),
    );
  });
});
