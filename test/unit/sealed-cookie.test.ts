// The sealed cookies the web page keeps its pre-sign-in state in: nothing but the sealing process
// opens them, and an altered, expired or misdirected one opens to nothing.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { CookieSealer } from "../../src/web/sealed-cookie.ts";

describe("sealed cookies", () => {
  it("give back what was sealed, to the same purpose, within its lifetime", () => {
    let now = 1_000;
    const sealer = new CookieSealer(randomBytes(32), () => now);
    const value = { port: 4242, sessionId: "Ab12", nested: [1, "two"] };
    const sealed = sealer.seal("kubectl-bind", value, 60_000);
    assert.match(sealed, /^[A-Za-z0-9_-]+$/, "fit for a cookie value as it is");
    assert.ok(!sealed.includes("Ab12") && !Buffer.from(sealed, "base64url").toString().includes("Ab12"), "unreadable");
    assert.deepEqual(sealer.open("kubectl-bind", sealed), value);
    now += 60_000;
    assert.deepEqual(sealer.open("kubectl-bind", sealed), value);
    now += 1;
    assert.equal(sealer.open("kubectl-bind", sealed), undefined, "expired");
  });

  it("open to nothing when altered, of another purpose or key, or not sealed at all", () => {
    const key = randomBytes(32);
    const sealer = new CookieSealer(key);
    const sealed = sealer.seal("oidc-flows", [{ state: "s" }], 60_000);
    const bytes = Buffer.from(sealed, "base64url");
    for (let at = 0; at < bytes.length; at += 1) {
      const altered = Buffer.from(bytes);
      altered[at] = (altered[at] ?? 0) ^ 1;
      assert.equal(sealer.open("oidc-flows", altered.toString("base64url")), undefined, `byte ${at} altered`);
    }
    assert.equal(sealer.open("kubectl-bind", sealed), undefined, "another purpose");
    assert.equal(new CookieSealer().open("oidc-flows", sealed), undefined, "another key");
    for (const junk of [undefined, "", "x", "a".repeat(40), "!!!", "a".repeat(5000)]) {
      assert.equal(sealer.open("oidc-flows", junk), undefined, String(junk).slice(0, 10));
    }
    assert.deepEqual(new CookieSealer(key).open("oidc-flows", sealed), [{ state: "s" }], "the same key opens it");
  });

  it("refuse a key of the wrong size, and a value too large for a cookie", () => {
    assert.throws(() => new CookieSealer(randomBytes(16)), /32 bytes/);
    assert.throws(() => new CookieSealer().seal("big", "x".repeat(4000), 1), /does not fit a cookie/);
  });
});
