import assert from "node:assert/strict";
import type { LookupAddress } from "node:dns";
import type { LookupFunction } from "node:net";
import { describe, it } from "node:test";
import { LookupGate } from "../../src/kube/lookup.ts";

type Answer = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/** A resolver whose "hang." names answer only when released, and every other name at once. */
function resolver() {
  const hanging: Array<() => void> = [];
  let asked = 0;
  const resolve = ((hostname: string, _options: unknown, callback: Answer) => {
    asked++;
    if (hostname.startsWith("hang.")) hanging.push(() => callback(null, "192.0.2.1", 4));
    else queueMicrotask(() => callback(null, "127.0.0.1", 4));
  }) as unknown as LookupFunction;
  return { resolve, hanging, asked: () => asked };
}

function lookup(
  fn: LookupFunction,
  hostname: string,
): Promise<{ err: NodeJS.ErrnoException | null; address: unknown }> {
  return new Promise((resolve) => fn(hostname, {}, (err, address) => resolve({ err, address })));
}

describe("LookupGate", () => {
  it("runs one tenant's lookups two at a time, queues a few, refuses more; other tenants go on", async () => {
    const dns = resolver();
    const gate = new LookupGate({ resolve: dns.resolve, maxWaiting: 3 });
    const tenantA = gate.lookupFor("tenant-a");
    const stuck = Array.from({ length: 5 }, () => lookup(tenantA, "hang.example"));
    const refused = await lookup(tenantA, "hang.example");
    assert.equal(refused.err?.code, "EAI_AGAIN");
    assert.match(refused.err?.message ?? "", /3 lookups of the same tenant wait already/);
    assert.equal(dns.asked(), 2, "two of tenant a's lookups reached the resolver");
    assert.equal(gate.pending("tenant-a"), 5);

    const other = await lookup(gate.lookupFor("tenant-b"), "api.example");
    assert.deepEqual(other, { err: null, address: "127.0.0.1" });
    assert.equal(gate.pending("tenant-b"), 0);

    // answers free the slots for the waiting lookups, in order
    while (dns.hanging.length > 0) dns.hanging.shift()?.();
    await new Promise((resolve) => setImmediate(resolve));
    while (dns.hanging.length > 0) dns.hanging.shift()?.();
    await new Promise((resolve) => setImmediate(resolve));
    while (dns.hanging.length > 0) dns.hanging.shift()?.();
    const answers = await Promise.all(stuck);
    assert.ok(answers.every((a) => a.err === null && a.address === "192.0.2.1"));
    assert.equal(gate.pending("tenant-a"), 0);
  });
});
