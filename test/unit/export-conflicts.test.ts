// Two templates exporting the same API: `klutch-bind exports`, bind and the web page say so, naming both.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { bindableApi, pickExports, withConflicts } from "../../src/bind/bindable.ts";
import type { KubeObject } from "../../src/kube/client.ts";
import { dashboardPage } from "../../src/web/pages.ts";

const template = (namespace: string, name: string, resource: string): KubeObject => ({
  apiVersion: "example-backend.klutch.anynines.com/v1alpha1",
  kind: "APIServiceExportTemplate",
  metadata: { name, namespace },
  spec: { APIServiceSelector: { group: "anynines.com", resource } },
});

const apis = withConflicts(
  [
    template("team-a", "pg-b", "postgresqlinstances"),
    template("crossplane-system", "pg-a", "postgresqlinstances"),
    template("crossplane-system", "redis", "redisinstances"),
  ].map(bindableApi),
  "team-z",
);
const conflict =
  "templates crossplane-system/pg-a and team-a/pg-b all export postgresqlinstances.anynines.com: refused until only one does (delete the others, or change their spec.APIServiceSelector; one in the binding's own namespace would come first)";

describe("an API that two templates export", () => {
  it("each of its entries names both templates; other APIs are untouched", () => {
    assert.deepEqual(
      apis.map((a) => [a.template, a.conflict]),
      [
        ["team-a/pg-b", conflict],
        ["crossplane-system/pg-a", conflict],
        ["crossplane-system/redis", undefined],
      ],
    );
  });

  it("cannot be picked for a binding, saying why", () => {
    assert.throws(() => pickExports(apis, ["postgresqlinstances.anynines.com"]), {
      message: `export "postgresqlinstances.anynines.com": ${conflict}`,
    });
    assert.equal(pickExports(apis, ["redisinstances.anynines.com"])[0]?.template, "crossplane-system/redis");
  });

  it("for a binding of a namespace with its own template: that one is followed, the other shown as not followed", () => {
    const own = withConflicts(
      [
        template("crossplane-system", "pg-a", "postgresqlinstances"),
        template("team-a", "pg-b", "postgresqlinstances"),
      ].map(bindableApi),
      "team-a",
    );
    assert.deepEqual(
      own.map((a) => [a.template, a.conflict, a.shadowed]),
      [
        [
          "crossplane-system/pg-a",
          undefined,
          "not followed by bindings in namespace team-a: team-a/pg-b of that namespace comes first",
        ],
        ["team-a/pg-b", undefined, undefined],
      ],
    );
    assert.equal(pickExports(own, ["postgresqlinstances.anynines.com"])[0]?.template, "team-a/pg-b");
  });

  it("the web page shows the conflict on the API's rows", () => {
    const page = dashboardPage({
      user: "u",
      csrf: "c",
      apis,
      bindings: [],
      form: { name: "", namespace: "team-a", exports: [], claims: [] },
    });
    const shown = page.match(/data-conflict="postgresqlinstances\.anynines\.com">([^<]*)</g) ?? [];
    assert.equal(shown.length, 2, page);
    assert.match(
      page,
      /templates crossplane-system\/pg-a and team-a\/pg-b all export postgresqlinstances\.anynines\.com/,
    );
    assert.doesNotMatch(page, /data-conflict="redisinstances/);
  });
});
