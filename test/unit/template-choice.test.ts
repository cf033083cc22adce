// Which template an export follows: the only one selecting its API; two or more are refused, in
// whatever order a cache lists them.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { KubeObject } from "../../src/kube/client.ts";
import { exportTemplate, templateApi } from "../../src/sync/template-choice.ts";

const template = (namespace: string, name: string, selector: Record<string, unknown> | undefined): KubeObject => ({
  apiVersion: "example-backend.klutch.anynines.com/v1alpha1",
  kind: "APIServiceExportTemplate",
  metadata: { name, namespace },
  spec: selector === undefined ? {} : { APIServiceSelector: selector },
});

describe("the template of an export", () => {
  const a = template("crossplane-system", "pg-a", { group: "anynines.com", resource: "postgresqlinstances" });
  const b = template("team-a", "pg-b", { group: "anynines.com", resource: "postgresqlinstances", version: "v1" });
  const other = template("crossplane-system", "redis", { group: "anynines.com", resource: "redisinstances" });

  it("is the one template selecting the group and resource", () => {
    const chosen = exportTemplate([other, a], "anynines.com", "postgresqlinstances");
    assert.ok("template" in chosen);
    assert.equal(chosen.template, a);
  });

  it("two templates of the same API: refused, naming both, whichever order the cache lists them in", () => {
    const wanted = {
      message:
        "templates crossplane-system/pg-a and team-a/pg-b all export postgresqlinstances.anynines.com: refused until only one does (delete the others, or change their spec.APIServiceSelector)",
      conflict: true,
    };
    assert.deepEqual(exportTemplate([a, other, b], "anynines.com", "postgresqlinstances"), wanted);
    assert.deepEqual(exportTemplate([b, a, other], "anynines.com", "postgresqlinstances"), wanted);
    // the others' API is not affected
    assert.ok("template" in exportTemplate([a, b, other], "anynines.com", "redisinstances"));
  });

  it("none: says so, and is no conflict", () => {
    assert.deepEqual(exportTemplate([a, b], "anynines.com", "mysqlinstances"), {
      message: "no APIServiceExportTemplate exports mysqlinstances.anynines.com",
      conflict: false,
    });
  });

  it("reads the selector strictly: no resource, no API; no group, the core group", () => {
    assert.equal(templateApi(template("x", "none", undefined)), undefined);
    assert.equal(templateApi(template("x", "bad", { group: "g", resource: 5 })), undefined);
    assert.deepEqual(templateApi(template("x", "core", { resource: "configmaps" })), {
      group: "",
      resource: "configmaps",
    });
    assert.ok("template" in exportTemplate([template("x", "core", { resource: "configmaps" })], "", "configmaps"));
  });
});
