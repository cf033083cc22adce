import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CacheBudget, CacheFullError, cachedSize } from "../../src/kube/cache-budget.ts";

describe("CacheBudget", () => {
  it("takes and gives back objects and bytes within its limits", () => {
    const budget = new CacheBudget({ maxObjects: 3, maxBytes: 100 }, "tenant x's caches (--flag)");
    budget.change(2, 60);
    budget.change(1, 40);
    assert.deepEqual([budget.objects, budget.bytes], [3, 100]);
    budget.change(-1, -50);
    assert.deepEqual([budget.objects, budget.bytes], [2, 50]);
  });

  it("refuses growth past either limit, taking nothing, and names who shares it", () => {
    const budget = new CacheBudget({ maxObjects: 3, maxBytes: 2 * 1024 * 1024 }, "tenant x's caches (--flag)");
    budget.change(3, 10);
    assert.throws(
      () => budget.change(1, 1),
      (err: unknown) =>
        err instanceof CacheFullError &&
        /^tenant x's caches \(--flag\) would hold 4 objects, 1 MiB: more than the limit of 3 objects, 2 MiB/.test(
          err.message,
        ),
    );
    assert.throws(() => budget.change(0, 3 * 1024 * 1024), CacheFullError);
    assert.deepEqual([budget.objects, budget.bytes], [3, 10]);
    // shrinking is always allowed, also a replacement that grows no limit
    budget.change(0, -5);
    budget.change(-3, -5);
    assert.deepEqual([budget.objects, budget.bytes], [0, 0]);
  });

  it("counts an object as its JSON", () => {
    assert.equal(cachedSize({ a: "bc" }), 10);
  });
});
