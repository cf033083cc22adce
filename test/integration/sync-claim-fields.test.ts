// klutch-bind's claim fields beyond the selector, as the sync acts on them: which labels and
// annotations cross (read, update), create.replaceExisting, update.alwaysRecreate, required; and
// paths it cannot act on named on the binding. The further fields: sync-claim-fields-2.test.ts.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { labels as ours } from "../../src/api/naming.ts";
import { refs } from "../../src/api/resources.ts";
import type { KubeObject } from "../../src/kube/client.ts";
import { conditionOf } from "../../src/kube/conditions.ts";
import { boundWith, secret } from "../support/claim-binding.ts";
import { eventually } from "../support/eventually.ts";
import { syncEnv } from "../support/sync-env.ts";

describe("klutch-bind's claim fields", () => {
  it("read and update patterns: only the labels and annotations they name cross; replaceExisting and alwaysRecreate", async () => {
    const env = await syncEnv({ resyncMs: 500 });
    const { ns, pns } = await boundWith(env, "fields", [
      {
        resource: "secrets",
        version: "v1",
        selector: { owner: "Provider" },
        create: { replaceExisting: true },
        update: { alwaysRecreate: true, labels: [{ pattern: "app.example/*" }], annotations: [{ pattern: "note" }] },
      },
      {
        resource: "configmaps",
        version: "v1",
        selector: { owner: "Consumer" },
        read: { labels: [{ pattern: "team" }] },
      },
    ]);
    await eventually("provider namespace", async () => assert.ok(await env.controlClient.get(refs.namespaces, pns)));

    // update patterns
    await env.controlClient.create(
      refs.secrets,
      secret(
        pns,
        "creds",
        { password: "one" },
        {
          labels: { "app.example/tier": "gold", "internal.example/owner": "dba" },
          annotations: { note: "rotated monthly", "internal.example/ticket": "42" },
        },
      ),
    );
    let first: KubeObject | undefined;
    await eventually("down, with the named metadata only", async () => {
      first = await env.appClient.get(refs.secrets, "creds", ns);
      assert.equal(first?.metadata.labels?.["app.example/tier"], "gold");
      assert.equal(first?.metadata.labels?.["internal.example/owner"], undefined);
      assert.equal(first?.metadata.annotations?.note, "rotated monthly");
      assert.equal(first?.metadata.annotations?.["internal.example/ticket"], undefined);
    });

    // alwaysRecreate: a change is a new object
    const original = await env.controlClient.get(refs.secrets, "creds", pns);
    assert.ok(original);
    await env.controlClient.update(refs.secrets, {
      ...secret(pns, "creds", { password: "two" }),
      metadata: original.metadata,
    });
    await eventually("recreated with the new data", async () => {
      const now = await env.appClient.get(refs.secrets, "creds", ns);
      assert.equal(Buffer.from(String((now?.data as Record<string, string>)?.password), "base64").toString(), "two");
      assert.notEqual(now?.metadata.uid, first?.metadata.uid);
    });

    // replaceExisting: the provider's object takes over a name the app team used
    await env.appClient.create(refs.secrets, secret(ns, "taken", { mine: "app" }));
    await env.controlClient.create(refs.secrets, secret(pns, "taken", { theirs: "provider" }));
    await eventually("replaced", async () => {
      const now = await env.appClient.get(refs.secrets, "taken", ns);
      assert.deepEqual(Object.keys((now?.data as object) ?? {}), ["theirs"]);
      assert.equal(now?.metadata.labels?.[ours.copyOf], "provider");
    });

    // read patterns, the other way
    await env.appClient.create(refs.configMaps, {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "settings", namespace: ns, labels: { team: "orders", "private.example/x": "y" } },
      data: { a: "1" },
    });
    await eventually("up, with the named labels only", async () => {
      const up = await env.controlClient.get(refs.configMaps, "settings", pns);
      assert.equal(up?.metadata.labels?.team, "orders");
      assert.equal(up?.metadata.labels?.["private.example/x"], undefined);
    });
  });

  it("required: a required claim not accepted blocks the export; fields not acted on are named", async () => {
    const env = await syncEnv({ resyncMs: 500 });
    await boundWith(
      env,
      "requires",
      [{ resource: "secrets", version: "v1", selector: { owner: "Provider" }, required: true }],
      false,
    );
    await eventually("blocked", async () => {
      const read = await env.controlClient.get(refs.bindings, "requires", env.bindingNamespace);
      assert.equal(conditionOf(read, "Ready")?.status, "False", JSON.stringify(read?.status));
      assert.match(
        conditionOf(read, "Ready")?.message ?? "",
        /required claims not accepted: secrets\.core \(owner Provider\)/,
      );
    });

    const other = await syncEnv({ resyncMs: 500 });
    await boundWith(other, "preserves", [
      { resource: "secrets", version: "v1", selector: { owner: "Provider" }, update: { preserving: ["data.*"] } },
    ]);
    await eventually("named", async () => {
      const read = await other.controlClient.get(refs.bindings, "preserves", other.bindingNamespace);
      const acted = conditionOf(read, "ClaimFieldsActedOn");
      assert.equal(acted?.status, "False");
      assert.match(acted?.message ?? "", /secrets\.core \(owner Provider\) update\.preserving "data\.\*"/);
    });
  });
});
