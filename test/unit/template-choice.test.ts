// Which template an export follows: the one of the binding's own namespace, else the only one
// selecting its API; two or more at the same rank are refused, in whatever order a cache lists them.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { exportTemplate, templateApi } from "../../src/api/template-choice.ts";
import type { KubeObject } from "../../src/kube/client.ts";

const template = (namespace: string, name: string, selector: Record<string, unknown> | undefined): KubeObject => ({
  apiVersion: "example-backend.klutch.anynines.com/v1alpha1",
  kind: "APIServiceExportTemplate",
  metadata: { name, namespace },
  spec: selector === undefined ? {} : { APIServiceSelector: selector },
});

describe("the template of an export", () => {
  const pg = { group: "anynines.com", resource: "postgresqlinstances" };
  const a = template("crossplane-system", "pg-a", pg);
  const b = template("team-a", "pg-b", { ...pg, version: "v1" });
  const c = template("team-a", "pg-c", pg);
  const other = template("crossplane-system", "redis", { group: "anynines.com", resource: "redisinstances" });

  it("is the one template selecting the group and resource", () => {
    const chosen = exportTemplate([other, a], "anynines.com", "postgresqlinstances", "team-z");
    assert.ok("template" in chosen);
    assert.equal(chosen.template, a);
  });

  it("two templates of the same API in other namespaces: refused, naming both, in any cache order", () => {
    const wanted = {
      message:
        "templates crossplane-system/pg-a and team-a/pg-b all export postgresqlinstances.anynines.com: refused until only one does (delete the others, or change their spec.APIServiceSelector; one in the binding's own namespace would come first)",
      conflict: true,
    };
    assert.deepEqual(exportTemplate([a, other, b], "anynines.com", "postgresqlinstances", "team-z"), wanted);
    assert.deepEqual(exportTemplate([b, a, other], "anynines.com", "postgresqlinstances", "team-z"), wanted);
    // the others' API is not affected
    assert.ok("template" in exportTemplate([a, b, other], "anynines.com", "redisinstances", "team-z"));
  });

  it("the binding's own namespace's template comes first; two there are refused", () => {
    for (const order of [
      [a, b],
      [b, a],
    ]) {
      const chosen = exportTemplate(order, "anynines.com", "postgresqlinstances", "team-a");
      assert.ok("template" in chosen && chosen.template === b);
    }
    const refused = exportTemplate([a, c, b], "anynines.com", "postgresqlinstances", "team-a");
    assert.ok("message" in refused && refused.conflict);
    assert.match(refused.message, /^templates team-a\/pg-b and team-a\/pg-c all export/);
  });

  it("none: says so, and is no conflict", () => {
    assert.deepEqual(exportTemplate([a, b], "anynines.com", "mysqlinstances", "team-a"), {
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
    assert.ok("template" in exportTemplate([template("x", "core", { resource: "configmaps" })], "", "configmaps", "y"));
  });
});
