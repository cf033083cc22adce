import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Slots } from "../../src/sync/slots.ts";

describe("slots", () => {
  it("let size holders in at once, the others in order as slots free, and count a release once", async () => {
    const slots = new Slots(2);
    const order: number[] = [];
    const first = await slots.take();
    const second = await slots.take();
    const waiting = [3, 4].map(async (n) => {
      const release = await slots.take();
      order.push(n);
      return release;
    });
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(order, []);
    first();
    first(); // a second call frees nothing more
    const third = await waiting[0];
    assert.deepEqual(order, [3]);
    second();
    const fourth = await waiting[1];
    assert.deepEqual(order, [3, 4]);
    third?.();
    fourth?.();
    const again = await Promise.all([slots.take(), slots.take()]);
    assert.equal(again.length, 2);
  });
});
