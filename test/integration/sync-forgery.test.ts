// What a tenant can write in its app cluster never reaches the provider's objects, nor another app
// namespace's copies: a forged transferred-from annotation, an app namespace named like a shortened
// provider namespace, a provider namespace that mirrors another app namespace.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  annotations,
  bindingPrefix,
  earlierProviderNamespace,
  finalizer,
  labels,
  providerNamespace,
} from "../../src/api/naming.ts";
import { refs } from "../../src/api/resources.ts";
import type { KubeObject, ResourceRef } from "../../src/kube/client.ts";
import { boundWith, secret } from "../support/claim-binding.ts";
import { uniqueSuffix } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";
import { objectReconciles, objectsReconciled } from "../support/sync-counts.ts";
import { type SyncEnv, syncEnv } from "../support/sync-env.ts";

function text(obj: KubeObject | undefined, key: string): string | undefined {
  const value = (obj?.data as Record<string, string> | undefined)?.[key];
  return value === undefined ? undefined : Buffer.from(value, "base64").toString();
}

async function conflictsOf(env: SyncEnv, binding: string): Promise<string[]> {
  const read = await env.controlClient.get(refs.bindings, binding, env.bindingNamespace);
  const exports = (read?.status as { exports?: Array<{ message?: string }> } | undefined)?.exports ?? [];
  return exports.map((e) => e.message ?? "");
}

async function eventsOf(env: SyncEnv): Promise<string[]> {
  const events = await env.controlClient.list(refs.events, { namespace: env.bindingNamespace });
  return events.items.filter((e) => e.reason === "NameConflict").map((e) => String(e.message));
}

/**
 * Touches each app object (an annotation: a change the sync looks at and writes nothing for) the
 * given number of times, waiting each time until the sync finished as many more reconciles of the
 * binding's objects as there are objects.
 */
async function reconcilesAfterTouching(
  env: SyncEnv,
  binding: string,
  objects: Array<[ResourceRef, string, string]>,
  times = 1,
): Promise<void> {
  for (let round = 1; round <= times; round++) {
    const from = await objectReconciles(env, binding);
    for (const [ref, namespace, name] of objects) {
      await env.appClient.mergePatch(ref, name, namespace, {
        metadata: { annotations: { "test.klutch-bind/touched": String(round) } },
      });
    }
    await objectsReconciled(env, binding, from, objects.length);
  }
}

describe("a forged transferred-from annotation", () => {
  /**
   * The tenant turns the copy of a provider Secret into an object of its own that claims to be the
   * original the Secret was transferred from; the provider's Secret must stay as it was.
   */
  async function forge(env: SyncEnv, binding: string, ref: ResourceRef, ns: string, pns: string, name: string) {
    const original = await env.controlClient.get(ref, name, pns);
    assert.ok(original?.metadata.uid);
    let copy: KubeObject | undefined;
    await eventually("copied down", async () => {
      copy = await env.appClient.get(ref, name, ns);
      assert.equal(copy?.metadata.labels?.[labels.copyOf], "provider");
    });
    assert.ok(copy);
    const { [labels.binding]: _b, [labels.copyOf]: _c, ...kept } = copy.metadata.labels ?? {};
    await env.appClient.update(ref, {
      ...copy,
      metadata: {
        ...copy.metadata,
        labels: kept,
        annotations: { ...copy.metadata.annotations, [annotations.transferredFrom]: original.metadata.uid },
      },
      data: { password: Buffer.from("tenant's").toString("base64") },
    });
    // until the sync has acted: it reports the tenant's object as a conflict, or it touched the provider's
    await eventually("the sync looked at it", async () => {
      const now = await env.controlClient.get(ref, name, pns);
      const touched = now?.metadata.resourceVersion !== original.metadata.resourceVersion;
      const reported = (await conflictsOf(env, binding)).some((m) => m.includes(`${ns}/${name}`));
      assert.ok(touched || reported);
    });
    return original;
  }

  function assertUntouched(now: KubeObject | undefined, before: KubeObject) {
    assert.ok(now, "the provider's Secret is still there");
    assert.equal(now.metadata.uid, before.metadata.uid);
    assert.equal(now.metadata.deletionTimestamp, undefined);
    assert.equal(text(now, "password"), "provider's");
    assert.equal(now.metadata.labels?.[labels.copyOf], undefined, "not made a copy of the tenant's object");
    assert.equal(now.metadata.labels?.[labels.binding], undefined);
  }

  it("claim without an owner: the provider's Secret is neither overwritten nor deleted with the tenant's object", async () => {
    const env = await syncEnv({ resyncMs: 500 });
    const { ns, pns } = await boundWith(env, "forged-ownerless", [{ resource: "secrets", version: "v1" }]);
    await eventually("provider namespace", async () => assert.ok(await env.controlClient.get(refs.namespaces, pns)));
    await env.controlClient.create(refs.secrets, secret(pns, "db-conn", { password: "provider's" }));
    const before = await forge(env, "forged-ownerless", refs.secrets, ns, pns, "db-conn");
    assertUntouched(await env.controlClient.get(refs.secrets, "db-conn", pns), before);

    // the tenant deletes its object: the provider's Secret stays and is copied down again
    await env.appClient.delete(refs.secrets, "db-conn", ns);
    await eventually("copied down again", async () => {
      const copy = await env.appClient.get(refs.secrets, "db-conn", ns);
      assert.equal(copy?.metadata.labels?.[labels.copyOf], "provider");
      assert.equal(text(copy, "password"), "provider's");
    });
    assertUntouched(await env.controlClient.get(refs.secrets, "db-conn", pns), before);
  });

  it("owner Provider with autoAdopt: the provider's Secret is not deleted", async () => {
    const env = await syncEnv({ resyncMs: 500 });
    const { ns, pns } = await boundWith(env, "forged-adopting", [
      { resource: "secrets", version: "v1", selector: { owner: "Provider" }, autoAdopt: true },
    ]);
    await eventually("provider namespace", async () => assert.ok(await env.controlClient.get(refs.namespaces, pns)));
    await env.controlClient.create(refs.secrets, secret(pns, "db-conn", { password: "provider's" }));
    const before = await forge(env, "forged-adopting", refs.secrets, ns, pns, "db-conn");
    // a few reconciles more: the verdict was once "delete at once"
    await reconcilesAfterTouching(env, "forged-adopting", [[refs.secrets, ns, "db-conn"]], 2);
    assertUntouched(await env.controlClient.get(refs.secrets, "db-conn", pns), before);
    const tenant = await env.appClient.get(refs.secrets, "db-conn", ns);
    assert.equal(text(tenant, "password"), "tenant's", "the tenant's object is left alone too");
  });
});

describe("one provider namespace per app namespace", () => {
  it("an app namespace named like a shortened provider namespace does not touch the long one's copy", async () => {
    const env = await syncEnv({ resyncMs: 500 });
    const binding = await env.bind("collide", []);
    await env.ready("collide");
    const uid = binding.metadata.uid ?? "";
    const long = `orders-${uniqueSuffix()}-${"x".repeat(45)}`;
    assert.ok(long.length > 48 && long.length <= 63);
    // what the earlier mapping made of long, as an app namespace of its own: the audit's example
    const crafted = earlierProviderNamespace(uid, long).slice(bindingPrefix(uid).length + 1);

    await env.appObject(long, "db", "small");
    let theirs: KubeObject | undefined;
    await eventually("the long namespace's copy", async () => {
      theirs = await env.controlClient.get(env.ref, "db", providerNamespace(uid, long));
      assert.ok(theirs);
    });
    assert.ok(theirs);

    await env.appObject(crafted, "db", "huge");
    await eventually("the crafted namespace's copy, in a namespace of its own", async () => {
      const own = await env.controlClient.get(env.ref, "db", providerNamespace(uid, crafted));
      assert.equal(own?.metadata.annotations?.[annotations.consumerNamespace], crafted);
    });
    const after = await env.controlClient.get(env.ref, "db", providerNamespace(uid, long));
    assert.equal(after?.metadata.uid, theirs.metadata.uid);
    assert.deepEqual(after?.spec, { size: "small" });
    assert.equal(after?.metadata.annotations?.[annotations.consumerNamespace], long);

    await env.appClient.delete(env.ref, "db", crafted);
    await eventually("the crafted object gone", async () =>
      assert.equal(await env.appClient.get(env.ref, "db", crafted), undefined),
    );
    const still = await env.controlClient.get(env.ref, "db", providerNamespace(uid, long));
    assert.equal(still?.metadata.uid, theirs.metadata.uid);
    assert.equal(still?.metadata.deletionTimestamp, undefined);
  });

  it("a long app namespace whose copies an earlier version put elsewhere gets no second set", async () => {
    const env = await syncEnv({ resyncMs: 500 });
    const binding = await env.bind("earlier", []);
    await env.ready("earlier");
    const uid = binding.metadata.uid ?? "";
    const long = `orders-${uniqueSuffix()}-${"y".repeat(45)}`;
    const earlier = earlierProviderNamespace(uid, long);
    assert.notEqual(earlier, providerNamespace(uid, long));
    await env.controlClient.create(refs.namespaces, {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name: earlier, labels: { [labels.binding]: uid, [labels.consumerNamespace]: long } },
    });
    await env.appObject(long, "db");
    await eventually("refused, naming both provider namespaces", async () => {
      const messages = await eventsOf(env);
      assert.ok(
        messages.some((m) => m.includes(earlier) && m.includes(providerNamespace(uid, long))),
        JSON.stringify(messages),
      );
    });
    assert.equal(await env.controlClient.get(refs.namespaces, providerNamespace(uid, long)), undefined);
  });

  it("a provider namespace that mirrors another app namespace is refused: its copies are neither written nor deleted", async () => {
    const env = await syncEnv({ resyncMs: 500 });
    const binding = await env.bind("taken", [
      { group: "", resource: "secrets", version: "v1", selector: { owner: "Consumer" } },
    ]);
    await env.ready("taken");
    const uid = binding.metadata.uid ?? "";
    const ns = `victim-${uniqueSuffix()}`;
    const elsewhere = `elsewhere-${uniqueSuffix()}`;
    const pns = providerNamespace(uid, ns);
    // as if another app namespace of this binding had reached this provider namespace first
    await env.controlClient.create(refs.namespaces, {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name: pns, labels: { [labels.binding]: uid, [labels.consumerNamespace]: elsewhere } },
    });
    const copy = await env.controlClient.create(env.ref, {
      apiVersion: env.apiVersion,
      kind: env.kind,
      metadata: {
        name: "db",
        namespace: pns,
        labels: { [labels.binding]: uid },
        annotations: {
          [annotations.consumerName]: "db",
          [annotations.consumerNamespace]: elsewhere,
          [annotations.consumerUid]: "elsewhere-uid",
        },
      },
      spec: { size: "small" },
    });
    const claimed = await env.controlClient.create(
      refs.secrets,
      secret(
        pns,
        "creds",
        { password: "elsewhere's" },
        { labels: { [labels.binding]: uid, [labels.copyOf]: "consumer" } },
      ),
    );

    await env.appObject(ns, "db", "huge");
    await env.appObject(ns, "fresh");
    await env.appClient.create(refs.secrets, secret(ns, "creds", { password: "victim's" }));
    await eventually("refused, naming both app namespaces", async () => {
      const app = await env.appClient.get(env.ref, "db", ns);
      assert.ok(app?.metadata.finalizers?.includes(finalizer), "the sync has seen the object");
      const messages = await eventsOf(env);
      assert.ok(
        messages.some((m) => m.includes(pns) && m.includes(elsewhere) && m.includes(ns)),
        JSON.stringify(messages),
      );
    });
    // a few reconciles more, of each object
    await reconcilesAfterTouching(env, "taken", [
      [env.ref, ns, "db"],
      [env.ref, ns, "fresh"],
      [refs.secrets, ns, "creds"],
    ]);
    const now = await env.controlClient.get(env.ref, "db", pns);
    assert.equal(now?.metadata.resourceVersion, copy.metadata.resourceVersion, "the other's copy is not written");
    const creds = await env.controlClient.get(refs.secrets, "creds", pns);
    assert.equal(creds?.metadata.resourceVersion, claimed.metadata.resourceVersion, "nor its claimed copy");
    assert.equal(await env.controlClient.get(env.ref, "fresh", pns), undefined, "nothing new goes there");

    await env.appClient.delete(refs.secrets, "creds", ns);
    await env.appClient.delete(env.ref, "db", ns);
    await env.appClient.delete(env.ref, "fresh", ns);
    await eventually("the app objects go", async () => {
      assert.equal(await env.appClient.get(env.ref, "db", ns), undefined);
      assert.equal(await env.appClient.get(env.ref, "fresh", ns), undefined);
    });
    // an object made after the deletions, on the same watch and queue, is copied: their events were
    // taken before it
    const later = `later-${uniqueSuffix()}`;
    await env.appObject(later, "probe");
    await eventually("a later object is copied", async () =>
      assert.ok(await env.controlClient.get(env.ref, "probe", providerNamespace(uid, later))),
    );
    const kept = await env.controlClient.get(env.ref, "db", pns);
    assert.ok(kept && kept.metadata.deletionTimestamp === undefined, "the other's copy is not deleted");
    const keptCreds = await env.controlClient.get(refs.secrets, "creds", pns);
    assert.ok(keptCreds && keptCreds.metadata.deletionTimestamp === undefined, "nor its claimed copy");
  });
});
