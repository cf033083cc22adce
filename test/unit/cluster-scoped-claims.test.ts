// klutch-bind's cluster-scoped claim (selector.namespaces: []): the sync does not sync it, and
// says so, naming the field, rather than letting it select nothing silently.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isClusterScopedClaim, notActedOn } from "../../src/export/claim-behaviour.ts";
import { parseClaims } from "../../src/export/claims.ts";
import { describeClaim } from "../../src/export/describe.ts";

const claimWith = (selector: Record<string, unknown> | undefined) => {
  const [claim] = parseClaims(
    [{ group: "storage.k8s.io", resource: "storageclasses", version: "v1", ...(selector ? { selector } : {}) }],
    "spec.permissionClaims",
  );
  assert.ok(claim);
  return claim;
};

describe("cluster-scoped claims", () => {
  it('selector.namespaces: [] is one; absent, ["*"] or a list of namespaces is not', () => {
    assert.equal(isClusterScopedClaim(claimWith({ namespaces: [] })), true);
    assert.equal(isClusterScopedClaim(claimWith({ namespaces: ["*"] })), false);
    assert.equal(isClusterScopedClaim(claimWith({ namespaces: ["shop"] })), false);
    assert.equal(isClusterScopedClaim(claimWith({})), false);
    assert.equal(isClusterScopedClaim(claimWith(undefined)), false);
  });

  it("is reported as not acted on, naming selector.namespaces", () => {
    assert.deepEqual(notActedOn(claimWith({ namespaces: [], owner: "Provider" })), [
      "selector.namespaces is [] (a cluster-scoped claim): the sync syncs namespaced objects only, so nothing of this claim is synced",
    ]);
    assert.deepEqual(notActedOn(claimWith({ namespaces: ["*"] })), []);
  });

  it("is described to whoever accepts it as not synced", () => {
    assert.match(
      describeClaim(claimWith({ namespaces: [], owner: "Provider" })),
      /storageclasses\.storage\.k8s\.io cluster-scoped \(selector\.namespaces: \[\]\), which the sync does not sync/,
    );
  });
});
