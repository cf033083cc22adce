// Claimed resources between two real API servers: provider-owned secrets down (byte-exact, edits
// reverted, deleted with the original), consumer-owned configmaps up, selectors enforced, name
// conflicts reported and never clobbered.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { labels, providerNamespace } from "../../src/api/naming.ts";
import { refs } from "../../src/api/resources.ts";
import type { KubeObject } from "../../src/kube/client.ts";
import { conditionOf } from "../../src/kube/conditions.ts";
import { uniqueSuffix } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";
import { type SyncEnv, syncEnv } from "../support/sync-env.ts";

describe("the sync of claimed objects", () => {
  let env: SyncEnv;
  let uid: string;

  /** An app namespace with one bound object in it, and its provider namespace. */
  async function boundNamespace(): Promise<{ ns: string; pns: string }> {
    const ns = `app-${uniqueSuffix()}`;
    await env.appObject(ns, "db", "small");
    const pns = providerNamespace(uid, ns);
    await eventually("provider copy", async () => assert.ok(await env.controlClient.get(env.ref, "db", pns)));
    return { ns, pns };
  }

  function secret(namespace: string, name: string, data: Record<string, Buffer>, type = "Opaque"): KubeObject {
    return {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name, namespace, labels: { "klutch.test/credentials": "true" } },
      type,
      data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, v.toString("base64")])),
    };
  }

  before(async () => {
    env = await syncEnv();
    const binding = await env.bind("claims", [
      {
        group: "",
        resource: "secrets",
        version: "v1",
        selector: { owner: "Provider", labelSelector: { matchLabels: { "klutch.test/credentials": "true" } } },
      },
      { group: "", resource: "configmaps", version: "v1", selector: { owner: "Consumer", names: ["app-*"] } },
    ]);
    uid = binding.metadata.uid ?? "";
    await env.ready("claims");
  });

  it("copies a provider-owned secret down byte-exact, reverts edits, and deletes it with the original", async () => {
    const { ns, pns } = await boundNamespace();
    const binary = randomBytes(4096);
    await env.controlClient.create(
      refs.secrets,
      secret(pns, "db-credentials", { password: binary, username: Buffer.from("app") }, "kubernetes.io/basic-auth"),
    );
    let copy: KubeObject | undefined;
    await eventually("secret down", async () => {
      copy = await env.appClient.get(refs.secrets, "db-credentials", ns);
      assert.ok(copy);
    });
    assert.ok(copy);
    assert.equal(copy.type, "kubernetes.io/basic-auth");
    assert.ok(Buffer.from((copy.data as Record<string, string>).password ?? "", "base64").equals(binary), "byte-exact");
    assert.equal(copy.metadata.labels?.[labels.copyOf], "provider");

    await env.appClient.update(refs.secrets, {
      ...copy,
      data: { ...(copy.data as object), password: Buffer.from("tampered").toString("base64") },
    });
    await eventually("edit reverted", async () => {
      const reverted = await env.appClient.get(refs.secrets, "db-credentials", ns);
      const password = (reverted?.data as Record<string, string> | undefined)?.password ?? "";
      assert.ok(Buffer.from(password, "base64").equals(binary));
    });

    await env.controlClient.delete(refs.secrets, "db-credentials", pns);
    await eventually("copy deleted", async () =>
      assert.equal(await env.appClient.get(refs.secrets, "db-credentials", ns), undefined),
    );
  });

  it("carries a 1 MiB configmap up byte-exact when the consumer owns it", async () => {
    const { ns, pns } = await boundNamespace();
    const big = "x".repeat(1024 * 1024 - 200);
    await env.appClient.create(refs.configMaps, {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "app-settings", namespace: ns },
      data: { big, small: "1" },
    });
    await eventually("configmap up", async () => {
      const up = await env.controlClient.get(refs.configMaps, "app-settings", pns);
      assert.equal((up?.data as Record<string, string> | undefined)?.big?.length, big.length);
      assert.equal(up?.metadata.labels?.[labels.copyOf], "consumer");
    });
  });

  it("never copies what the selector leaves out", async () => {
    const { ns, pns } = await boundNamespace();
    await env.controlClient.create(refs.secrets, {
      ...secret(pns, "internal", { k: Buffer.from("v") }),
      metadata: { name: "internal", namespace: pns, labels: {} },
    });
    await env.appClient.create(refs.configMaps, {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "other-settings", namespace: ns },
      data: { a: "b" },
    });
    await env.controlClient.create(refs.secrets, secret(pns, "marker", { k: Buffer.from("v") }));
    await eventually("the matching secret arrived", async () =>
      assert.ok(await env.appClient.get(refs.secrets, "marker", ns)),
    );
    await sleep(300);
    assert.equal(
      await env.appClient.get(refs.secrets, "internal", ns),
      undefined,
      "unlabelled secret stays on the control plane",
    );
    assert.equal(
      await env.controlClient.get(refs.configMaps, "other-settings", pns),
      undefined,
      "configmap not named app-* stays in the app",
    );
  });

  it("reports a name conflict and leaves the other object alone", async () => {
    const { ns, pns } = await boundNamespace();
    await env.appClient.create(refs.secrets, {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "taken", namespace: ns },
      stringData: { mine: "yes" },
    });
    await env.controlClient.create(refs.secrets, secret(pns, "taken", { theirs: Buffer.from("no") }));
    await eventually("conflict on the binding's status", async () => {
      const read = await env.controlClient.get(refs.bindings, "claims", env.bindingNamespace);
      const exports = (read?.status as { exports?: Array<{ message?: string }> } | undefined)?.exports ?? [];
      assert.ok(
        exports.some((e) => e.message?.includes(`secrets ${ns}/taken exists and was not created by the sync`)),
        JSON.stringify(exports),
      );
    });
    await eventually("a NameConflict event on the binding", async () => {
      const events = await env.controlClient.list(refs.events, { namespace: env.bindingNamespace });
      assert.ok(events.items.some((e) => e.reason === "NameConflict" && String(e.message).includes(`${ns}/taken`)));
    });
    const untouched = await env.appClient.get(refs.secrets, "taken", ns);
    assert.deepEqual(Object.keys((untouched?.data as object) ?? {}), ["mine"]);

    // the user removes theirs: the copy arrives and the conflict leaves the status
    await env.appClient.delete(refs.secrets, "taken", ns);
    await eventually(
      "the provider's copy in place, the conflict gone",
      async () => {
        const copy = await env.appClient.get(refs.secrets, "taken", ns);
        assert.deepEqual(Object.keys((copy?.data as object) ?? {}), ["theirs"]);
        const read = await env.controlClient.get(refs.bindings, "claims", env.bindingNamespace);
        const exports = (read?.status as { exports?: Array<{ message?: string }> } | undefined)?.exports ?? [];
        assert.ok(!exports.some((e) => e.message?.includes(`${ns}/taken`)), JSON.stringify(exports));
      },
      45_000,
    );
  });

  it("isolates two bindings of one app cluster: the second is refused and touches nothing", async () => {
    const other = await env.bind("claims-two", [
      {
        group: "",
        resource: "secrets",
        version: "v1",
        selector: { owner: "Provider", labelSelector: { matchLabels: { "klutch.test/credentials": "true" } } },
      },
      { group: "", resource: "configmaps", version: "v1", selector: { owner: "Consumer", names: ["app-*"] } },
    ]);
    const otherUid = other.metadata.uid ?? "";
    const { ns, pns } = await boundNamespace();
    // both bindings point at the same app cluster: only the first may sync its objects
    const otherPns = providerNamespace(otherUid, ns);
    assert.notEqual(otherPns, pns);
    await eventually("the second binding is refused", async () => {
      const read = await env.controlClient.get(refs.bindings, "claims-two", env.bindingNamespace);
      assert.match(
        conditionOf(read, "Ready")?.message ?? "",
        /already binds .* through AppClusterBinding \S+\/claims \(the API.s CRD there names it\)/,
      );
    });
    await env.controlClient.create(refs.secrets, secret(pns, "only-first", { k: Buffer.from("1") }));
    await eventually("first binding's secret arrives", async () =>
      assert.ok(await env.appClient.get(refs.secrets, "only-first", ns)),
    );
    const copy = await env.appClient.get(refs.secrets, "only-first", ns);
    assert.equal(copy?.metadata.labels?.[labels.binding], uid, "copied by the first binding only");
    assert.equal(await env.controlClient.get(refs.namespaces, otherPns), undefined, "the second made nothing");
  });
});
