// With --shards, every write the binding controller makes for a binding passes the shard fence, not
// only its export syncs' writes: a binding handed over while its reconcile waits on the app cluster
// (here: releasing an export that left its spec, deletionPolicy Delete) makes no write afterwards,
// on either cluster, and its provider copies stay.
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { type Logger, pino } from "pino";
import { bindingKey } from "../../src/api/binding-spec.ts";
import { finalizer, labels } from "../../src/api/naming.ts";
import { refs } from "../../src/api/resources.ts";
import { KubeClient, type ResourceRef } from "../../src/kube/client.ts";
import { isEstablished } from "../../src/kube/conditions.ts";
import { parseKubeconfig } from "../../src/kube/kubeconfig.ts";
import { BindingController } from "../../src/sync/binding/controller.ts";
import { InformerRegistry } from "../../src/sync/informers.ts";
import { SyncMetrics } from "../../src/sync/metrics.ts";
import { clientConfig, onFileDone, uniqueSuffix } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";
import { startAuthProxy } from "../support/hostile-cluster.ts";
import { dropExportedApi, exportedCrd, syncEnv } from "../support/sync-env.ts";

/** A binding controller serving ns on control, as a replica that serves its bindings until it lets go of them. */
function startReplica(
  control: KubeClient,
  logger: Logger,
  ns: string,
): { controller: BindingController; letGo: () => void } {
  let served = true;
  const controlInformers = new InformerRegistry(control, logger);
  const controller = new BindingController({
    control,
    controlInformers,
    logger,
    metrics: new SyncMetrics(),
    workers: 2,
    namespace: ns,
    resyncMs: 1000,
    templateNamespaces: [ns],
    shard: { identity: "replica-test", serves: () => served, mayWrite: () => served },
  });
  controller.start();
  onFileDone(async () => {
    await controller.stop();
    await controlInformers.stopAll();
    control.close();
  });
  return {
    controller,
    letGo: () => {
      served = false;
    },
  };
}

describe("a binding's own writes on a replica of several", () => {
  it("stop the moment the binding is handed over, even in a reconcile under way, on both clusters", async () => {
    const env = await syncEnv({ inProcess: false });
    const ns = env.bindingNamespace;
    const proxy = await startAuthProxy(env.app);
    onFileDone(() => proxy.stop());

    // a second exported API: the one that leaves the binding's spec
    const group = `f${uniqueSuffix()}.klutch-bind.test`;
    const dropped: ResourceRef = { group, version: "v1", resource: "postgresqlinstances", namespaced: true };
    await env.controlClient.apply(refs.crds, exportedCrd(group, "Namespaced"), "test", true);
    onFileDone(() => dropExportedApi([env.appClient, env.controlClient], dropped));
    await env.controlClient.apply(
      refs.templates,
      {
        apiVersion: "example-backend.klutch.anynines.com/v1alpha1",
        kind: "APIServiceExportTemplate",
        metadata: { name: "dropped", namespace: ns },
        spec: { APIServiceSelector: { group, resource: "postgresqlinstances", version: "v1" }, permissionClaims: [] },
      },
      "test",
      true,
    );
    await eventually("second CRD established", async () => {
      assert.ok(isEstablished(await env.controlClient.get(refs.crds, `postgresqlinstances.${group}`)));
    });

    // the controller on its own control client (its writes counted) and a shard that serves the binding until told
    const controlWrites: Array<{ method: string; at: number }> = [];
    const control = KubeClient.fromConfig(clientConfig(env.control));
    control.observeRequests((o) => {
      if (o.method !== "GET") controlWrites.push({ method: o.method, at: Date.now() });
    });
    const logged: string[] = [];
    const logger = pino(
      { level: "info" },
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          for (const line of chunk.toString().split("\n")) {
            if (line !== "") logged.push((JSON.parse(line) as { msg: string }).msg);
          }
          done();
        },
      }),
    );
    const replica = startReplica(control, logger, ns);
    const controller = replica.controller;

    const binding = await env.bindWith("fenced", proxy.kubeconfig, {
      exports: [
        { group: env.ref.group, resource: env.ref.resource },
        { group, resource: "postgresqlinstances" },
      ],
      deletionPolicy: "Delete",
    });
    const uid = binding.metadata.uid ?? "";
    await env.ready("fenced");
    const appNs = `fence-${uniqueSuffix()}`;
    await env.appClient.create(refs.namespaces, { apiVersion: "v1", kind: "Namespace", metadata: { name: appNs } });
    await env.appClient.create(dropped, {
      apiVersion: `${group}/v1`,
      kind: "PostgresqlInstance",
      metadata: { name: "db", namespace: appNs },
      spec: { size: "s" },
    });
    const copies = async () =>
      (await env.controlClient.list(dropped, { labelSelector: `${labels.binding}=${uid}` })).items.filter(
        (c) => c.metadata.deletionTimestamp === undefined,
      );
    await eventually("the provider copy made", async () => assert.equal((await copies()).length, 1));

    // the export leaves the spec: its release lists the app objects, and that list is held at the
    // proxy while the binding is handed over
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let held = 0;
    proxy.hold = (url, method) => {
      const list =
        method === "GET" &&
        url.pathname === `/apis/${group}/v1/postgresqlinstances` &&
        url.searchParams.get("watch") !== "true";
      if (!list) return undefined;
      held++;
      return gate;
    };
    const current = await env.controlClient.get(refs.bindings, "fenced", ns);
    assert.ok(current);
    await env.controlClient.update(refs.bindings, {
      ...current,
      spec: { ...(current.spec as object), exports: [{ group: env.ref.group, resource: env.ref.resource }] },
    });
    await eventually("the release's list held", () => assert.ok(held > 0));

    replica.letGo();
    const handedOverAt = Date.now();
    const handedOver = controller.handOver([bindingKey(binding)]);
    // the held list is answered late: after the hand-over gave up waiting, or after a while
    await Promise.race([handedOver, sleep(3000)]);
    release();
    await handedOver;
    await eventually("the reconcile under way ended, and the binding stopped here", () =>
      assert.ok(logged.includes("binding not served here any more; stopped syncing it"), logged.join("\n")),
    );
    proxy.hold = undefined;

    const appWrites = proxy.writes.filter((w) => w.at >= handedOverAt);
    assert.deepEqual(appWrites, [], "no write to the app cluster after the hand-over");
    assert.deepEqual(
      controlWrites.filter((w) => w.at >= handedOverAt),
      [],
      "no write to the control plane after the hand-over",
    );
    assert.equal(
      (await copies()).length,
      1,
      "the provider copy stays: the replica that serves the binding now decides",
    );
    const appObject = await env.appClient.get(dropped, "db", appNs);
    assert.ok(appObject?.metadata.finalizers?.includes(finalizer), "the app object keeps our finalizer");
  });
});

describe("a binding's provider namespaces on a replica of several", () => {
  it("are not created once the binding is handed over, though asked for before", async () => {
    const env = await syncEnv({ inProcess: false });
    const ns = env.bindingNamespace;
    await env.template([]);
    // the controller talks to the control plane through a proxy that can hold a request
    const proxy = await startAuthProxy(env.control);
    onFileDone(() => proxy.stop());
    const control = KubeClient.fromConfig(parseKubeconfig(proxy.kubeconfig));
    const logger = pino({ level: "silent" });
    const replica = startReplica(control, logger, ns);
    const controller = replica.controller;
    const binding = await env.bindWith("namespaces", env.appKubeconfig);
    await env.ready("namespaces");

    // an object in a new app namespace: its provider namespace is looked up first, and that GET is held
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let held = 0;
    proxy.hold = (url, method) => {
      if (method !== "GET" || !/^\/api\/v1\/namespaces\/klb-[^/]+$/.test(url.pathname)) return undefined;
      held++;
      return gate;
    };
    const appNs = `fence-ns-${uniqueSuffix()}`;
    await env.appObject(appNs, "db");
    await eventually("the provider namespace's lookup held", () => assert.ok(held > 0));

    replica.letGo();
    const handedOverAt = Date.now();
    const handedOver = controller.handOver([bindingKey(binding)]);
    await Promise.race([handedOver, sleep(3000)]);
    release();
    await handedOver;
    proxy.hold = undefined;
    // the lookup's answer (404) comes after the hand-over, and a create would follow it at once
    await sleep(2000);
    const creates = proxy.writes.filter((w) => w.at >= handedOverAt && w.path.startsWith("/api/v1/namespaces"));
    assert.deepEqual(creates, [], "no provider namespace created after the hand-over");
    const providerNamespaces = await env.controlClient.list(refs.namespaces, {
      labelSelector: `${labels.binding}=${binding.metadata.uid ?? ""}`,
    });
    assert.deepEqual(
      providerNamespaces.items.map((n) => n.metadata.name),
      [],
      "the replica that serves the binding now makes its provider namespaces",
    );
  });
});
