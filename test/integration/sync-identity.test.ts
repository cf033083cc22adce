// Which binding holds an app cluster's API is named in that cluster (the API's CRD carries the
// binding's mark), never taken from what another binding's cluster says it is.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { annotations, labels, providerNamespace } from "../../src/api/naming.ts";
import { refs } from "../../src/api/resources.ts";
import type { KubeObject } from "../../src/kube/client.ts";
import { conditionOf } from "../../src/kube/conditions.ts";
import { namedOwners } from "../../src/sync/binding/consumer-crd.ts";
import { freshCluster, onFileDone, uniqueSuffix } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";
import { startAuthProxy } from "../support/hostile-cluster.ts";
import { type SyncEnv, syncEnv } from "../support/sync-env.ts";

async function readyStatus(env: SyncEnv, name: string): Promise<{ status?: string; message?: string }> {
  const read = await env.controlClient.get(refs.bindings, name, env.bindingNamespace);
  const ready = conditionOf(read, "Ready");
  return { status: ready?.status, message: ready?.message ?? JSON.stringify(read?.status) };
}

function crdOf(env: SyncEnv): Promise<KubeObject | undefined> {
  return env.appClient.get(refs.crds, `${env.ref.resource}.${env.ref.group}`);
}

describe("the holder of an app cluster's API", () => {
  it("is not taken away by an older binding whose app cluster reports the victim's kube-system uid", async () => {
    const env = await syncEnv({ resyncMs: 500 });
    const victimUid = (await env.appClient.get(refs.namespaces, "kube-system"))?.metadata.uid;
    assert.ok(victimUid);
    // another real cluster, behind a proxy that says it is the victim's
    const elsewhere = await freshCluster("spoofing-app");
    const spoofing = await startAuthProxy(elsewhere);
    onFileDone(() => spoofing.stop());
    spoofing.mutate = {
      when: (url) => url.pathname === "/api/v1/namespaces/kube-system",
      change: (body) => {
        const ns = JSON.parse(body.toString("utf8")) as KubeObject;
        ns.metadata.uid = victimUid;
        return { body: Buffer.from(JSON.stringify(ns)), contentType: "application/json" };
      },
    };
    spoofing.setMode("mutate");
    await env.bindWith("spoofer", spoofing.kubeconfig);
    await env.ready("spoofer");
    const spoofer = await env.controlClient.get(refs.bindings, "spoofer", env.bindingNamespace);
    assert.equal(
      (spoofer?.status as { appCluster?: { uid?: string } } | undefined)?.appCluster?.uid,
      victimUid,
      "the spoofing cluster was taken at its word for its identity",
    );

    // the victim binds its own cluster later, and is served
    const victim = await env.bindWith("victim", env.appKubeconfig);
    await eventually(
      "the victim's binding Ready",
      async () =>
        assert.equal((await readyStatus(env, "victim")).status, "True", (await readyStatus(env, "victim")).message),
      30_000,
    );
    const ns = `spoofed-${uniqueSuffix()}`;
    await env.appObject(ns, "db");
    const where = providerNamespace(victim.metadata.uid ?? "", ns);
    await eventually("the victim's object copied up", async () =>
      assert.ok(await env.controlClient.get(env.ref, "db", where)),
    );
    const crd = await crdOf(env);
    assert.equal(crd?.metadata.labels?.[labels.binding], victim.metadata.uid, "the victim's cluster names the victim");
    assert.equal((await readyStatus(env, "spoofer")).status, "True", "the spoofer keeps its own cluster");
  });

  it("passes to the next binding once the holder is deleted", async () => {
    const env = await syncEnv({ resyncMs: 500 });
    const first = await env.bindWith("first", env.appKubeconfig);
    await env.ready("first");
    const crd = await crdOf(env);
    assert.equal(crd?.metadata.labels?.[labels.binding], first.metadata.uid);
    assert.match(crd?.metadata.annotations?.[annotations.boundBy] ?? "", /\/first$/);
    const second = await env.bindWith("second", env.appKubeconfig);
    await eventually("the second refused", async () => {
      const { status, message } = await readyStatus(env, "second");
      assert.equal(status, "False", message);
      assert.match(message ?? "", /already binds \S+ through AppClusterBinding \S+\/first/);
    });

    await env.controlClient.delete(refs.bindings, "first", env.bindingNamespace);
    await eventually(
      "the second holds the API",
      async () => {
        const { status, message } = await readyStatus(env, "second");
        assert.equal(status, "True", message);
        assert.equal((await crdOf(env))?.metadata.labels?.[labels.binding], second.metadata.uid);
      },
      30_000,
    );
  });

  it("goes to one of two bindings of the same cluster made at once; the other is refused", async () => {
    const env = await syncEnv({ resyncMs: 500 });
    const ns = `twins-${uniqueSuffix()}`;
    const [one, two] = await Promise.all([
      env.bindWith("one", env.appKubeconfig),
      env.bindWith("two", env.appKubeconfig),
    ]);
    const byName = new Map([
      ["one", one],
      ["two", two],
    ]);
    let holder = "";
    await eventually(
      "one Ready, the other refused",
      async () => {
        const states = await Promise.all(["one", "two"].map(async (n) => [n, await readyStatus(env, n)] as const));
        const ready = states.filter(([, r]) => r.status === "True").map(([n]) => n);
        assert.equal(ready.length, 1, JSON.stringify(states));
        holder = ready[0] ?? "";
        const [, refused] = states.find(([n]) => n !== holder) ?? [];
        assert.match(refused?.message ?? "", new RegExp(`already binds \\S+ through AppClusterBinding \\S+/${holder}`));
      },
      30_000,
    );
    const holderUid = byName.get(holder)?.metadata.uid ?? "";
    assert.equal((await crdOf(env))?.metadata.labels?.[labels.binding], holderUid);
    for (const name of ["a", "b", "c"]) await env.appObject(ns, name);
    await eventually("every object copied once, by the holder", async () => {
      for (const name of ["a", "b", "c"]) {
        const app = await env.appClient.get(env.ref, name, ns);
        assert.equal(app?.metadata.labels?.[labels.binding], holderUid);
      }
      const copies = (await env.controlClient.list(env.ref)).items.filter(
        (o) => o.metadata.annotations?.[annotations.consumerNamespace] === ns,
      );
      assert.equal(copies.length, 3);
    });
  });

  it("before any mark, is the binding the API's objects are labelled with", async () => {
    const env = await syncEnv({ inProcess: false });
    const app = env.appClient;
    const unmarked = {
      apiVersion: "apiextensions.k8s.io/v1",
      kind: "CustomResourceDefinition",
      metadata: { name: `${env.ref.resource}.${env.ref.group}` },
      spec: (await env.controlClient.get(refs.crds, `${env.ref.resource}.${env.ref.group}`))?.spec,
    };
    await app.create(refs.crds, unmarked);
    await eventually("established", async () => {
      const crd = await app.get(refs.crds, unmarked.metadata.name);
      assert.ok(conditionOf(crd, "Established")?.status === "True");
    });
    const ns = `unmarked-${uniqueSuffix()}`;
    for (const [name, owner] of [
      ["a", "uid-older"],
      ["b", "uid-older"],
      ["c", "uid-mine"],
      ["d", undefined],
    ] as const) {
      const obj = await env.appObject(ns, name);
      if (owner) await app.mergePatch(env.ref, name, ns, { metadata: { labels: { [labels.binding]: owner } } });
      assert.ok(obj);
    }
    const crd = await app.get(refs.crds, unmarked.metadata.name);
    assert.deepEqual(await namedOwners(app, crd, "uid-mine"), [{ uid: "uid-older" }]);
    // a mark wins over labels
    const marked = await app.mergePatch(refs.crds, unmarked.metadata.name, undefined, {
      metadata: { labels: { [labels.binding]: "uid-marked" }, annotations: { [annotations.boundBy]: "k/ns/name" } },
    });
    assert.deepEqual(await namedOwners(app, marked, "uid-mine"), [{ uid: "uid-marked", key: "k/ns/name" }]);
    assert.deepEqual(await namedOwners(app, undefined, "uid-mine"), []);
  });
});
