// klutch-bind's claim fields that hand part of an object to the other side (update.fields,
// update.preserving, the labels and annotations of the other owner's objects), delete with the copy
// (recreateWhenConsumerSideDeleted: false), hand objects over (autoAdopt, autoDonate), and claims
// without an owner, against real API servers. Nothing the claim does not select crosses.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { labels as ours } from "../../src/api/naming.ts";
import { refs } from "../../src/api/resources.ts";
import type { KubeObject, ResourceRef } from "../../src/kube/client.ts";
import { conditionOf } from "../../src/kube/conditions.ts";
import { klutchOwnerAnnotation } from "../../src/sync/mirror/claim-ownership.ts";
import { boundWith, secret } from "../support/claim-binding.ts";
import { eventually } from "../support/eventually.ts";
import { type SyncEnv, syncEnv } from "../support/sync-env.ts";

function text(obj: KubeObject | undefined, key: string): string | undefined {
  const value = (obj?.data as Record<string, string> | undefined)?.[key];
  return value === undefined ? undefined : Buffer.from(value, "base64").toString();
}

function cmData(obj: KubeObject | undefined): Record<string, string> | undefined {
  return obj?.data as Record<string, string> | undefined;
}

function configMap(namespace: string, name: string, data: Record<string, string>, meta = {}): KubeObject {
  return { apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace, ...meta }, data };
}

/** Changes obj as read now on its cluster (retrying a conflict with the sync). */
async function edit(
  client: SyncEnv["appClient"],
  ref: ResourceRef,
  namespace: string,
  name: string,
  change: (obj: KubeObject) => KubeObject,
): Promise<void> {
  await eventually(`edit ${namespace}/${name}`, async () => {
    const now = await client.get(ref, name, namespace);
    assert.ok(now, `${namespace}/${name} exists`);
    await client.update(ref, change(structuredClone(now)));
  });
}

/** Holds for a while: what must not happen does not. */
async function stays(what: string, check: () => Promise<void>, ms = 3000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    await check();
    await new Promise((r) => setTimeout(r, 300));
  }
  await check().catch((err: unknown) => assert.fail(`${what}: ${String(err)}`));
}

describe("klutch-bind's claim fields that share an object", () => {
  it("update.fields and update.preserving: each side keeps the paths the claim gives it; ClaimFieldsActedOn=True", async () => {
    const env = await syncEnv({ resyncMs: 500 });
    const { ns, pns } = await boundWith(env, "paths", [
      { resource: "secrets", version: "v1", selector: { owner: "Consumer" }, update: { fields: ["data.password"] } },
      { resource: "configmaps", version: "v1", selector: { owner: "Provider" }, update: { preserving: ["data.note"] } },
    ]);
    await eventually("acted on", async () => {
      const read = await env.controlClient.get(refs.bindings, "paths", env.bindingNamespace);
      assert.equal(conditionOf(read, "ClaimFieldsActedOn")?.status, "True", JSON.stringify(read?.status));
    });

    // update.fields: a consumer-owned Secret whose password the provider controls
    await env.appClient.create(refs.secrets, secret(ns, "login", { user: "u", password: "initial" }));
    await eventually("up", async () => {
      assert.equal(text(await env.controlClient.get(refs.secrets, "login", pns), "password"), "initial");
    });
    await edit(env.controlClient, refs.secrets, pns, "login", (s) => ({
      ...s,
      data: { ...(s.data as object), password: Buffer.from("rotated").toString("base64") },
    }));
    await eventually("the provider's password reaches the consumer's Secret", async () => {
      assert.equal(text(await env.appClient.get(refs.secrets, "login", ns), "password"), "rotated");
    });
    await edit(env.appClient, refs.secrets, ns, "login", (s) => ({
      ...s,
      data: { user: Buffer.from("u2").toString("base64"), password: Buffer.from("mine").toString("base64") },
    }));
    await eventually("the consumer's user goes up, its password does not", async () => {
      const up = await env.controlClient.get(refs.secrets, "login", pns);
      assert.equal(text(up, "user"), "u2");
      assert.equal(text(up, "password"), "rotated");
      assert.equal(text(await env.appClient.get(refs.secrets, "login", ns), "password"), "rotated");
    });

    // update.preserving: a provider-owned ConfigMap whose note the consumer keeps
    await env.controlClient.create(refs.configMaps, configMap(pns, "settings", { key: "k", note: "provider's" }));
    await eventually("down", async () => {
      assert.equal(cmData(await env.appClient.get(refs.configMaps, "settings", ns))?.key, "k");
    });
    await edit(env.appClient, refs.configMaps, ns, "settings", (c) => ({
      ...c,
      data: { key: "changed", note: "kept" },
    }));
    await eventually("the key is reverted, the note kept and sent back", async () => {
      const down = await env.appClient.get(refs.configMaps, "settings", ns);
      assert.deepEqual(down?.data, { key: "k", note: "kept" });
      assert.equal(cmData(await env.controlClient.get(refs.configMaps, "settings", pns))?.note, "kept");
    });
    await edit(env.controlClient, refs.configMaps, pns, "settings", (c) => ({
      ...c,
      data: { key: "k2", note: "overwritten?" },
    }));
    await eventually("the provider's key arrives; the consumer's note is never overwritten", async () => {
      assert.deepEqual(cmData(await env.appClient.get(refs.configMaps, "settings", ns)), { key: "k2", note: "kept" });
      assert.equal(cmData(await env.controlClient.get(refs.configMaps, "settings", pns))?.note, "kept");
    });
  });

  it("labels and annotations of the other owner's objects: the named keys go back to the original, no others", async () => {
    const env = await syncEnv({ resyncMs: 500 });
    const { ns, pns } = await boundWith(env, "meta", [
      {
        resource: "secrets",
        version: "v1",
        selector: { owner: "Provider" },
        read: { labelsOnProviderOwnedObjects: [{ pattern: "team" }], overrideAnnotations: [{ pattern: "note" }] },
      },
      {
        resource: "configmaps",
        version: "v1",
        selector: { owner: "Consumer" },
        update: {
          labelsOnConsumerOwnedObjects: [{ pattern: "provider.example/*" }],
          annotationsOnConsumerOwnedObjects: [{ pattern: "endpoint" }],
        },
      },
    ]);
    await env.controlClient.create(refs.secrets, secret(pns, "creds", { a: "1" }));
    await eventually("down", async () => assert.ok(await env.appClient.get(refs.secrets, "creds", ns)));
    await edit(env.appClient, refs.secrets, ns, "creds", (s) => ({
      ...s,
      metadata: {
        ...s.metadata,
        labels: { ...s.metadata.labels, team: "orders", private: "x" },
        annotations: { ...s.metadata.annotations, note: "hello", secretive: "y" },
      },
    }));
    await eventually("read.labelsOnProviderOwnedObjects and read.overrideAnnotations", async () => {
      const original = await env.controlClient.get(refs.secrets, "creds", pns);
      assert.equal(original?.metadata.labels?.team, "orders");
      assert.equal(original?.metadata.annotations?.note, "hello");
      assert.equal(original?.metadata.labels?.private, undefined);
      assert.equal(original?.metadata.annotations?.secretive, undefined);
      assert.equal(original?.metadata.labels?.[ours.binding], undefined, "our marks never reach the original");
      const copy = await env.appClient.get(refs.secrets, "creds", ns);
      assert.equal(copy?.metadata.labels?.team, "orders", "kept on the copy");
      assert.equal(copy?.metadata.labels?.private, undefined, "the rest reverted");
    });

    await env.appClient.create(refs.configMaps, configMap(ns, "app", { a: "1" }, { labels: { app: "web" } }));
    await eventually("up", async () => assert.ok(await env.controlClient.get(refs.configMaps, "app", pns)));
    await edit(env.controlClient, refs.configMaps, pns, "app", (c) => ({
      ...c,
      metadata: {
        ...c.metadata,
        labels: { ...c.metadata.labels, "provider.example/plan": "small", internal: "z" },
        annotations: { ...c.metadata.annotations, endpoint: "db.example:5432", internalNote: "n" },
      },
    }));
    await eventually("update.labelsOnConsumerOwnedObjects and annotationsOnConsumerOwnedObjects", async () => {
      const original = await env.appClient.get(refs.configMaps, "app", ns);
      assert.equal(original?.metadata.labels?.["provider.example/plan"], "small");
      assert.equal(original?.metadata.annotations?.endpoint, "db.example:5432");
      assert.equal(original?.metadata.labels?.internal, undefined);
      assert.equal(original?.metadata.annotations?.internalNote, undefined);
      assert.equal(original?.metadata.labels?.app, "web");
      assert.equal(original?.metadata.labels?.[ours.copyOf], undefined, "the original stays an original");
    });
  });

  it("recreateWhenConsumerSideDeleted: false deletes the provider's object with its deleted copy; true recreates", async () => {
    const env = await syncEnv({ resyncMs: 500 });
    const { ns, pns } = await boundWith(env, "deletes", [
      {
        resource: "secrets",
        version: "v1",
        selector: { owner: "Provider" },
        onConflict: { recreateWhenConsumerSideDeleted: false },
      },
      { resource: "configmaps", version: "v1", selector: { owner: "Provider" } },
    ]);
    await env.controlClient.create(refs.secrets, secret(pns, "one-off", { a: "1" }));
    await env.controlClient.create(refs.configMaps, configMap(pns, "lasting", { a: "1" }));
    await eventually("down", async () => {
      assert.ok(await env.appClient.get(refs.secrets, "one-off", ns));
      assert.ok(await env.appClient.get(refs.configMaps, "lasting", ns));
    });
    // the provider's object stays while its copy does
    await stays("provider's Secret kept while copied", async () => {
      assert.ok(await env.controlClient.get(refs.secrets, "one-off", pns));
    });
    await env.appClient.delete(refs.secrets, "one-off", ns);
    await env.appClient.delete(refs.configMaps, "lasting", ns);
    await eventually("the provider's Secret is deleted too", async () => {
      assert.equal(await env.controlClient.get(refs.secrets, "one-off", pns), undefined);
    });
    await eventually("the ConfigMap copy is made again", async () => {
      assert.ok(await env.appClient.get(refs.configMaps, "lasting", ns));
      assert.ok(await env.controlClient.get(refs.configMaps, "lasting", pns));
    });
    assert.equal(await env.appClient.get(refs.secrets, "one-off", ns), undefined, "not recreated");
  });

  it("autoAdopt and autoDonate: an object made on one side becomes the other's", async () => {
    const env = await syncEnv({ resyncMs: 500 });
    const { ns, pns } = await boundWith(env, "handover", [
      { resource: "secrets", version: "v1", selector: { owner: "Provider" }, autoAdopt: true },
      { resource: "configmaps", version: "v1", autoDonate: true },
    ]);
    // autoAdopt: the consumer's Secret becomes the provider's
    await env.appClient.create(refs.secrets, secret(ns, "adopted", { a: "app" }));
    await eventually("adopted", async () => {
      const original = await env.controlClient.get(refs.secrets, "adopted", pns);
      assert.equal(text(original, "a"), "app");
      assert.equal(original?.metadata.annotations?.[klutchOwnerAnnotation], "Provider");
      const copy = await env.appClient.get(refs.secrets, "adopted", ns);
      assert.equal(copy?.metadata.labels?.[ours.copyOf], "provider");
    });
    await edit(env.appClient, refs.secrets, ns, "adopted", (s) => ({
      ...s,
      data: { a: Buffer.from("edited").toString("base64") },
    }));
    await eventually("now the provider's: the consumer's edit is reverted", async () => {
      assert.equal(text(await env.appClient.get(refs.secrets, "adopted", ns), "a"), "app");
    });

    // autoDonate: the provider's ConfigMap becomes the consumer's at once
    await env.controlClient.create(refs.configMaps, configMap(pns, "donated", { a: "provider" }));
    await eventually("donated", async () => {
      const original = await env.appClient.get(refs.configMaps, "donated", ns);
      assert.equal(cmData(original)?.a, "provider");
      assert.equal(original?.metadata.annotations?.[klutchOwnerAnnotation], "Consumer");
      assert.equal(original?.metadata.labels?.[ours.copyOf], undefined);
      const copy = await env.controlClient.get(refs.configMaps, "donated", pns);
      assert.equal(copy?.metadata.labels?.[ours.copyOf], "consumer");
    });
    await edit(env.appClient, refs.configMaps, ns, "donated", (c) => ({ ...c, data: { a: "consumer's now" } }));
    await eventually("now the consumer's: its edit goes up", async () => {
      assert.equal(cmData(await env.controlClient.get(refs.configMaps, "donated", pns))?.a, "consumer's now");
    });
  });

  it("claims without an owner: each object goes from the side that made it (or its klutch-bind mark), selected ones only", async () => {
    const env = await syncEnv({ resyncMs: 500 });
    const { ns, pns } = await boundWith(env, "ownerless", [
      { resource: "secrets", version: "v1", selector: { names: ["both-p", "both-c", "both-marked"] } },
    ]);
    const template = await env.controlClient.get(refs.templates, "postgresqlinstances", env.bindingNamespace);
    assert.ok(template);
    const claims = (template.spec as { permissionClaims: Array<{ selector: Record<string, unknown> }> })
      .permissionClaims;
    assert.equal(claims[0]?.selector.owner, undefined, "the template CRD stores an owner-less claim");

    await env.controlClient.create(refs.secrets, secret(pns, "both-p", { from: "provider" }));
    await env.appClient.create(refs.secrets, secret(ns, "both-c", { from: "consumer" }));
    await env.appClient.create(
      refs.secrets,
      secret(ns, "both-marked", { from: "consumer" }, { annotations: { [klutchOwnerAnnotation]: "Provider" } }),
    );
    await env.controlClient.create(refs.secrets, secret(pns, "other-p", { from: "provider" }));
    await env.appClient.create(refs.secrets, secret(ns, "other-c", { from: "consumer" }));
    await eventually("each from its owner", async () => {
      const down = await env.appClient.get(refs.secrets, "both-p", ns);
      assert.equal(down?.metadata.labels?.[ours.copyOf], "provider");
      const up = await env.controlClient.get(refs.secrets, "both-c", pns);
      assert.equal(up?.metadata.labels?.[ours.copyOf], "consumer");
      const marked = await env.controlClient.get(refs.secrets, "both-marked", pns);
      assert.equal(text(marked, "from"), "consumer");
      assert.equal(marked?.metadata.labels?.[ours.copyOf], undefined, "the provider's original now");
      const markedCopy = await env.appClient.get(refs.secrets, "both-marked", ns);
      assert.equal(markedCopy?.metadata.labels?.[ours.copyOf], "provider");
    });
    await stays("nothing unselected crosses", async () => {
      assert.equal(await env.appClient.get(refs.secrets, "other-p", ns), undefined);
      assert.equal(await env.controlClient.get(refs.secrets, "other-c", pns), undefined);
    });
  });
});
