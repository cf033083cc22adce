// Operation mode: a WatchOperation step gets the watched XRD and answers with the template and RBAC.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseClaims } from "../../src/export/claims.ts";
import { claimsAnnotation, exportLabel } from "../../src/export/labelled.ts";
import { buildExport } from "../../src/export/plan.ts";
import { builtinDefaults } from "../../src/export/request.ts";
import { parseXrd } from "../../src/export/xrd.ts";
import { composedKeys } from "../../src/function/composed-keys.ts";
import { runExportFunction } from "../../src/function/export-function.ts";
import { watchedResourceRequirement } from "../../src/function/operation.ts";
import { structToJson } from "../../src/function/struct.ts";
import { seedClaims, xrd } from "../fixtures/xrds.ts";
import { desiredJson, request } from "../support/function-client.ts";

const uid = "6f1c1d52-55a4-4d5e-a2a1-0d1c2c3b4a59";

function watchedXrd(metadata: Record<string, unknown>) {
  const base = xrd({});
  return { ...base, metadata: { ...(base.metadata as object), uid, ...metadata } };
}

function run(watched: Array<Record<string, unknown>>, desired?: Record<string, Record<string, unknown>>) {
  return runExportFunction(request({ tag: "op", required: { [watchedResourceRequirement]: watched }, desired }));
}

describe("operation mode (WatchOperation on labelled XRDs)", () => {
  it("returns the same template and RBAC as a ServiceExport would compose, owned by the XRD", () => {
    const watched = watchedXrd({
      labels: { [exportLabel]: "true" },
      annotations: { [claimsAnnotation]: JSON.stringify(seedClaims) },
    });
    const rsp = run([watched], { earlier: { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "x" } } });
    assert.deepEqual(rsp.results, []);

    const plan = buildExport(
      parseXrd(watched),
      {
        name: "postgresqlinstances.anynines.com",
        xrd: "postgresqlinstances.anynines.com",
        permissionClaims: parseClaims(seedClaims, "claims"),
      },
      builtinDefaults,
    );
    const owner = {
      apiVersion: "apiextensions.crossplane.io/v2",
      kind: "CompositeResourceDefinition",
      name: "postgresqlinstances.anynines.com",
      uid,
    };
    const desired = desiredJson(rsp);
    assert.deepEqual(Object.keys(desired).sort(), ["earlier", ...Object.values(composedKeys)].sort());
    for (const [part, key] of Object.entries(composedKeys) as Array<[keyof typeof composedKeys, string]>) {
      const manifest = plan[part];
      assert.ok(manifest, part);
      assert.deepEqual(desired[key], { ...manifest, metadata: { ...manifest.metadata, ownerReferences: [owner] } });
      assert.equal(rsp.desired.resources?.[key]?.ready, undefined, `${key} carries no readiness`);
    }
    const template = desired[composedKeys.template] as { spec: Record<string, unknown> };
    assert.deepEqual(template.spec.APIServiceSelector, {
      group: "anynines.com",
      resource: "postgresqlinstances",
      version: "v1",
    });
    assert.deepEqual(template.spec.permissionClaims, seedClaims);
    assert.deepEqual(structToJson(rsp.output ?? {}), {
      exported: {
        group: "anynines.com",
        resource: "postgresqlinstances",
        version: "v1",
        kind: "PostgresqlInstance",
        scope: "Namespaced",
      },
      template: { name: "postgresqlinstances.anynines.com", namespace: "crossplane-system" },
    });
    assert.equal(rsp.meta.tag, "op");
  });

  it("exports nothing for an XRD without the label, one being deleted, or one that is gone", () => {
    const cases: Array<[Array<Record<string, unknown>>, string]> = [
      [[watchedXrd({ labels: { [exportLabel]: "false" } })], "NotLabelled"],
      [[watchedXrd({ labels: { [exportLabel]: "true" }, deletionTimestamp: "2026-11-26T00:00:00Z" })], "XRDDeleting"],
      [[], "XRDGone"],
    ];
    for (const [watched, reason] of cases) {
      const rsp = run(watched);
      assert.deepEqual(Object.keys(rsp.desired.resources ?? {}), [], reason);
      assert.deepEqual(
        rsp.results.map((r) => [r.severity, r.reason]),
        [["SEVERITY_NORMAL", reason]],
      );
    }
  });

  it("refuses a broken claims annotation with an error naming it, and exports nothing", () => {
    const rsp = run([
      watchedXrd({
        labels: { [exportLabel]: "true" },
        annotations: {
          [claimsAnnotation]: "- group: ''\n  resource: secrets\n  version: v1\n  selector: {owner: Somebody}\n",
        },
      }),
    ]);
    assert.deepEqual(Object.keys(rsp.desired.resources ?? {}), []);
    assert.equal(rsp.results.length, 1);
    assert.equal(rsp.results[0]?.severity, "SEVERITY_FATAL");
    assert.match(
      rsp.results[0]?.message ?? "",
      /metadata\.annotations\["bind\.klutch\.dev\/permission-claims"\]\[0\]\.selector\.owner/,
    );
  });

  it("refuses labels that are not strings, naming the field, instead of failing inside", () => {
    const rsp = run([watchedXrd({ labels: { [exportLabel]: true } })]);
    assert.equal(rsp.results[0]?.severity, "SEVERITY_FATAL");
    assert.match(rsp.results[0]?.message ?? "", /watched XRD\.metadata\.labels\.bind\.klutch\.dev\/export/);
  });

  it("exports an XRD read from a file (no uid) without owner references, and says so", () => {
    const watched = {
      ...xrd({}),
      metadata: { name: "postgresqlinstances.anynines.com", labels: { [exportLabel]: "true" } },
    };
    const rsp = run([watched]);
    assert.deepEqual(
      rsp.results.map((r) => [r.severity, r.reason]),
      [["SEVERITY_WARNING", "NoOwner"]],
    );
    const desired = desiredJson(rsp);
    assert.equal(Object.keys(desired).length, 3);
    for (const manifest of Object.values(desired)) {
      assert.equal((manifest.metadata as Record<string, unknown>).ownerReferences, undefined);
    }
  });

  it("tells a request with neither a composite nor a watched resource what it lacks", () => {
    const rsp = runExportFunction(request({ tag: "t" }));
    assert.equal(rsp.results[0]?.reason, "NoComposite");
    assert.match(rsp.results[0]?.message ?? "", /WatchOperation/);
  });
});
