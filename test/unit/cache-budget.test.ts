import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CacheBudget, CacheFullError, cachedSize } from "../../src/kube/cache-budget.ts";
import { ListCeiling, ListCeilingError } from "../../src/kube/list-ceiling.ts";

const MiB = 1024 * 1024;

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

  it("counts a list as it is read, beyond the cache it replaces, and gives it back when done", () => {
    const budget = new CacheBudget({ maxObjects: 100, maxBytes: 4 * MiB }, "tenant x's caches (--flag)");
    budget.change(10, 2 * MiB);
    const list = budget.startList(1 * MiB);
    list.take(1 * MiB); // the size of the cache it replaces: not counted against the limit
    list.take(1 * MiB);
    assert.equal(budget.listingBytes, 2 * MiB);
    assert.throws(
      () => list.take(1 * MiB + 1),
      (err: unknown) =>
        err instanceof CacheFullError &&
        /would hold 10 objects, 5 MiB \(3 MiB of them lists still being read\): more than the limit of 100 objects, 4 MiB/.test(
          err.message,
        ),
    );
    assert.equal(budget.listingBytes, 2 * MiB, "the refused chunk took nothing");
    // a watch's growth counts the list being read too
    assert.throws(() => budget.change(1, 1 * MiB + 1), CacheFullError);
    list.release();
    list.release();
    assert.equal(budget.listingBytes, 0);
    budget.change(1, 1 * MiB + 1);
    assert.throws(() => list.take(1), /given up/);
  });

  it("shares a ceiling with other budgets: all lists together, one namespace's half of it", () => {
    const ceiling = new ListCeiling(8 * MiB, "--ceiling-flag");
    const limits = { maxObjects: 100, maxBytes: 64 * MiB };
    const [a, b, c] = ["a", "b", "c"].map((n) => new CacheBudget(limits, `tenant ${n}`, ceiling));
    const first = a?.startList(0);
    const second = a?.startList(0);
    first?.take(3 * MiB);
    assert.throws(
      () => second?.take(1 * MiB + 1),
      (err: unknown) =>
        err instanceof ListCeilingError && /more than half of the 8 MiB.*--ceiling-flag/.test(err.message),
    );
    second?.take(1 * MiB);
    const other = b?.startList(0);
    other?.take(4 * MiB);
    assert.equal(ceiling.bytes, 8 * MiB);
    const third = c?.startList(0);
    assert.throws(
      () => third?.take(1),
      (err: unknown) =>
        err instanceof ListCeilingError && /more than 8 MiB together \(--ceiling-flag\)/.test(err.message),
    );
    first?.release();
    third?.take(3 * MiB);
    for (const list of [second, other, third]) list?.release();
    assert.equal(ceiling.bytes, 0);
    assert.deepEqual([a?.listingBytes, b?.listingBytes, c?.listingBytes], [0, 0, 0]);
  });

  it("counts an object as its JSON", () => {
    assert.equal(cachedSize({ a: "bc" }), 10);
  });
});
