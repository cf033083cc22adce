import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ShareTimeout, TenantShare } from "../../src/kube/tenant-share.ts";
import { TenantLimitReached, TenantLimits } from "../../src/sync/tenants/limits.ts";

describe("tenant limits", () => {
  it("admits provider namespaces up to the limit, counting those being made, and names the flag beyond", () => {
    const existing = new Map<string, Set<string>>([["tenant-a", new Set(["p-1"])]]);
    const limits = new TenantLimits({ providerNamespaces: 3, controlWatches: 1 }, (t) => existing.get(t) ?? new Set());
    limits.admitNamespace("tenant-a", "p-1"); // has it: no room needed
    limits.admitNamespace("tenant-a", "p-2");
    limits.admitNamespace("tenant-a", "p-2"); // asked again while being made: counted once
    limits.admitNamespace("tenant-a", "p-3");
    assert.throws(
      () => limits.admitNamespace("tenant-a", "p-4"),
      (err: unknown) =>
        err instanceof TenantLimitReached &&
        /namespace tenant-a's bindings have 3 provider namespaces/.test(err.message) &&
        /--provider-namespaces-per-namespace \(3\)/.test(err.message) &&
        /nothing is deleted/.test(err.message),
    );
    // another tenant has its own count
    limits.admitNamespace("tenant-b", "q-1");
    // made ones the cache shows count once; one gone makes room
    existing.set("tenant-a", new Set(["p-2", "p-3"]));
    limits.admitNamespace("tenant-a", "p-4");
    assert.throws(() => limits.admitNamespace("tenant-a", "p-5"), TenantLimitReached);
  });

  it("waits, rather than guessing, until the provider namespaces are listed", () => {
    const limits = new TenantLimits({ providerNamespaces: 3, controlWatches: 1 }, () => undefined);
    assert.throws(
      () => limits.admitNamespace("tenant-a", "p-1"),
      (err: unknown) => !(err instanceof TenantLimitReached) && /first list of provider namespaces/.test(String(err)),
    );
  });

  it("hands out control-plane watches per tenant up to the limit; a release makes room", () => {
    const limits = new TenantLimits({ providerNamespaces: 1, controlWatches: 2 }, () => new Set());
    const first = limits.takeWatch("tenant-a");
    const second = limits.takeWatch("tenant-a");
    assert.equal(typeof first, "function");
    assert.equal(typeof second, "function");
    const third = limits.takeWatch("tenant-a");
    assert.ok(third instanceof TenantLimitReached);
    assert.match(third.message, /hold 2 control-plane watches.*--control-watches-per-namespace \(2\)/);
    assert.equal(typeof limits.takeWatch("tenant-b"), "function");
    if (typeof first === "function") {
      first();
      first(); // twice gives back one
    }
    assert.equal(limits.watches("tenant-a"), 1);
    assert.equal(typeof limits.takeWatch("tenant-a"), "function");
    assert.ok(limits.takeWatch("tenant-a") instanceof TenantLimitReached);
  });
});

describe("tenant share of a client", () => {
  it("lets a tenant have max requests in flight, queues the rest in order, and never holds another tenant", async () => {
    const share = new TenantShare(2);
    const far = performance.now() + 60_000;
    const a1 = await share.enter("a", far);
    const a2 = await share.enter("a", far);
    const order: string[] = [];
    const a3 = share.enter("a", far).then((release) => {
      order.push("a3");
      return release;
    });
    const a4 = share.enter("a", far).then((release) => {
      order.push("a4");
      return release;
    });
    // tenant a is at its share: b goes at once
    const b1 = await share.enter("b", far);
    assert.equal(share.inFlight("b"), 1);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(order, [], "a's third waits while two are in flight");
    a1();
    (await a3)();
    a2();
    (await a4)();
    assert.deepEqual(order, ["a3", "a4"]);
    assert.equal(share.inFlight("a"), 0);
    b1();
    assert.equal(share.inFlight("b"), 0);
  });

  it("without a deadline, waits as long as it takes, and counts a release once", async () => {
    const share = new TenantShare(1);
    const first = await share.enter("a");
    let entered = false;
    const second = share.enter("a").then((release) => {
      entered = true;
      return release;
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(entered, false, "no deadline: the wait goes on");
    first();
    first(); // a second call frees nothing more
    (await second)();
    assert.equal(share.inFlight("a"), 0);
  });

  it("gives up a wait at the deadline or on abort, and the line goes on", async () => {
    const share = new TenantShare(1);
    const held = await share.enter("a", performance.now() + 60_000);
    await assert.rejects(share.enter("a", performance.now() + 20), ShareTimeout);
    const abort = new AbortController();
    const aborted = share.enter("a", performance.now() + 60_000, abort.signal);
    abort.abort(new Error("stopped"));
    await assert.rejects(aborted, /stopped/);
    const next = share.enter("a", performance.now() + 60_000);
    held();
    (await next)();
    assert.equal(share.inFlight("a"), 0);
  });
});
