// The pure parts of klutch-bind's further claim fields: JSON paths, who owns an object, what
// crosses from original to copy and back.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { annotations } from "../../src/api/naming.ts";
import { notActedOn } from "../../src/export/claim-behaviour.ts";
import { parseClaims } from "../../src/export/claims.ts";
import { describeClaim } from "../../src/export/describe.ts";
import { overlay, parseJsonPath } from "../../src/export/json-path.ts";
import type { PermissionClaim } from "../../src/export/types.ts";
import type { KubeObject } from "../../src/kube/client.ts";
import { copyContent, writtenBack } from "../../src/sync/mirror/claim-merge.ts";
import { decideOwnership, klutchOwnerAnnotation, watchedInFull } from "../../src/sync/mirror/claim-ownership.ts";

function claim(extra: Record<string, unknown> = {}, selector: Record<string, unknown> = {}): PermissionClaim {
  const [parsed] = parseClaims([{ resource: "secrets", version: "v1", selector, ...extra }], "claims");
  assert.ok(parsed);
  return parsed;
}

function secret(data: Record<string, string>, meta: Partial<KubeObject["metadata"]> = {}): KubeObject {
  return { apiVersion: "v1", kind: "Secret", metadata: { name: "s", namespace: "n", ...meta }, type: "Opaque", data };
}

describe("JSON paths of update.fields and update.preserving", () => {
  it("reads dots, brackets and indices; refuses what is not one place in the content", () => {
    assert.deepEqual(parseJsonPath("data.password"), ["data", "password"]);
    assert.deepEqual(parseJsonPath("$.data['tls.crt']"), ["data", "tls.crt"]);
    assert.deepEqual(parseJsonPath("{.spec.items[1].name}"), ["spec", "items", 1, "name"]);
    assert.ok(!Array.isArray(parseJsonPath("data.*")));
    assert.ok(!Array.isArray(parseJsonPath("$..password")));
    assert.ok(!Array.isArray(parseJsonPath("metadata.labels")));
    assert.ok(!Array.isArray(parseJsonPath("status.phase")));
    assert.deepEqual(notActedOn(claim({ update: { fields: ["data.a", "metadata.name"] } })), [
      'update.fields "metadata.name": metadata, status, apiVersion and kind are not synced this way',
    ]);
  });

  it("overlay takes the other side's value, its absence included, and leaves the rest", () => {
    const base = { data: { a: "1", b: "2" }, type: "Opaque" };
    assert.deepEqual(overlay(base, { data: { a: "9" } }, [["data", "a"]]), {
      data: { a: "9", b: "2" },
      type: "Opaque",
    });
    assert.deepEqual(overlay(base, { data: {} }, [["data", "a"]]), { data: { b: "2" }, type: "Opaque" });
    assert.deepEqual(overlay({ type: "x" }, { data: { a: "1" } }, [["data", "a"]]), { type: "x", data: { a: "1" } });
    assert.deepEqual(base, { data: { a: "1", b: "2" }, type: "Opaque" }, "base untouched");
  });
});

describe("who owns a claimed object", () => {
  const mine = (obj: KubeObject) => ({ obj, ours: true });
  const theirs = (obj: KubeObject) => ({ obj, ours: false });
  it("owner-less claims: the creator, or klutch-bind's annotation; our copy decides once made", () => {
    const any = claim();
    assert.deepEqual(watchedInFull(any), { provider: true, consumer: true });
    assert.deepEqual(decideOwnership(any, theirs(secret({})), undefined), { action: "sync", owner: "Provider" });
    assert.deepEqual(decideOwnership(any, undefined, theirs(secret({}))), { action: "sync", owner: "Consumer" });
    const marked = secret({}, { annotations: { [klutchOwnerAnnotation]: "Provider" } });
    assert.deepEqual(decideOwnership(any, undefined, theirs(marked)), { action: "transfer", owner: "Provider" });
    assert.deepEqual(decideOwnership(any, theirs(secret({})), mine(secret({}))), { action: "sync", owner: "Provider" });
    assert.deepEqual(decideOwnership(any, theirs(secret({})), theirs(secret({}))), {
      action: "conflict",
      owner: undefined,
    });
  });

  it("an owner claims only its objects; autoAdopt and autoDonate hand them over", () => {
    const provider = claim({}, { owner: "Provider" });
    assert.deepEqual(watchedInFull(provider), { provider: true, consumer: false });
    assert.deepEqual(decideOwnership(provider, undefined, theirs(secret({}))), { action: "none" });
    const other = secret({}, { annotations: { [klutchOwnerAnnotation]: "Consumer" } });
    assert.deepEqual(decideOwnership(provider, theirs(other), undefined), { action: "none" });
    assert.deepEqual(decideOwnership(provider, undefined, mine(secret({}))), { action: "sync", owner: "Provider" });

    const adopts = claim({ autoAdopt: true }, { owner: "Provider" });
    assert.deepEqual(watchedInFull(adopts), { provider: true, consumer: true });
    assert.deepEqual(decideOwnership(adopts, undefined, theirs(secret({}))), { action: "transfer", owner: "Provider" });
    const donates = claim({ autoDonate: true });
    assert.deepEqual(decideOwnership(donates, theirs(secret({})), undefined), {
      action: "transfer",
      owner: "Consumer",
    });
    assert.deepEqual(decideOwnership(donates, undefined, theirs(secret({}))), { action: "sync", owner: "Consumer" });
    // a copy whose owner the claim no longer covers
    assert.deepEqual(decideOwnership(claim({}, { owner: "Consumer" }), undefined, mine(secret({}))), {
      action: "unclaimed",
      owner: "Provider",
    });
  });

  it("a transfer cut short is finished, not taken for a conflict", () => {
    const made = secret({}, { annotations: { [annotations.transferredFrom]: "c-uid" } });
    const from = secret({}, { uid: "c-uid" });
    assert.deepEqual(decideOwnership(claim({ autoAdopt: true }), theirs(made), theirs(from)), {
      action: "transfer",
      owner: "Provider",
    });
  });
});

describe("what crosses between original and copy", () => {
  it("update.fields: the provider's copy controls those paths of a consumer-owned object", () => {
    const fields = claim({ update: { fields: ["data.password"] } }, { owner: "Consumer" });
    const original = secret({ user: "u", password: "mine" });
    const copy = secret({ user: "old", password: "provider's" });
    assert.deepEqual(copyContent(fields, "Consumer", original, copy).payload.data, {
      user: "u",
      password: "provider's",
    });
    assert.deepEqual(copyContent(fields, "Consumer", original, undefined).payload.data, {
      user: "u",
      password: "mine",
    });
    assert.deepEqual(writtenBack(fields, "Consumer", original, copy)?.data, { user: "u", password: "provider's" });
    assert.equal(writtenBack(fields, "Consumer", secret({ user: "u", password: "provider's" }), copy), undefined);
    // ignored for provider-owned objects
    assert.equal(writtenBack(fields, "Provider", original, copy), undefined);
  });

  it("update.preserving: the consumer keeps those paths of a provider-owned object", () => {
    const preserving = claim({ update: { preserving: ["data.note"] } }, { owner: "Provider" });
    const original = secret({ key: "k", note: "provider's" });
    const copy = secret({ key: "old", note: "mine" });
    assert.deepEqual(copyContent(preserving, "Provider", original, copy).payload.data, { key: "k", note: "mine" });
    assert.deepEqual(writtenBack(preserving, "Provider", original, copy)?.data, { key: "k", note: "mine" });
    assert.equal(writtenBack(preserving, "Consumer", original, copy), undefined);
  });

  it("labels and annotations back to the original: named keys only, never ours", () => {
    const back = claim(
      { read: { labelsOnProviderOwnedObjects: [{ pattern: "*" }], overrideAnnotations: [{ pattern: "note" }] } },
      { owner: "Provider" },
    );
    const original = secret({}, { labels: { tier: "gold" }, annotations: { note: "old" } });
    const copy = secret(
      {},
      { labels: { team: "a", "bind.klutch.dev/binding": "uid" }, annotations: { note: "new", other: "x" } },
    );
    const written = writtenBack(back, "Provider", original, copy);
    assert.deepEqual(written?.metadata.labels, { tier: "gold", team: "a" });
    assert.deepEqual(written?.metadata.annotations, { note: "new" });

    // klutch-bind's owner mark never goes back, whatever the patterns allow: the tenant's mark on a
    // provider-owned original would have it donated once the copy is gone
    const anything = claim({ read: { overrideAnnotations: [{ pattern: "*" }] } }, { owner: "Provider" });
    const marked = secret({}, { annotations: { [klutchOwnerAnnotation]: "Consumer", note: "n" } });
    assert.deepEqual(writtenBack(anything, "Provider", original, marked)?.metadata.annotations, { note: "n" });
    const provider = secret({}, { annotations: { [klutchOwnerAnnotation]: "Provider" } });
    assert.equal(
      writtenBack(anything, "Provider", provider, marked)?.metadata.annotations?.[klutchOwnerAnnotation],
      "Provider",
    );
    assert.deepEqual(decideOwnership(anything, { obj: original, ours: false }, undefined), {
      action: "sync",
      owner: "Provider",
    });
    assert.deepEqual(copyContent(back, "Provider", original, copy).labels, { team: "a" });

    const down = claim(
      {
        update: {
          labelsOnConsumerOwnedObjects: [{ pattern: "provider.example/*" }],
          annotationsOnConsumerOwnedObjects: [{ pattern: "endpoint" }],
        },
      },
      { owner: "Consumer" },
    );
    const fromProvider = secret(
      {},
      { labels: { "provider.example/plan": "s", x: "y" }, annotations: { endpoint: "e" } },
    );
    const consumerOwned = secret({}, { labels: { app: "web" } });
    assert.deepEqual(writtenBack(down, "Consumer", consumerOwned, fromProvider)?.metadata, {
      ...consumerOwned.metadata,
      labels: { app: "web", "provider.example/plan": "s" },
      annotations: { endpoint: "e" },
    });
  });
});

describe("owner-less claims", () => {
  it("parse without an owner, and say both directions and what they hand over", () => {
    assert.deepEqual(claim().selector, {});
    assert.match(
      describeClaim(claim()),
      /writes secrets into your namespaces .*, and reads yours from your namespaces/,
    );
    assert.match(
      describeClaim(claim({ autoAdopt: true }, { owner: "Provider" })),
      /the ones you create become the provider's/,
    );
    assert.match(
      describeClaim(claim({ onConflict: { recreateWhenConsumerSideDeleted: false } }, { owner: "Provider" })),
      /deleting a provider's copy deletes the provider's object/,
    );
  });
});
