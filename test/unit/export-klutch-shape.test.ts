// What the function writes into a template is klutch-bind's shape: its fields only, and selectors
// klutch-bind reads exactly as this project's sync does; what it cannot express is refused.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { klutchClaim, maxLabelSelectors } from "../../src/export/klutch-shape.ts";
import { buildExport } from "../../src/export/plan.ts";
import { builtinDefaults, parseServiceExportSpec } from "../../src/export/request.ts";
import type { ClaimSelector, PermissionClaim } from "../../src/export/types.ts";
import { parseXrd } from "../../src/export/xrd.ts";
import { xrd } from "../fixtures/xrds.ts";
import { rejects } from "../support/input-errors.ts";

function claimsOf(permissionClaims: unknown[]): unknown {
  const { template } = buildExport(
    parseXrd(xrd({})),
    parseServiceExportSpec("postgresql", { xrd: "postgresqlinstances.anynines.com", permissionClaims }),
    builtinDefaults,
  );
  return (template.spec as { permissionClaims?: unknown }).permissionClaims;
}

const secrets = (selector: Record<string, unknown>) => ({ group: "", resource: "secrets", version: "v1", selector });
const claim = (selector: ClaimSelector): PermissionClaim => ({
  group: "",
  resource: "secrets",
  version: "v1",
  selector,
});

/** klutch-bind's claim fields, and in the selector its selector fields: nothing else. */
function assertKlutchFieldsOnly(claims: unknown): void {
  assert.ok(Array.isArray(claims));
  for (const c of claims as Array<Record<string, unknown>>) {
    for (const key of Object.keys(c)) {
      assert.ok(
        [
          "group",
          "resource",
          "version",
          "selector",
          "required",
          "read",
          "create",
          "update",
          "onConflict",
          "autoAdopt",
          "autoDonate",
        ].includes(key),
        key,
      );
    }
    for (const key of Object.keys(c.selector as object)) {
      assert.ok(["names", "namespaces", "labelSelectors", "fieldSelectors", "owner"].includes(key), key);
    }
  }
}

describe("claims in klutch-bind's shape", () => {
  it("writes labelSelector.matchLabels as labelSelectors: [matchLabels], never labelSelector", () => {
    const written = claimsOf([
      secrets({ owner: "Provider", labelSelector: { matchLabels: { app: "db", tier: "gold" } } }),
    ]);
    assert.deepEqual(written, [secrets({ owner: "Provider", labelSelectors: [{ app: "db", tier: "gold" }] })]);
    assertKlutchFieldsOnly(written);
  });

  it("leaves out a label selector that selects everything", () => {
    assert.deepEqual(claimsOf([secrets({ owner: "Provider", labelSelector: {} })]), [secrets({ owner: "Provider" })]);
    assert.deepEqual(claimsOf([secrets({ owner: "Provider", labelSelector: { matchLabels: {} } })]), [
      secrets({ owner: "Provider" }),
    ]);
    assert.deepEqual(klutchClaim(claim({ owner: "Provider", labelSelectors: [] }), "c").selector, {
      owner: "Provider",
    });
    // an empty map matches every object, so one among others selects everything
    assert.deepEqual(klutchClaim(claim({ owner: "Provider", labelSelectors: [{ a: "1" }, {}] }), "c").selector, {
      owner: "Provider",
    });
  });

  it('keeps names, namespaces (with the plain "*") and klutch-bind\'s own selectors as written', () => {
    const selector: ClaimSelector = {
      owner: "Consumer",
      names: ["*", "app-settings"],
      namespaces: ["team-a", "team-b"],
      labelSelectors: [{ app: "db" }, { app: "cache" }],
      fieldSelectors: ["type=kubernetes.io/tls"],
    };
    assert.deepEqual(klutchClaim(claim(selector), "c"), claim(selector));
  });

  it("keeps klutch-bind's other claim fields (required, read, update, ...) as parsed", () => {
    const behaviour = {
      required: true,
      read: { labels: [{ pattern: "app.kubernetes.io/*" }] },
      update: { preserving: ["data.custom"] },
      onConflict: { recreateWhenConsumerSideDeleted: false },
      autoDonate: true,
    };
    const withBehaviour = {
      ...claim({ owner: "Provider", labelSelector: { matchLabels: { app: "db" } } }),
      ...behaviour,
    };
    assert.deepEqual(klutchClaim(withBehaviour as PermissionClaim, "c"), {
      ...claim({ owner: "Provider", labelSelectors: [{ app: "db" }] }),
      ...behaviour,
    });
  });

  it("writes In expressions as the equality maps they stand for, combined with matchLabels", () => {
    const written = claimsOf([
      secrets({
        owner: "Provider",
        labelSelector: {
          matchLabels: { app: "db" },
          matchExpressions: [
            { key: "tier", operator: "In", values: ["gold", "silver"] },
            { key: "zone", operator: "In", values: ["a", "b"] },
          ],
        },
      }),
    ]);
    assert.deepEqual(written, [
      secrets({
        owner: "Provider",
        labelSelectors: [
          { app: "db", tier: "gold", zone: "a" },
          { app: "db", tier: "gold", zone: "b" },
          { app: "db", tier: "silver", zone: "a" },
          { app: "db", tier: "silver", zone: "b" },
        ],
      }),
    ]);
  });

  it("combines labelSelector with labelSelectors: both must select, so each map gains matchLabels", () => {
    const selector: ClaimSelector = {
      owner: "Provider",
      labelSelector: { matchLabels: { app: "db" } },
      labelSelectors: [{ tier: "gold" }, { app: "cache" }, { app: "db", zone: "a" }],
    };
    // {app: cache} cannot hold together with app=db: that alternative selects nothing and goes
    assert.deepEqual(klutchClaim(claim(selector), "c").selector.labelSelectors, [
      { app: "db", tier: "gold" },
      { app: "db", zone: "a" },
    ]);
  });

  it("refuses label requirements that contradict each other (klutch-bind cannot say 'nothing')", () => {
    rejects(
      () =>
        claimsOf([
          secrets({
            owner: "Provider",
            labelSelector: {
              matchLabels: { app: "db" },
              matchExpressions: [{ key: "app", operator: "In", values: ["x"] }],
            },
          }),
        ]),
      "spec.permissionClaims[0].selector",
      /selects no object/,
    );
  });

  for (const operator of ["NotIn", "Exists", "DoesNotExist"]) {
    it(`refuses ${operator}, which klutch-bind's equality maps cannot express`, () => {
      const expression = operator === "NotIn" ? { key: "tier", operator, values: ["dev"] } : { key: "tier", operator };
      rejects(
        () =>
          claimsOf([
            secrets({ owner: "Provider" }),
            {
              ...secrets({ owner: "Consumer", labelSelector: { matchExpressions: [expression] } }),
              resource: "configmaps",
            },
          ]),
        "spec.permissionClaims[1].selector.labelSelector.matchExpressions[0].operator",
        new RegExp(`cannot express ${operator}.*got "${operator}"`),
      );
    });
  }

  it('refuses name and namespace globs other than "*" (klutch-bind matches them exactly)', () => {
    rejects(
      () => claimsOf([secrets({ owner: "Provider", names: ["exact", "db-*"] })]),
      "spec.permissionClaims[0].selector.names[1]",
      /klutch-bind matches names exactly .*got "db-\*"/,
    );
    rejects(
      () => claimsOf([secrets({ owner: "Provider", namespaces: ["team-*"] })]),
      "spec.permissionClaims[0].selector.namespaces[0]",
      /klutch-bind matches namespaces exactly .*got "team-\*"/,
    );
    rejects(
      () => claimsOf([secrets({ owner: "Provider", names: ["**"] })]),
      "spec.permissionClaims[0].selector.names[0]",
      /got "\*\*"/,
    );
  });

  it(`refuses a selector that would take more than ${maxLabelSelectors} equality maps`, () => {
    const values = Array.from({ length: 6 }, (_, i) => `v${i}`);
    rejects(
      () =>
        claimsOf([
          secrets({
            owner: "Provider",
            labelSelector: {
              matchExpressions: [
                { key: "a", operator: "In", values },
                { key: "b", operator: "In", values },
              ],
            },
          }),
        ]),
      "spec.permissionClaims[0].selector.labelSelector",
      /more than 32 klutch-bind labelSelectors/,
    );
  });

  it("refuses resource names klutch-bind's template rejects (one character)", () => {
    rejects(() => klutchClaim({ ...claim({ owner: "Provider" }), resource: "x" }, "c"), "c.resource", /got "x"/);
    const single = parseXrd(xrd({ plural: "x" }));
    rejects(
      () => buildExport(single, parseServiceExportSpec("x", { xrd: "x.anynines.com" }), builtinDefaults),
      "XRD x.anynines.com spec.names.plural",
      /klutch-bind's template accepts only resource names/,
    );
  });
});

describe("label keys named like Object's own properties", () => {
  it("are label keys like any other: In on constructor becomes a map", () => {
    const written = claimsOf([
      secrets({
        owner: "Provider",
        labelSelector: { matchExpressions: [{ key: "constructor", operator: "In", values: ["a"] }] },
      }),
    ]) as Array<{ selector: { labelSelectors?: unknown } }>;
    assert.deepEqual(written[0]?.selector.labelSelectors, [{ constructor: "a" }]);
  });
});
