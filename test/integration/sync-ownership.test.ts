// One owner per app object, and deleting a binding by hand (kubectl, GitOps) cleaning up as
// `klutch-bind unbind` does: finalizers released, provider copies kept or deleted per
// spec.deletionPolicy.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { annotations, finalizer, labels, providerNamespace } from "../../src/api/naming.ts";
import { refs } from "../../src/api/resources.ts";
import type { KubeObject } from "../../src/kube/client.ts";
import { conditionOf } from "../../src/kube/conditions.ts";
import { uniqueSuffix } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";
import { type SyncEnv, syncEnv } from "../support/sync-env.ts";

/** Every provider copy of one consumer object, whichever binding made it. */
async function copiesOf(env: SyncEnv, namespace: string, name: string): Promise<KubeObject[]> {
  const all = await env.controlClient.list(env.ref);
  return all.items.filter(
    (o) =>
      o.metadata.annotations?.[annotations.consumerName] === name &&
      o.metadata.annotations?.[annotations.consumerNamespace] === namespace,
  );
}

describe("one owner per app object", () => {
  it("refuses a second binding of the same app cluster and API, naming the first; one copy, no status loop", async () => {
    const env = await syncEnv({ resyncMs: 500 });
    const first = await env.bind("first", []);
    await env.ready("first");
    const ns = `owned-${uniqueSuffix()}`;
    await env.appObject(ns, "db");
    await eventually("copied", async () => assert.equal((await copiesOf(env, ns, "db")).length, 1));

    // the same cluster through another Secret (another kubeconfig, the same kube-system)
    await env.bindWith("second", env.appKubeconfig);
    await eventually("the second binding is refused", async () => {
      const second = await env.controlClient.get(refs.bindings, "second", env.bindingNamespace);
      const ready = conditionOf(second, "Ready");
      assert.equal(ready?.status, "False", JSON.stringify(second?.status));
      assert.match(
        ready?.message ?? "",
        new RegExp(`already binds postgresqlinstances\\.\\S+ through AppClusterBinding ${env.bindingNamespace}/first`),
      );
      const uid = (second?.status as { appCluster?: { uid?: string } } | undefined)?.appCluster?.uid;
      const firstStatus = (await env.controlClient.get(refs.bindings, "first", env.bindingNamespace))?.status as
        | { appCluster?: { uid?: string } }
        | undefined;
      assert.ok(uid && uid === firstStatus?.appCluster?.uid, "both know the cluster by its kube-system uid");
    });
    const app = await env.appClient.get(env.ref, "db", ns);
    assert.equal(app?.metadata.labels?.[labels.binding], first.metadata.uid, "the app object names its binding");

    // status down once; then count the writes on the app object until a second status came down
    const [copy] = await copiesOf(env, ns, "db");
    assert.ok(copy);
    await env.controlClient.updateStatus(env.ref, { ...copy, status: { endpoint: "db.example:5432" } });
    let synced: KubeObject | undefined;
    await eventually("status down", async () => {
      synced = await env.appClient.get(env.ref, "db", ns);
      assert.equal((synced?.status as { endpoint?: string } | undefined)?.endpoint, "db.example:5432");
    });
    const writes: string[] = [];
    const endpointOf = (o: KubeObject) => (o.status as { endpoint?: string } | undefined)?.endpoint;
    const abort = new AbortController();
    const watching = env.appClient
      .watch(
        env.ref,
        { namespace: ns, resourceVersion: synced?.metadata.resourceVersion ?? "", allowBookmarks: false },
        (e) => writes.push(`${e.type} ${e.object.metadata.resourceVersion} ${endpointOf(e.object)}`),
        abort.signal,
      )
      .catch(() => undefined);
    // the sync takes this change after whatever the first status set off; a loop writes meanwhile
    const [later] = await copiesOf(env, ns, "db");
    assert.ok(later);
    await env.controlClient.updateStatus(env.ref, { ...later, status: { endpoint: "db.example:5433" } });
    await eventually("the second status seen on the app object", async () =>
      assert.ok(writes.some((w) => w.endsWith(" db.example:5433"))),
    );
    abort.abort();
    await watching;
    // the second status's own write aside
    assert.ok(writes.length - 1 <= 2, `writes after the status arrived: ${writes.join(", ")}`);
    assert.equal((await copiesOf(env, ns, "db")).length, 1, "exactly one provider copy");
  });
});

describe("deleting a binding with kubectl", () => {
  /** A binding with one app object copied up, then deleted as kubectl would; resolves once it is gone. */
  async function boundThenDeleted(name: string, deletionPolicy?: "Orphan" | "Delete") {
    const env = await syncEnv({ resyncMs: 500 });
    const binding = await env.bindWith(name, env.appKubeconfig, deletionPolicy ? { deletionPolicy } : {});
    await env.ready(name);
    const ns = `${name}-${uniqueSuffix()}`;
    await env.appObject(ns, "db");
    const where = providerNamespace(binding.metadata.uid ?? "", ns);
    await eventually("copied", async () => assert.ok(await env.controlClient.get(env.ref, "db", where)));
    await env.controlClient.delete(refs.bindings, name, env.bindingNamespace);
    await eventually("the binding is gone", async () =>
      assert.equal(await env.controlClient.get(refs.bindings, name, env.bindingNamespace), undefined),
    );
    return { env, ns, where };
  }

  it("Orphan (the default): app objects released, provider copies kept", async () => {
    const { env, ns, where } = await boundThenDeleted("gitops-orphan");
    const app = await env.appClient.get(env.ref, "db", ns);
    assert.ok(app, "the app object stays");
    assert.ok(!app.metadata.finalizers?.includes(finalizer), "released from our finalizer");
    assert.equal(app.metadata.labels?.[labels.binding], undefined, "and from our owner label");
    const copy = await env.controlClient.get(env.ref, "db", where);
    assert.ok(copy && copy.metadata.deletionTimestamp === undefined, "the provider copy stays");
    assert.ok(await env.controlClient.get(refs.namespaces, where), "its namespace stays");
    assert.equal(
      await env.controlClient.get(refs.secrets, "gitops-orphan-kubeconfig", env.bindingNamespace),
      undefined,
      "its own kubeconfig Secret goes with it",
    );
  });

  it("Delete: provider copies and namespaces go, app objects are released", async () => {
    const { env, ns, where } = await boundThenDeleted("gitops-delete", "Delete");
    const copy = await env.controlClient.get(env.ref, "db", where);
    assert.ok(copy === undefined || copy.metadata.deletionTimestamp !== undefined, "the provider copy goes");
    const namespace = await env.controlClient.get(refs.namespaces, where);
    assert.ok(namespace === undefined || namespace.metadata.deletionTimestamp !== undefined, "its namespace goes");
    const app = await env.appClient.get(env.ref, "db", ns);
    assert.ok(app && !app.metadata.finalizers?.includes(finalizer), "the app object stays, released");
  });

  it("removing an export from the binding releases that export", async () => {
    const env = await syncEnv({ resyncMs: 500 });
    const binding = await env.bindWith("shrinking", env.appKubeconfig);
    await env.ready("shrinking");
    const ns = `shrink-${uniqueSuffix()}`;
    await env.appObject(ns, "let-go");
    const where = providerNamespace(binding.metadata.uid ?? "", ns);
    await eventually("copied", async () => assert.ok(await env.controlClient.get(env.ref, "let-go", where)));
    await env.controlClient.mergePatch(refs.bindings, "shrinking", env.bindingNamespace, { spec: { exports: [] } });
    await eventually("released", async () => {
      const app = await env.appClient.get(env.ref, "let-go", ns);
      assert.ok(app && !app.metadata.finalizers?.includes(finalizer));
    });
    assert.ok(await env.controlClient.get(env.ref, "let-go", where), "the provider copy stays (Orphan)");
  });
});
