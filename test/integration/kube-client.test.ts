// The REST client against a real API server: CRUD, apply, status, preconditions, pages, errors,
// watches and byte-exact secrets.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { KubeApiError, KubeClient, type KubeObject, type ResourceRef, type WatchEvent } from "../../src/kube/client.ts";
import { isEstablished } from "../../src/kube/conditions.ts";
import { Informer, type InformerHandlers } from "../../src/kube/informer.ts";
import { widgetCrd } from "../fixtures/crds.ts";
import { accountKubeconfig, serviceAccount } from "../support/accounts.ts";
import type { Cluster } from "../support/cluster.ts";
import { kubeConfig, onFileDone, testClusters, testNamespace, uniqueSuffix } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";

const configMaps: ResourceRef = { group: "", version: "v1", resource: "configmaps", namespaced: true };
const secrets: ResourceRef = { group: "", version: "v1", resource: "secrets", namespaced: true };
const crds: ResourceRef = {
  group: "apiextensions.k8s.io",
  version: "v1",
  resource: "customresourcedefinitions",
  namespaced: false,
};

function configMap(name: string, namespace: string, data: Record<string, string>, labels?: Record<string, string>) {
  return { apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace, labels }, data };
}

/** Creates a namespaced CRD with a status subresource, deleted when the file is done. */
export async function createWidgetCrd(client: KubeClient): Promise<ResourceRef> {
  const group = `t${uniqueSuffix()}.klutch-bind.test`;
  const name = `widgets.${group}`;
  await client.create(crds, widgetCrd(group));
  onFileDone(() => client.delete(crds, name));
  await eventually("CRD established", async () => {
    assert.ok(isEstablished(await client.get(crds, name)));
  });
  return { group, version: "v1", resource: "widgets", namespaced: true };
}

describe("KubeClient", () => {
  let cluster: Cluster;
  let client: KubeClient;
  let namespace: string;
  let widgets: ResourceRef;

  before(async () => {
    cluster = (await testClusters()).control;
    client = KubeClient.fromKubeconfigText(readFileSync(cluster.kubeconfigPath, "utf8"), { userAgent: "kube-test" });
    onFileDone(async () => client.close());
    namespace = await testNamespace(cluster);
    widgets = await createWidgetCrd(client);
  });

  it("reports the server version", async () => {
    assert.match((await client.serverVersion()).gitVersion, /^v1\.\d+/);
  });

  it("creates, gets, updates and deletes a ConfigMap", async () => {
    const created = await client.create(configMaps, configMap("crud", namespace, { a: "1" }));
    assert.equal(created.metadata.namespace, namespace);
    assert.ok(created.metadata.uid);
    const got = await client.get(configMaps, "crud", namespace);
    assert.deepEqual(got?.data, { a: "1" });
    assert.equal(got?.kind, "ConfigMap");

    const updated = await client.update(configMaps, { ...created, data: { a: "2" } });
    assert.deepEqual(updated.data, { a: "2" });
    assert.notEqual(updated.metadata.resourceVersion, created.metadata.resourceVersion);

    const patched = await client.mergePatch(configMaps, "crud", namespace, { data: { b: "3" } });
    assert.deepEqual(patched.data, { a: "2", b: "3" });

    assert.equal(await client.delete(configMaps, "crud", namespace), true);
    assert.equal(await client.get(configMaps, "crud", namespace), undefined);
    assert.equal(await client.delete(configMaps, "crud", namespace), false);
  });

  it("reports each request's method, status and times to its observer, watches excluded", async () => {
    const observed = KubeClient.fromKubeconfigText(readFileSync(cluster.kubeconfigPath, "utf8"));
    onFileDone(async () => observed.close());
    const seen: Array<{ method: string; status: number; waitedSeconds: number; seconds: number }> = [];
    observed.observeRequests((o) => seen.push(o));
    await observed.create(configMaps, configMap("observed", namespace, {}));
    assert.equal(await observed.get(configMaps, "nope", namespace), undefined);
    const watching = new AbortController();
    const watch = observed.watch(
      configMaps,
      { namespace, resourceVersion: "0" },
      () => watching.abort(),
      watching.signal,
    );
    await watch;
    const reader = observed.impersonating({ username: "someone" });
    await assert.rejects(reader.get(configMaps, "observed", namespace), (err: unknown) => err instanceof KubeApiError);
    assert.deepEqual(
      seen.map((o) => `${o.method} ${o.status}`),
      ["POST 201", "GET 404", "GET 403"],
    );
    for (const o of seen) {
      assert.ok(o.seconds > 0 && o.seconds < 30, `seconds ${o.seconds}`);
      assert.ok(o.waitedSeconds >= 0 && o.waitedSeconds < 30, `waited ${o.waitedSeconds}`);
    }
  });

  it("impersonates a user with several groups, each a group of its own, over HTTP/2 and HTTP/1.1", async () => {
    // Kubernetes reads one group per Impersonate-Group field and never splits one at commas: a
    // transport that folds repeated fields into "a, b" (undici does, on both protocols) makes that
    // a single group no RBAC binding names
    const text = readFileSync(cluster.kubeconfigPath, "utf8");
    for (const http2 of [true, false]) {
      const parent = KubeClient.fromKubeconfigText(text, { http2 });
      onFileDone(async () => parent.close());
      const dave = parent.impersonating({ username: "dave", groups: ["team-a", "team-b"] });
      const review = await dave.request<{ status: { userInfo: { username: string; groups?: string[] } } }>(
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        { body: { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" } },
      );
      assert.equal((await parent.connections())?.protocol, http2 ? "h2" : "http/1.1");
      assert.equal(review.status.userInfo.username, "dave");
      assert.deepEqual(
        [...(review.status.userInfo.groups ?? [])].sort(),
        ["system:authenticated", "team-a", "team-b"],
        `over ${http2 ? "HTTP/2" : "HTTP/1.1"}`,
      );
    }
  });

  it("answers 409 to an update with a stale resourceVersion", async () => {
    const created = await client.create(configMaps, configMap("stale", namespace, { a: "1" }));
    await client.update(configMaps, { ...created, data: { a: "2" } });
    await assert.rejects(client.update(configMaps, { ...created, data: { a: "3" } }), (err: unknown) => {
      assert.ok(err instanceof KubeApiError);
      assert.equal(err.code, 409);
      assert.equal(err.reason, "Conflict");
      assert.match(err.message, new RegExp(`^PUT /api/v1/namespaces/${namespace}/configmaps/stale: 409 Conflict: `));
      return true;
    });
  });

  it("deletes only the object with the given uid", async () => {
    const first = await client.create(configMaps, configMap("precondition", namespace, {}));
    await assert.rejects(
      client.delete(configMaps, "precondition", namespace, { uid: "00000000-0000-0000-0000-000000000000" }),
      (err: unknown) => err instanceof KubeApiError && err.code === 409,
    );
    assert.ok(await client.get(configMaps, "precondition", namespace));
    assert.equal(
      await client.delete(configMaps, "precondition", namespace, {
        uid: first.metadata.uid,
        propagationPolicy: "Background",
      }),
      true,
    );
  });

  it("applies server-side, idempotently", async () => {
    const desired = configMap("applied", namespace, { a: "1" });
    const first = await client.apply(configMaps, desired, "kube-test");
    assert.deepEqual(first.data, { a: "1" });
    const second = await client.apply(configMaps, desired, "kube-test");
    assert.equal(second.metadata.resourceVersion, first.metadata.resourceVersion);
    const managers = second.metadata.managedFields?.map((f) => (f as { manager?: string }).manager);
    assert.deepEqual(managers, ["kube-test"]);

    // a field owned by another manager conflicts without force and is taken over with it
    await client.apply(configMaps, configMap("applied", namespace, { a: "other" }), "other-manager");
    await assert.rejects(client.apply(configMaps, desired, "kube-test", false), (err: unknown) => {
      assert.ok(err instanceof KubeApiError);
      assert.equal(err.code, 409);
      return true;
    });
    const forced = await client.apply(configMaps, desired, "kube-test");
    assert.deepEqual(forced.data, { a: "1" });
  });

  it("creates, updates and applies a custom resource and its status", async () => {
    const apiVersion = `${widgets.group}/v1`;
    const created = await client.create(widgets, {
      apiVersion,
      kind: "Widget",
      metadata: { name: "w1", namespace },
      spec: { size: 1 },
    });
    // the main resource ignores status
    const replaced = await client.update(widgets, { ...created, spec: { size: 2 }, status: { phase: "Ignored" } });
    assert.deepEqual(replaced.spec, { size: 2 });
    assert.equal(replaced.status, undefined);

    const withStatus = await client.updateStatus(widgets, { ...replaced, status: { phase: "Ready" } });
    assert.deepEqual(withStatus.status, { phase: "Ready" });
    assert.equal(withStatus.metadata.generation, replaced.metadata.generation);

    const applied = await client.applyStatus(
      widgets,
      { apiVersion, kind: "Widget", metadata: { name: "w1", namespace }, status: { phase: "Applied" } },
      "kube-test",
    );
    assert.deepEqual(applied.status, { phase: "Applied" });
    assert.deepEqual(applied.spec, { size: 2 });

    const spec = await client.apply(
      widgets,
      { apiVersion, kind: "Widget", metadata: { name: "w1", namespace }, spec: { size: 2, color: "red" } },
      "kube-test",
    );
    assert.deepEqual(spec.spec, { size: 2, color: "red" });
    assert.deepEqual(spec.status, { phase: "Applied" });

    const patched = await client.mergePatch(widgets, "w1", namespace, { status: { phase: "Patched" } }, "status");
    assert.deepEqual(patched.status, { phase: "Patched" });

    const { items } = await client.list(widgets, { namespace });
    assert.deepEqual(
      items.map((i) => [i.apiVersion, i.kind, i.metadata.name]),
      [[apiVersion, "Widget", "w1"]],
    );
    assert.equal(await client.delete(widgets, "w1", namespace), true);
  });

  it("lists in pages, with selectors", async () => {
    const ns = await testNamespace(cluster, "page");
    for (let i = 0; i < 7; i++) {
      await client.create(
        configMaps,
        configMap(`cm-${i}`, ns, { i: String(i) }, { paged: "yes", parity: i % 2 === 0 ? "even" : "odd" }),
      );
    }
    const before = client.requests;
    // The selector keeps out kube-root-ca.crt, which a controller adds to the namespace whenever it gets to it.
    const paged = await client.list(configMaps, { namespace: ns, limit: 2, labelSelector: "paged=yes" });
    assert.equal(paged.items.length, 7);
    assert.equal(client.requests - before, 4);
    assert.match(paged.resourceVersion, /^\d+$/);
    assert.ok(paged.items.every((i) => i.apiVersion === "v1" && i.kind === "ConfigMap"));
    assert.equal(new Set(paged.items.map((i) => i.metadata.name)).size, 7);

    const even = await client.list(configMaps, { namespace: ns, labelSelector: "parity=even" });
    assert.deepEqual(even.items.map((i) => i.metadata.name).sort(), ["cm-0", "cm-2", "cm-4", "cm-6"]);
    const one = await client.list(configMaps, { namespace: ns, fieldSelector: "metadata.name=cm-3" });
    assert.deepEqual(
      one.items.map((i) => i.metadata.name),
      ["cm-3"],
    );
  });

  it("pages a real list up to its bounds, and refuses one past them", async () => {
    const ns = await testNamespace(cluster, "bounded");
    for (let i = 0; i < 5; i++) await client.create(configMaps, configMap(`cm-${i}`, ns, {}, { bounded: "yes" }));
    const kubeconfig = readFileSync(cluster.kubeconfigPath, "utf8");
    const bounded = (options: { maxListItems?: number; maxListBytes?: number }) => {
      const c = KubeClient.fromKubeconfigText(kubeconfig, options);
      onFileDone(async () => c.close());
      return c;
    };
    const options = { namespace: ns, limit: 2, labelSelector: "bounded=yes" };
    // real continue tokens: every page's is new
    assert.equal((await bounded({ maxListItems: 5 }).list(configMaps, options)).items.length, 5);
    await assert.rejects(bounded({ maxListItems: 4 }).list(configMaps, options), /more than 4 objects/);
    await assert.rejects(bounded({ maxListBytes: 1000 }).list(configMaps, options), /larger than 1000 bytes together/);
  });

  it("throws KubeApiError with the server's reason and message", async () => {
    await assert.rejects(client.create(configMaps, configMap("Not_A_Valid_Name", namespace, {})), (err: unknown) => {
      assert.ok(err instanceof KubeApiError);
      assert.equal(err.code, 422);
      assert.equal(err.reason, "Invalid");
      assert.match(err.message, new RegExp(`^POST /api/v1/namespaces/${namespace}/configmaps: 422 Invalid: `));
      assert.match(err.message, /Not_A_Valid_Name/);
      assert.equal(err.status?.kind, "Status");
      return true;
    });
    await assert.rejects(client.request("GET", "/apis/no.such.group/v1/things"), (err: unknown) => {
      assert.ok(err instanceof KubeApiError);
      assert.equal(err.code, 404);
      assert.match(err.message, /^GET \/apis\/no\.such\.group\/v1\/things: 404 NotFound: /);
      return true;
    });
  });

  it("round-trips a secret with binary data byte-exact", async () => {
    const bytes = Buffer.concat([randomBytes(4096), Buffer.from([0, 0xff, 0xfe, 0x80, 0x0a, 0x0d])]);
    await client.create(secrets, {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "binary", namespace },
      type: "Opaque",
      data: { blob: bytes.toString("base64") },
    });
    const read = await client.get(secrets, "binary", namespace);
    const data = read?.data as Record<string, string> | undefined;
    assert.ok(data?.blob !== undefined);
    assert.ok(Buffer.from(data.blob, "base64").equals(bytes));
  });

  it("watches ADDED, MODIFIED and DELETED", async () => {
    const ns = await testNamespace(cluster, "watch");
    const { resourceVersion } = await client.list(configMaps, { namespace: ns });
    const events: WatchEvent[] = [];
    const abort = new AbortController();
    const watching = client.watch(
      configMaps,
      { namespace: ns, resourceVersion, allowBookmarks: true, timeoutSeconds: 60 },
      (event) => events.push(event),
      abort.signal,
    );
    try {
      const created = await client.create(configMaps, configMap("watched", ns, { a: "1" }));
      await client.update(configMaps, { ...created, data: { a: "2" } });
      await client.delete(configMaps, "watched", ns);
      const seen = () =>
        events
          .filter((e) => e.type !== "BOOKMARK" && e.object.metadata.name === "watched")
          .map((e) => `${e.type}:${(e.object.data as { a?: string })?.a}`);
      await eventually("watch saw the changes", () => assert.deepEqual(seen(), ["ADDED:1", "MODIFIED:2", "DELETED:2"]));
      assert.ok(events.every((e) => e.object.kind === "ConfigMap" || e.type === "BOOKMARK"));
    } finally {
      abort.abort();
    }
    await watching;
  });

  it("ends a watch when the server's timeout is over", async () => {
    const { resourceVersion } = await client.list(configMaps, { namespace });
    const started = Date.now();
    await client.watch(
      configMaps,
      { namespace, resourceVersion, timeoutSeconds: 1 },
      () => {},
      new AbortController().signal,
    );
    assert.ok(Date.now() - started < 10_000);
  });

  it("rejects a watch from a resourceVersion older than the watch cache with 410", async () => {
    // a CRD's watch cache starts when the CRD is created: anything older is too old
    await assert.rejects(
      client.watch(
        widgets,
        { namespace, resourceVersion: "1", timeoutSeconds: 5 },
        () => {},
        new AbortController().signal,
      ),
      (err: unknown) => {
        assert.ok(err instanceof KubeApiError);
        assert.equal(err.code, 410);
        assert.equal(err.reason, "Expired");
        assert.match(err.message, /too old resource version/);
        return true;
      },
    );
  });
});

/** Records what an informer emits as "add:ns/name", "update:ns/name", "delete:ns/name". */
function recorder(): { events: string[]; handlers: InformerHandlers } {
  const events: string[] = [];
  const key = (o: KubeObject) =>
    o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name;
  return {
    events,
    handlers: {
      add: (o) => events.push(`add:${key(o)}`),
      update: (prev, o) => {
        assert.equal(key(prev), key(o));
        events.push(`update:${key(o)}`);
      },
      delete: (o) => events.push(`delete:${key(o)}`),
    },
  };
}

/**
 * Wraps a client so a test can cut the informer's watch, hold it down while it changes things, and
 * let it resume from a resourceVersion the server no longer has (a real 410).
 */
function interruptibleClient(client: KubeClient) {
  let current: AbortController | undefined;
  let gate: PromiseWithResolvers<void> | undefined;
  let waiting = false;
  let staleNext = false;
  const errors: unknown[] = [];
  const watch: KubeClient["watch"] = async (ref, options, onEvent, signal) => {
    if (gate !== undefined) {
      waiting = true;
      const stopped = new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
      await Promise.race([gate.promise, stopped]);
      waiting = false;
    }
    const controller = new AbortController();
    current = controller;
    const onAbort = () => controller.abort();
    signal.addEventListener("abort", onAbort, { once: true });
    const resourceVersion = staleNext ? "1" : options.resourceVersion;
    staleNext = false;
    try {
      await client.watch(ref, { ...options, resourceVersion }, onEvent, controller.signal);
    } catch (err) {
      errors.push(err);
      throw err;
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  };
  const wrapped = new Proxy(client, {
    get(target, prop) {
      if (prop === "watch") return watch;
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return {
    client: wrapped,
    errors,
    /** ends the running watch; the next one waits until resumeStale */
    cut(): void {
      gate = Promise.withResolvers<void>();
      current?.abort();
    },
    isHeld: () => waiting,
    resumeStale(): void {
      staleNext = true;
      gate?.resolve();
      gate = undefined;
    },
  };
}

describe("KubeClient.gated", () => {
  let cluster: Cluster;
  let admin: KubeClient;
  let namespace: string;
  const kubeconfigText = () => readFileSync(cluster.kubeconfigPath, "utf8");

  before(async () => {
    cluster = (await testClusters()).control;
    admin = KubeClient.fromKubeconfigText(kubeconfigText(), { userAgent: "kube-test" });
    onFileDone(async () => admin.close());
    namespace = await testNamespace(cluster, "gated");
  });

  it("refuses a write whose gate closed while it waited in the rate limiter: nothing sent, nothing counted", async () => {
    const parent = KubeClient.fromKubeconfigText(kubeconfigText(), { qps: 1, burst: 1 });
    onFileDone(async () => parent.close());
    const observed: string[] = [];
    parent.observeRequests((o) => observed.push(`${o.method} ${o.status}`));
    let holds = true;
    const gated = parent.gated(() => (holds ? undefined : new Error("lost the lease")));
    assert.equal(await gated.get(configMaps, "absent", namespace), undefined); // takes the only token
    const before = parent.requests;
    const called = Date.now();
    const write = gated.create(configMaps, configMap("written-late", namespace, {}));
    await sleep(300); // the write waits about a second for its token, the gate allowing it when called
    holds = false;
    await assert.rejects(write, /^Error: lost the lease$/);
    assert.ok(Date.now() - called >= 500, `refused after ${Date.now() - called} ms, when its token came`);
    assert.equal(parent.requests, before, "the refused write is not counted");
    assert.deepEqual(observed, ["GET 404"]);
    assert.equal(await admin.get(configMaps, "written-late", namespace), undefined);

    holds = true;
    await gated.create(configMaps, configMap("written", namespace, {}));
    assert.ok(await admin.get(configMaps, "written", namespace));
    assert.equal(parent.requests, before + 1);
  });

  it("lets GETs and watches through a refusing gate, and counts them as its parent's", async () => {
    await admin.create(configMaps, configMap("read-through", namespace, { a: "1" }));
    const parent = KubeClient.fromKubeconfigText(kubeconfigText());
    onFileDone(async () => parent.close());
    const refusing = parent.gated(() => new Error("refused")).gated(() => undefined);
    assert.deepEqual((await refusing.get(configMaps, "read-through", namespace))?.data, { a: "1" });
    const listed = await refusing.list(configMaps, { namespace, fieldSelector: "metadata.name=read-through" });
    assert.equal(listed.items.length, 1);
    const events: WatchEvent[] = [];
    const watching = new AbortController();
    await refusing.watch(
      configMaps,
      { namespace, resourceVersion: "0", fieldSelector: "metadata.name=read-through" },
      (event) => {
        events.push(event);
        watching.abort();
      },
      watching.signal,
    );
    assert.equal(events[0]?.object.metadata.name, "read-through");
    await assert.rejects(refusing.delete(configMaps, "read-through", namespace), /^Error: refused$/);
    await assert.rejects(refusing.request("POST", `/api/v1/namespaces/${namespace}/configmaps`), /refused/);
    await assert.rejects(
      refusing.impersonating({ username: "someone" }).mergePatch(configMaps, "read-through", namespace, {}),
      /refused/,
      "an impersonating child of a gated view is gated too",
    );
    assert.ok(await admin.get(configMaps, "read-through", namespace), "nothing deleted");
    assert.equal(parent.requests, 3, "the GET, the list and the watch");
    assert.equal(refusing.requests, parent.requests);
  });

  it("shares setBearerToken with its parent both ways, and closing it leaves the parent open", async () => {
    const [a, b] = await Promise.all([
      serviceAccount(admin, namespace, "token-a"),
      serviceAccount(admin, namespace, "token-b"),
    ]);
    const parent = KubeClient.fromKubeconfigText(accountKubeconfig(kubeConfig(cluster), a).exportConfig());
    onFileDone(async () => parent.close());
    const gated = parent.gated(() => undefined);
    // neither account may read ConfigMaps: the API server's refusal names who asked
    const who = async (client: KubeClient) => {
      const err = await client.get(configMaps, "anything", namespace).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(err instanceof KubeApiError && err.code === 403, String(err));
      return /system:serviceaccount:[^"]+/.exec(err.message)?.[0];
    };
    assert.equal(await who(gated), a.username);
    parent.setBearerToken(b.token);
    assert.equal(await who(gated), b.username);
    gated.setBearerToken(a.token);
    assert.equal(await who(parent), a.username);

    gated.close();
    await assert.rejects(gated.get(configMaps, "anything", namespace), /is closed/);
    assert.equal(await who(parent), a.username);
    assert.equal(await who(parent.gated(() => undefined)), a.username);
  });
});

describe("Informer", () => {
  let cluster: Cluster;
  let client: KubeClient;
  let namespace: string;

  before(async () => {
    cluster = (await testClusters()).control;
    client = KubeClient.fromKubeconfigText(readFileSync(cluster.kubeconfigPath, "utf8"));
    onFileDone(async () => client.close());
    namespace = await testNamespace(cluster, "inf");
  });

  function started(informer: Informer): Informer {
    informer.start();
    onFileDone(() => informer.stop());
    return informer;
  }

  it("syncs, then emits add, update and delete, and replays the cache to late handlers", async () => {
    await client.create(configMaps, configMap("before", namespace, { a: "1" }));
    const informer = started(new Informer(client, configMaps, { namespace }));
    const { events, handlers } = recorder();
    informer.addHandlers(handlers);
    await informer.waitForSync(10_000);
    assert.equal(informer.hasSynced(), true);
    assert.equal(informer.failing, false);
    assert.deepEqual(informer.get("before", namespace)?.data, { a: "1" });
    assert.equal(informer.get("before", namespace)?.kind, "ConfigMap");
    assert.ok(events.includes(`add:${namespace}/before`));

    const created = await client.create(configMaps, configMap("live", namespace, { a: "1" }));
    await client.update(configMaps, { ...created, data: { a: "2" } });
    // an apply that changes nothing keeps the resourceVersion: no update
    await client.apply(configMaps, configMap("before", namespace, { a: "1" }), "kube-test");
    await client.apply(configMaps, configMap("before", namespace, { a: "1" }), "kube-test");
    await client.delete(configMaps, "before", namespace);
    await eventually("informer saw the changes", () =>
      assert.deepEqual(
        events.filter((e) => !e.includes("kube-root-ca.crt")),
        [
          `add:${namespace}/before`,
          `add:${namespace}/live`,
          `update:${namespace}/live`,
          `update:${namespace}/before`,
          `delete:${namespace}/before`,
        ],
      ),
    );
    assert.deepEqual(informer.get("live", namespace)?.data, { a: "2" });
    assert.equal(informer.get("before", namespace), undefined);
    assert.deepEqual(
      informer
        .list(namespace)
        .map((o) => o.metadata.name)
        .filter((n) => n !== "kube-root-ca.crt"),
      ["live"],
    );

    const late = recorder();
    const remove = informer.addHandlers(late.handlers);
    assert.deepEqual(
      late.events.filter((e) => !e.includes("kube-root-ca.crt")),
      [`add:${namespace}/live`],
    );
    remove();
    await client.delete(configMaps, "live", namespace);
    await eventually("first handlers saw the delete", () => assert.ok(events.includes(`delete:${namespace}/live`)));
    assert.ok(!late.events.includes(`delete:${namespace}/live`));

    const stopping = Date.now();
    await informer.stop();
    assert.ok(Date.now() - stopping < 2000, "stop() ends the watch at once");
  });

  it("watches only what its namespace and label selector select", async () => {
    const other = await testNamespace(cluster, "inf-other");
    const selector = `klutch-bind.test/pick=${uniqueSuffix()}`;
    const [labelKey = "", labelValue = ""] = selector.split("=");
    const informer = started(new Informer(client, configMaps, { namespace, labelSelector: selector }));
    const { events, handlers } = recorder();
    informer.addHandlers(handlers);
    await informer.waitForSync(10_000);
    assert.deepEqual(informer.list(), []);

    const picked = await client.create(configMaps, configMap("picked", namespace, {}, { [labelKey]: labelValue }));
    await client.create(configMaps, configMap("unlabelled", namespace, {}));
    await client.create(configMaps, configMap("elsewhere", other, {}, { [labelKey]: labelValue }));
    await eventually("picked seen", () => assert.deepEqual(events, [`add:${namespace}/picked`]));

    // dropping the label takes the object out of the selection: the server sends a delete
    await client.update(configMaps, { ...picked, metadata: { ...picked.metadata, labels: {} } });
    await eventually("unlabelled seen as deleted", () =>
      assert.deepEqual(events, [`add:${namespace}/picked`, `delete:${namespace}/picked`]),
    );
    assert.deepEqual(informer.list(), []);
  });

  it("caches a cluster-scoped resource by name", async () => {
    const namespaces: ResourceRef = { group: "", version: "v1", resource: "namespaces", namespaced: false };
    const informer = started(new Informer(client, namespaces, { fieldSelector: `metadata.name=${namespace}` }));
    await informer.waitForSync(10_000);
    assert.equal(informer.get(namespace)?.kind, "Namespace");
    assert.deepEqual(
      informer.list().map((o) => o.metadata.name),
      [namespace],
    );
  });

  it("keeps going when a handler throws", async () => {
    const errors: unknown[] = [];
    const informer = started(
      new Informer(client, configMaps, {
        namespace,
        labelSelector: "klutch-bind.test/throw",
        onError: (e) => errors.push(e),
      }),
    );
    const { events, handlers } = recorder();
    informer.addHandlers({
      add: () => {
        throw new Error("handler bug");
      },
    });
    informer.addHandlers(handlers);
    await informer.waitForSync(10_000);
    await client.create(configMaps, configMap("throw-1", namespace, {}, { "klutch-bind.test/throw": "yes" }));
    await client.create(configMaps, configMap("throw-2", namespace, {}, { "klutch-bind.test/throw": "yes" }));
    await eventually("both adds delivered to the other handler", () =>
      assert.deepEqual(events, [`add:${namespace}/throw-1`, `add:${namespace}/throw-2`]),
    );
    assert.equal(errors.length, 2);
    assert.match(String(errors[0]), /handler bug/);
    assert.equal(informer.failing, false);
  });

  it("relists after 410 and delivers what happened while it was not watching", async () => {
    // a brand-new CRD: the informer also has to get through the 429s of its cold watch cache
    const widgets = await createWidgetCrd(client);
    const apiVersion = `${widgets.group}/v1`;
    const widget = (name: string, size: number): KubeObject => ({
      apiVersion,
      kind: "Widget",
      metadata: { name, namespace },
      spec: { size },
    });
    const interruptible = interruptibleClient(client);
    const informer = started(new Informer(interruptible.client, widgets, { namespace }));
    const { events, handlers } = recorder();
    informer.addHandlers(handlers);
    await informer.waitForSync(30_000);
    for (const name of ["keep", "change", "remove", "recreate"]) await client.create(widgets, widget(name, 1));
    await eventually("four adds", () => assert.equal(events.length, 4));
    const oldUid = informer.get("recreate", namespace)?.metadata.uid;
    assert.ok(oldUid);

    interruptible.cut();
    await eventually("informer waiting to watch again", () => assert.ok(interruptible.isHeld()));
    const before = events.length;
    const change = await client.get(widgets, "change", namespace);
    assert.ok(change);
    await client.update(widgets, { ...change, spec: { size: 2 } });
    await client.delete(widgets, "remove", namespace);
    await client.delete(widgets, "recreate", namespace);
    await client.create(widgets, widget("recreate", 1));
    await client.create(widgets, widget("new", 1));
    assert.equal(events.length, before, "nothing seen while not watching");

    interruptible.resumeStale();
    await eventually("gap delivered after the relist", () =>
      assert.deepEqual(events.slice(before).sort(), [
        `add:${namespace}/new`,
        `add:${namespace}/recreate`,
        `delete:${namespace}/recreate`,
        `delete:${namespace}/remove`,
        `update:${namespace}/change`,
      ]),
    );
    assert.ok(interruptible.errors.some((e) => e instanceof KubeApiError && e.code === 410));
    assert.notEqual(informer.get("recreate", namespace)?.metadata.uid, oldUid);
    assert.deepEqual(informer.get("change", namespace)?.spec, { size: 2 });
    assert.deepEqual(
      informer
        .list(namespace)
        .map((o) => o.metadata.name)
        .sort(),
      ["change", "keep", "new", "recreate"],
    );

    // and it watches again
    await client.create(widgets, widget("after", 1));
    await eventually("watching again", () => assert.equal(events.at(-1), `add:${namespace}/after`));
    assert.equal(informer.failing, false);
  });

  it("reports a failing list and names the resource when it cannot sync", async () => {
    const errors: unknown[] = [];
    const missing: ResourceRef = {
      group: "no-such.klutch-bind.test",
      version: "v1",
      resource: "things",
      namespaced: true,
    };
    const informer = started(new Informer(client, missing, { namespace, onError: (e) => errors.push(e) }));
    await assert.rejects(
      informer.waitForSync(500),
      /informer for things\.no-such\.klutch-bind\.test\/v1, namespace .* not synced within 500 ms; last error: GET .*: 404 NotFound/,
    );
    assert.equal(informer.failing, true);
    assert.ok(informer.lastError instanceof KubeApiError);
    assert.ok(errors.length >= 1);
    assert.equal(informer.hasSynced(), false);
  });
});
