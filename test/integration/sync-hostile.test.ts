// The sync against app clusters it must not trust: an auth proxy that starts answering with a
// sign-in page, servers that hang, reset, flood or lie, a "kubeconfig" that is really a file of
// credentials. Each costs its own binding a condition and nothing else.
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import { pino } from "pino";
import { providerNamespace } from "../../src/api/naming.ts";
import { refs } from "../../src/api/resources.ts";
import { conditionOf, isEstablished } from "../../src/kube/conditions.ts";
import { widgetCrd } from "../fixtures/crds.ts";
import { onFileDone, uniqueSuffix } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";
import {
  credentialsFile,
  hostileBehaviours,
  loopingBehaviours,
  startAuthProxy,
  startHostileServer,
  startLoopingServer,
} from "../support/hostile-cluster.ts";
import { type SyncEnv, syncEnv } from "../support/sync-env.ts";

/** Everything the sync logs, to search for what must never be said. */
const logged: string[] = [];
const logger = pino(
  { level: "debug" },
  new Writable({
    write(chunk, _encoding, done) {
      logged.push(String(chunk));
      done();
    },
  }),
);

/** A sync, an exported API and a binding namespace of the test's own. */
async function ownEnv() {
  const env = await syncEnv({ logger, resyncMs: 500 });
  const condition = async (binding: string, type: string) =>
    conditionOf(await env.controlClient.get(refs.bindings, binding, env.bindingNamespace), type);
  return { env, condition };
}

/**
 * Binds each server (a binding named names[i]) to an API of its own, so that only the shared
 * process links them to the healthy neighbour.
 */
async function bindToOwnApi(env: SyncEnv, servers: Array<{ kubeconfig: string }>, names: string[]): Promise<void> {
  const group = `hostile${uniqueSuffix()}.klutch-bind.test`;
  await env.controlClient.apply(refs.crds, widgetCrd(group), "test", true);
  onFileDone(async () => void (await env.controlClient.delete(refs.crds, `widgets.${group}`)));
  await eventually("the hostile API's CRD", async () =>
    assert.ok(isEstablished(await env.controlClient.get(refs.crds, `widgets.${group}`))),
  );
  await env.controlClient.apply(
    refs.templates,
    {
      apiVersion: "example-backend.klutch.anynines.com/v1alpha1",
      kind: "APIServiceExportTemplate",
      metadata: { name: "widgets", namespace: env.bindingNamespace },
      spec: { APIServiceSelector: { group, resource: "widgets", version: "v1" }, permissionClaims: [] },
    },
    "test",
    true,
  );
  const elsewhere = { exports: [{ group, resource: "widgets" }] };
  await Promise.all(servers.map((s, i) => env.bindWith(names[i] ?? "", s.kubeconfig, elsewhere)));
}

describe("a hostile app cluster", () => {
  it("an auth proxy answering with a sign-in page deletes no provider copy", async () => {
    const { env, condition } = await ownEnv();
    const proxy = await startAuthProxy(env.app);
    onFileDone(() => proxy.stop());
    const binding = await env.bindWith("behind-proxy", proxy.kubeconfig);
    await env.ready("behind-proxy");
    const ns = `proxied-${uniqueSuffix()}`;
    const names = ["a", "b", "c", "d", "e"];
    for (const name of names) await env.appObject(ns, name);
    const copies = providerNamespace(binding.metadata.uid ?? "", ns);
    const copyUids = async () =>
      (await env.controlClient.list(env.ref, { namespace: copies })).items
        .map((o) => `${o.metadata.name}=${o.metadata.uid}`)
        .sort();
    await eventually("five provider copies", async () => assert.equal((await copyUids()).length, 5));
    const before = await copyUids();

    proxy.setMode("signin");
    await eventually("the binding says why", async () => {
      const connected = await condition("behind-proxy", "Connected");
      assert.equal(connected?.status, "False");
      // whichever noticed first: the look at /version or the lists and watches
      assert.ok(["InvalidAnswers", "ListWatchFailing"].includes(connected?.reason ?? ""), connected?.reason);
      assert.match(connected?.message ?? "", /expected JSON, the answer was text\/html/);
    });
    // several relists and resyncs with the sign-in page
    const refusedBefore = proxy.refused;
    await eventually("relisted through the sign-in page", () => assert.ok(proxy.refused >= refusedBefore + 3), 20_000);
    assert.deepEqual(await copyUids(), before, "every provider copy is still there, the same objects");

    proxy.setMode("pass");
    await env.ready("behind-proxy");
    assert.deepEqual(await copyUids(), before);
    // and a real deletion still goes through
    await env.appClient.delete(env.ref, "a", ns);
    await eventually("the deleted one's copy goes", async () => assert.equal((await copyUids()).length, 4));
  });

  it("hanging, resetting, flooding and lying servers cost their own bindings a condition, nothing else", async () => {
    const { env, condition } = await ownEnv();
    const servers = await Promise.all(
      [...hostileBehaviours, "hang", "hang", "hang", "hang", "hang"].map((b) =>
        startHostileServer(b as (typeof hostileBehaviours)[number]),
      ),
    );
    onFileDone(() => Promise.all(servers.map((s) => s.stop())));
    const rssBefore = process.memoryUsage().rss;
    const names = servers.map((_, i) => `hostile-${i}`);
    await bindToOwnApi(env, servers, names);
    // a new healthy binding while they are all misbehaving: Ready as fast as without them
    const started = Date.now();
    await env.bindWith("healthy-neighbour", env.appKubeconfig);
    await env.ready("healthy-neighbour");
    const healthyMs = Date.now() - started;
    assert.ok(healthyMs < 10_000, `the healthy binding was Ready after ${healthyMs} ms`);

    for (const [i, name] of names.entries()) {
      await eventually(
        `${name} (${servers[i] === undefined ? "" : (hostileBehaviours[i] ?? "hang")}) not connected`,
        async () => {
          const connected = await condition(name, "Connected");
          assert.equal(connected?.status, "False", JSON.stringify(connected));
          const ready = await condition(name, "Ready");
          assert.equal(ready?.status, "False");
        },
        40_000,
      );
    }
    const rssGrowth = process.memoryUsage().rss - rssBefore;
    process.stderr.write(
      `[hostile] ${servers.length} hostile bindings: the healthy neighbour Ready after ${healthyMs} ms; resident memory grew by ${Math.round(rssGrowth / 1024 / 1024)} MiB\n`,
    );
    assert.ok(rssGrowth < 400 * 1024 * 1024, `memory grew by ${Math.round(rssGrowth / 1024 / 1024)} MiB`);
    // the healthy neighbour still syncs
    const ns = `neighbour-${uniqueSuffix()}`;
    await env.appObject(ns, "still-synced");
    const neighbour = await env.controlClient.get(refs.bindings, "healthy-neighbour", env.bindingNamespace);
    await eventually("the neighbour's object reached the control plane", async () =>
      assert.ok(
        await env.controlClient.get(env.ref, "still-synced", providerNamespace(neighbour?.metadata.uid ?? "", ns)),
      ),
    );
    const health = await fetch(`http://127.0.0.1:${env.sync?.ports.health}/readyz`);
    assert.equal(health.status, 200, "the process is ready whatever its tenants' clusters do");
  });

  it("servers that would have it page, relist, retry or re-watch in a loop are asked at a bounded rate", async () => {
    const { env } = await ownEnv();
    const servers = await Promise.all(loopingBehaviours.map((b) => startLoopingServer(b)));
    onFileDone(() => Promise.all(servers.map((s) => s.stop())));
    const names = loopingBehaviours.map((b) => `looping-${b}`);
    await bindToOwnApi(env, servers, names);
    await env.bindWith("looping-neighbour", env.appKubeconfig);
    await env.ready("looping-neighbour");
    for (const [i, server] of servers.entries()) {
      await eventually(`${loopingBehaviours[i]} listed`, () => assert.ok(server.lists > 0), 20_000);
    }
    const heapBefore = process.memoryUsage().heapUsed;
    const before = servers.map((s) => s.lists + s.watches);
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    const asked = servers.map((s, i) => `${loopingBehaviours[i]}: ${s.lists + s.watches - (before[i] ?? 0)}`);
    process.stderr.write(`[hostile] lists and watches in 5 s: ${asked.join(", ")}\n`);
    // backing off (200 ms doubling to 30 s) allows a handful each; a loop, thousands
    for (const [i, server] of servers.entries()) {
      const count = server.lists + server.watches - (before[i] ?? 0);
      assert.ok(count < 60, `${loopingBehaviours[i]}: ${count} lists and watches in 5 s`);
    }
    const heapGrowth = process.memoryUsage().heapUsed - heapBefore;
    assert.ok(heapGrowth < 200 * 1024 * 1024, `the heap grew by ${Math.round(heapGrowth / 1024 / 1024)} MiB`);
    const ns = `looping-neighbour-${uniqueSuffix()}`;
    await env.appObject(ns, "still-synced");
    const neighbour = await env.controlClient.get(refs.bindings, "looping-neighbour", env.bindingNamespace);
    await eventually("the neighbour's object reached the control plane", async () =>
      assert.ok(
        await env.controlClient.get(env.ref, "still-synced", providerNamespace(neighbour?.metadata.uid ?? "", ns)),
      ),
    );
  });

  it("a Secret of credentials referenced as a kubeconfig shows none of them anywhere", async () => {
    const { env, condition } = await ownEnv();
    const { text, secrets } = credentialsFile();
    await env.bindWith("not-a-kubeconfig", text);
    await env.bindWith(
      "kubeconfig-with-bad-yaml",
      `apiVersion: v1\nclusters:\n  - name: x\n   password: ${secrets[2]}\n`,
    );
    for (const name of ["not-a-kubeconfig", "kubeconfig-with-bad-yaml"]) {
      await eventually(`${name} refused`, async () => {
        const connected = await condition(name, "Connected");
        assert.equal(connected?.reason, "InvalidKubeconfig", JSON.stringify(connected));
        assert.match(connected?.message ?? "", /key "kubeconfig"/);
      });
    }
    const everything = [
      JSON.stringify((await env.controlClient.list(refs.bindings, { namespace: env.bindingNamespace })).items),
      JSON.stringify((await env.controlClient.list(refs.events, { namespace: env.bindingNamespace })).items),
      logged.join(""),
    ].join("\n");
    for (const secret of secrets) assert.ok(!everything.includes(secret), "a credential leaked");
    assert.ok(!everything.includes("aws_access_key_id"));
  });

  it("a deleted kubeconfig Secret stops the binding: nothing written, nothing deleted, until it is back", async () => {
    const { env, condition } = await ownEnv();
    const binding = await env.bindWith("secret-goes", env.appKubeconfig);
    await env.ready("secret-goes");
    const ns = `secret-goes-${uniqueSuffix()}`;
    await env.appObject(ns, "kept");
    const copies = providerNamespace(binding.metadata.uid ?? "", ns);
    await eventually("copied", async () => assert.ok(await env.controlClient.get(env.ref, "kept", copies)));
    const secret = await env.controlClient.get(refs.secrets, "secret-goes-kubeconfig", env.bindingNamespace);
    await env.controlClient.delete(refs.secrets, "secret-goes-kubeconfig", env.bindingNamespace);
    await eventually("stopped", async () =>
      assert.equal((await condition("secret-goes", "Connected"))?.reason, "KubeconfigMissing"),
    );
    await env.appObject(ns, "not-yet");
    await env.appClient.delete(env.ref, "kept", ns);
    await new Promise((resolve) => setTimeout(resolve, 3000));
    assert.equal(await env.controlClient.get(env.ref, "not-yet", copies), undefined, "nothing written");
    assert.ok(await env.controlClient.get(env.ref, "kept", copies), "nothing deleted");
    const appKept = await env.appClient.get(env.ref, "kept", ns);
    assert.ok(appKept?.metadata.deletionTimestamp, "the consumer object waits on our finalizer");

    assert.ok(secret);
    await env.kubeconfigSecret("secret-goes", env.appKubeconfig);
    await eventually(
      "syncing again",
      async () => {
        assert.ok(await env.controlClient.get(env.ref, "not-yet", copies));
        assert.equal(await env.appClient.get(env.ref, "kept", ns), undefined);
      },
      30_000,
    );
  });
});

describe("a binding listing one export many times", () => {
  it("costs one API install per reconcile, one export sync and one status entry, and says the repeats are ignored", async () => {
    const { env } = await ownEnv();
    const proxy = await startAuthProxy(env.app);
    onFileDone(() => proxy.stop());
    // the app cluster never says the API is established: every reconcile installs it again
    const crdPath = `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${env.ref.resource}.${env.ref.group}`;
    let installs = 0; // each install reads the CRD back once
    proxy.mutate = {
      when: (url) => url.pathname === crdPath && ++installs > 0,
      change: (body) => {
        const crd = JSON.parse(body.toString("utf8")) as { status?: unknown };
        delete crd.status;
        return { body: Buffer.from(JSON.stringify(crd)), contentType: "application/json" };
      },
    };
    proxy.setMode("mutate");
    const exports = Array.from({ length: 200 }, () => ({ group: env.ref.group, resource: env.ref.resource }));
    await env.bindWith("repeats", proxy.kubeconfig, { exports });
    const status = async () =>
      (await env.controlClient.get(refs.bindings, "repeats", env.bindingNamespace))?.status as
        | { exports?: Array<{ message?: string }>; conditions?: Array<{ type: string; message: string }> }
        | undefined;
    // a status is written at the end of each reconcile
    const installing = "installing the API in the app cluster";
    await eventually("installing", async () => assert.equal((await status())?.exports?.[0]?.message, installing));
    assert.ok(installs < 20, `${installs} installs of the API by the end of the first reconcile that installs`);
    assert.equal((await status())?.exports?.length, 1);

    proxy.setMode("pass");
    await env.ready("repeats");
    const syncs = env.sync?.controller.exportSyncs.filter((s) => s.ctx.binding.name === "repeats");
    assert.equal(syncs?.length, 1);
    const ready = (await status())?.conditions?.find((c) => c.type === "Ready");
    assert.equal(
      ready?.message,
      "1 export(s) bound and in sync; spec.exports lists 199 more entries of the same group and resource, ignored",
    );
    assert.equal((await status())?.exports?.length, 1);
  });
});
