// The sync reaches the control plane through a proxy that holds back the watch events of namespaces
// and of bound objects for seconds: a new copy is known only from the sync's own write for a
// while, and its provider namespace reaches the cache after. Work that waited for them must still
// be done (a lost trigger never looks again: there is no periodic resync).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pino } from "pino";
import { finalizer, providerNamespace } from "../../src/api/naming.ts";
import { KubeClient } from "../../src/kube/client.ts";
import { startSync } from "../../src/sync/manager.ts";
import { onFileDone, uniqueSuffix } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";
import { startAuthProxy } from "../support/hostile-cluster.ts";
import { syncEnv } from "../support/sync-env.ts";

describe("provider namespaces cached late", () => {
  it("deletes the copies of consumer objects gone or deleting meanwhile", async () => {
    const env = await syncEnv({ inProcess: false });
    const lagging = await startAuthProxy(env.control);
    onFileDone(() => lagging.stop());
    const namespaces = (url: URL) => url.pathname === "/api/v1/namespaces";
    lagging.mutate = {
      // what a watch of namespaces sent in 2 s, of the bound objects in 6 s, sent at once (and the
      // watch ends: the next one starts after it). A new copy's namespace reaches the cache first,
      // before the copy itself, which the sync knows from its own write meanwhile.
      when: (url) =>
        url.searchParams.get("watch") === "true" && (namespaces(url) || url.pathname.endsWith(`/${env.ref.resource}`)),
      change: (body) => ({ body, contentType: "application/json" }),
      watchWaitMs: (url) => (namespaces(url) ? 2000 : 6000),
    };
    lagging.setMode("mutate");
    const control = KubeClient.fromKubeconfigText(lagging.kubeconfig);
    onFileDone(async () => control.close());
    const binding = await env.bind("lagging", []);
    const sync = await startSync({
      control,
      // the test's app clusters listen on 127.0.0.1
      allowLoopbackAppServers: true,
      logger: pino({ level: process.env.KLB_TEST_LOG ?? "silent" }),
      workers: 4,
      resyncMs: 1000,
      namespace: env.bindingNamespace,
      templateNamespaces: [env.bindingNamespace],
    });
    onFileDone(() => sync.stop());
    await env.ready("lagging");
    const uid = binding.metadata.uid ?? "";

    // each in a new app namespace: its provider namespace is new, and cached seconds late
    const vanished = `vanished-${uniqueSuffix()}`;
    await env.appObject(vanished, "db");
    await eventually("copied", async () =>
      assert.ok(await env.controlClient.get(env.ref, "db", providerNamespace(uid, vanished))),
    );
    const live = await env.appClient.get(env.ref, "db", vanished);
    assert.ok(live);
    // gone at once: its finalizer taken off behind the sync's back
    await env.appClient.update(env.ref, { ...live, metadata: { ...live.metadata, finalizers: [] } });
    await env.appClient.delete(env.ref, "db", vanished);

    const deleting = `deleting-${uniqueSuffix()}`;
    await env.appObject(deleting, "db");
    await eventually("copied", async () =>
      assert.ok(await env.controlClient.get(env.ref, "db", providerNamespace(uid, deleting))),
    );
    await eventually("our finalizer on it", async () =>
      assert.ok((await env.appClient.get(env.ref, "db", deleting))?.metadata.finalizers?.includes(finalizer)),
    );
    await env.appClient.delete(env.ref, "db", deleting);

    await eventually(
      "both copies deleted, the deleting object gone",
      async () => {
        assert.equal(await env.controlClient.get(env.ref, "db", providerNamespace(uid, vanished)), undefined);
        assert.equal(await env.controlClient.get(env.ref, "db", providerNamespace(uid, deleting)), undefined);
        assert.equal(await env.appClient.get(env.ref, "db", deleting), undefined);
      },
      30_000,
    );
    await eventually("namespace watches went through the proxy", () => assert.ok(lagging.mutated > 0), 10_000);
  });
});
