// One tenant binds 120 app namespaces at once: what the sync makes for it on the shared control
// plane stays within its limits (provider namespaces, their RoleBindings, watches), its binding
// says which limit and flag hold the rest, another tenant's object syncs meanwhile, nothing is
// deleted, and the rest syncs once the limit is raised.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { pino } from "pino";
import { kubeconfigSecretMarks } from "../../src/api/kubeconfig-secret.ts";
import { labels, providerNamespace } from "../../src/api/naming.ts";
import { refs } from "../../src/api/resources.ts";
import { claimsRoleAnnotation } from "../../src/export/plan.ts";
import { type ClientOptions, KubeClient, type KubeObject, type ResourceRef } from "../../src/kube/client.ts";
import { conditionOf, isEstablished } from "../../src/kube/conditions.ts";
import { type RunningSync, startSync } from "../../src/sync/manager.ts";
import type { Cluster } from "../support/cluster.ts";
import {
  clientConfig,
  freshCluster,
  ignoreNotFound,
  onFileDone,
  testNamespace,
  uniqueSuffix,
} from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";
import { exportedCrd, syncEnv } from "../support/sync-env.ts";
import { tool } from "../support/tools.ts";

const run = promisify(execFile);
const fanOut = 120;
const limits = { providerNamespaces: 20, controlWatches: 12 };

/** Watches the control plane serves now (its apiserver_longrunning_requests gauge). */
async function serverWatches(cluster: Cluster): Promise<number> {
  const { stdout } = await run(tool("kubectl"), ["--kubeconfig", cluster.kubeconfigPath, "get", "--raw", "/metrics"], {
    maxBuffer: 256 * 1024 * 1024,
  });
  return [...stdout.matchAll(/^apiserver_longrunning_requests\{[^}]*verb="WATCH"[^}]*\} (\d+)/gm)].reduce(
    (sum, m) => sum + Number(m[1]),
    0,
  );
}

/** Control-plane requests the sync sent so far (its own metric). */
async function controlRequests(sync: RunningSync): Promise<number> {
  const text = await sync.metrics.registry.metrics();
  return [...text.matchAll(/^klutch_bind_api_requests_total\{[^}]*cluster="control"[^}]*\} (\d+)/gm)].reduce(
    (sum, m) => sum + Number(m[1]),
    0,
  );
}

/**
 * A control plane of its own (the sync serves every namespace there, and its watches are counted
 * there) with two tenants binding the shared app cluster: A the test API (with a claim when
 * claims), B an API of its own from another namespace.
 */
async function twoTenants(name: string, claims: boolean) {
  const control = await freshCluster(name);
  const env = await syncEnv({ control, inProcess: false });
  const tenantA = env.bindingNamespace;
  const logger = pino({ level: process.env.KLB_TEST_LOG ?? "silent" });

  // tenant A: with claims, a template whose claim (provider-owned secrets) needs a watch and a
  // RoleBinding per provider namespace
  await env.controlClient.apply(
    refs.templates,
    {
      apiVersion: "example-backend.klutch.anynines.com/v1alpha1",
      kind: "APIServiceExportTemplate",
      metadata: { name: "postgresqlinstances", namespace: tenantA, annotations: { [claimsRoleAnnotation]: "edit" } },
      spec: {
        APIServiceSelector: { group: env.ref.group, resource: env.ref.resource, version: "v1" },
        permissionClaims: claims
          ? [
              {
                group: "",
                resource: "secrets",
                version: "v1",
                selector: {
                  owner: "Provider",
                  labelSelector: { matchLabels: { "klutch.test/credentials": "true" } },
                },
              },
            ]
          : [],
      },
    },
    "test",
    true,
  );
  await env.kubeconfigSecret("flood", env.appKubeconfig);
  const bindingA = await env.controlClient.create(refs.bindings, binding("flood", tenantA, env.ref.group));
  const uidA = bindingA.metadata.uid ?? "";

  // tenant B: an API of its own, bound from another namespace to the same app cluster
  const tenantB = await testNamespace(control, "tenant-b");
  const groupB = `t${uniqueSuffix()}.klutch-bind.test`;
  const crdB = exportedCrd(groupB, "Namespaced");
  const refB: ResourceRef = { ...env.ref, group: groupB };
  await env.controlClient.apply(refs.crds, crdB, "test", true);
  onFileDone(async () => {
    const objects = await env.appClient.list(refB).catch(() => ({ items: [] as KubeObject[] }));
    for (const obj of objects.items) {
      await env.appClient.update(refB, { ...obj, metadata: { ...obj.metadata, finalizers: [] } });
    }
    await env.appClient.delete(refs.crds, crdB.metadata.name);
  });
  await eventually("tenant B's CRD established", async () =>
    assert.ok(isEstablished(await env.controlClient.get(refs.crds, crdB.metadata.name))),
  );
  await env.controlClient.apply(
    refs.templates,
    {
      apiVersion: "example-backend.klutch.anynines.com/v1alpha1",
      kind: "APIServiceExportTemplate",
      metadata: { name: "postgresqlinstances", namespace: tenantB },
      spec: { APIServiceSelector: { group: groupB, resource: env.ref.resource, version: "v1" } },
    },
    "test",
    true,
  );
  await env.controlClient.create(refs.secrets, {
    apiVersion: "v1",
    kind: "Secret",
    metadata: {
      name: "other-kubeconfig",
      namespace: tenantB,
      ...kubeconfigSecretMarks({ group: refs.bindings.group, namespace: tenantB, name: "other" }),
    },
    data: { kubeconfig: Buffer.from(env.appKubeconfig).toString("base64") },
  });
  const bindingB = await env.controlClient.create(refs.bindings, binding("other", tenantB, groupB));
  const uidB = bindingB.metadata.uid ?? "";

  // the sync's own client, so that its request count is its own
  const running: RunningSync[] = [];
  const stopAll = async () => {
    for (const sync of running.splice(0)) await sync.stop();
  };
  onFileDone(stopAll);
  const start = async (tenantLimits: typeof limits, clientOptions: ClientOptions = {}, workers = 4) => {
    const client = KubeClient.fromConfig(clientConfig(control), { ...clientOptions, userAgent: "limits-sync" });
    onFileDone(async () => client.close());
    const sync = await startSync({
      control: client,
      logger,
      workers,
      resyncMs: 1000,
      templateNamespaces: [tenantA, tenantB],
      tenantLimits,
      allowLoopbackAppServers: true,
    });
    running.push(sync);
    return sync;
  };
  const ready = (bindingName: string, namespace: string) =>
    eventually(`binding ${namespace}/${bindingName} Ready`, async () => {
      const read = await env.controlClient.get(refs.bindings, bindingName, namespace);
      assert.equal(conditionOf(read, "Ready")?.status, "True", JSON.stringify(read?.status));
    });
  /** tenant A's object in each of appNamespaces, 20 at a time; tenant B's in its own namespace after the first 60 */
  const flood = async (appNamespaces: string[], nsB: string): Promise<{ askedB: number }> => {
    onFileDone(async () => {
      // the syncs stopped, the objects' finalizers gone (nothing else changes them then), the namespaces can go
      await stopAll();
      for (const ref of [env.ref, refB]) {
        for (const obj of (await env.appClient.list(ref)).items) {
          if (!appNamespaces.includes(obj.metadata.namespace ?? "") && obj.metadata.namespace !== nsB) continue;
          await env.appClient
            .mergePatch(ref, obj.metadata.name, obj.metadata.namespace, {
              metadata: { finalizers: null },
            })
            .catch(ignoreNotFound);
        }
      }
      for (const ns of [...appNamespaces, nsB]) await env.appClient.delete(refs.namespaces, ns).catch(() => {});
    });
    await env.appClient.create(refs.namespaces, { apiVersion: "v1", kind: "Namespace", metadata: { name: nsB } });
    let askedB = 0;
    for (let i = 0; i < appNamespaces.length; i += 20) {
      await Promise.all(appNamespaces.slice(i, i + 20).map((ns) => env.appObject(ns, "db")));
      if (i !== 40) continue;
      askedB = performance.now();
      await env.appClient.create(refB, {
        apiVersion: `${groupB}/v1`,
        kind: "PostgresqlInstance",
        metadata: { name: "db", namespace: nsB },
        spec: { size: "s" },
      });
    }
    return { askedB };
  };
  return { control, env, tenantA, tenantB, uidA, uidB, refB, start, stopAll, ready, flood };
}

describe("per-tenant limits on the control plane", () => {
  it("keeps one tenant's 120-namespace fan-out within its limits, says so, and serves another tenant meanwhile", async (t) => {
    const { control, env, tenantA, tenantB, uidA, uidB, refB, start, stopAll, ready, flood } = await twoTenants(
      "limits-control",
      true,
    );
    const first = await start(limits);
    await ready("flood", tenantA);
    await ready("other", tenantB);
    await sleep(1000); // the first lists' watches open
    const watchesBefore = await serverWatches(control);

    // the flood: one bound object in each of 120 app namespaces
    const suffix = uniqueSuffix();
    const appNamespaces = Array.from({ length: fanOut }, (_, i) => `flood-${suffix}-${i}`);
    const requestsBefore = await controlRequests(first);
    const flooded = performance.now();
    const nsB = `other-${suffix}`;
    const { askedB } = await flood(appNamespaces, nsB);
    await eventually("tenant B's copy on the control plane", async () =>
      assert.ok(await env.controlClient.get(refB, "db", providerNamespace(uidB, nsB))),
    );
    const tenantBSeconds = (performance.now() - askedB) / 1000;

    const sinceFlood = performance.now() - flooded;
    if (sinceFlood < 15_000) await sleep(15_000 - sinceFlood);
    const requestsIn15s = (await controlRequests(first)) - requestsBefore;
    const mine = { labelSelector: `${labels.binding}=${uidA}` };
    const counts = async () => ({
      providerNamespaces: (await env.controlClient.list(refs.namespaces, mine)).items.length,
      roleBindings: (await env.controlClient.list(refs.roleBindings, mine)).items.length,
      addedWatches: (await serverWatches(control)) - watchesBefore,
    });
    const at15s = await counts();
    t.diagnostic(
      `limits ${JSON.stringify(limits)}, 15 s after the fan-out began: ${at15s.providerNamespaces} provider namespaces, ` +
        `${at15s.roleBindings} RoleBindings, ${at15s.addedWatches} more control-plane watches, ` +
        `${requestsIn15s} control-plane requests; tenant B's object synced in ${tenantBSeconds.toFixed(1)} s`,
    );
    // a bound, not a timing: far below what waits for A's fan-out to finish would take
    assert.ok(tenantBSeconds < 30, `tenant B's object took ${tenantBSeconds} s`);
    assert.ok(at15s.providerNamespaces <= limits.providerNamespaces, `${at15s.providerNamespaces} provider namespaces`);
    assert.ok(at15s.roleBindings <= limits.providerNamespaces, `${at15s.roleBindings} RoleBindings`);
    assert.ok(at15s.addedWatches <= limits.controlWatches, `${at15s.addedWatches} more watches on the control plane`);

    await eventually("tenant A's binding names the limits", async () => {
      const read = await env.controlClient.get(refs.bindings, "flood", tenantA);
      const readyA = conditionOf(read, "Ready");
      assert.equal(readyA?.status, "False");
      assert.match(readyA?.message ?? "", /--provider-namespaces-per-namespace \(20\)/);
      assert.match(readyA?.message ?? "", /--control-watches-per-namespace \(12\)/);
      assert.match(readyA?.message ?? "", /nothing is deleted/);
    });
    // tenant A has what its limits allow, and no more
    await eventually("tenant A at its limits", async () =>
      assert.deepEqual(await counts(), {
        providerNamespaces: limits.providerNamespaces,
        roleBindings: limits.providerNamespaces,
        addedWatches: limits.controlWatches,
      }),
    );

    // an object that waits is the tenant's to delete: it goes, nothing holds it
    const made = new Set((await env.controlClient.list(refs.namespaces, mine)).items.map((n) => n.metadata.name));
    const waiting = appNamespaces.find((ns) => !made.has(providerNamespace(uidA, ns))) ?? "";
    await env.appClient.delete(env.ref, "db", waiting);
    await eventually("the waiting object deleted", async () =>
      assert.equal(await env.appClient.get(env.ref, "db", waiting), undefined),
    );
    // nothing else was deleted; raised limits let the rest sync
    await stopAll();
    const left = (await env.appClient.list(env.ref)).items.filter((o) =>
      appNamespaces.includes(o.metadata.namespace ?? ""),
    );
    assert.equal(left.length, fanOut - 1);
    await start({ providerNamespaces: 200, controlWatches: 400 });
    await eventually(
      "every app namespace synced under the raised limit",
      async () => assert.equal((await env.controlClient.list(refs.namespaces, mine)).items.length, fanOut - 1),
      120_000,
    );
    await ready("flood", tenantA);
  });

  it("serves another tenant's object promptly while one tenant's fan-out fills a slow client's rate limit", async (t) => {
    const { env, tenantA, tenantB, uidB, start, ready, flood, refB } = await twoTenants("share-control", false);
    // A's fan-out (some 400 requests, 64 at once) takes more than a minute through this rate limit;
    // each tenant has 4 requests in flight at most
    await start({ providerNamespaces: 1000, controlWatches: 1000 }, { qps: 5, burst: 5, maxRequestsPerTenant: 4 }, 64);
    await ready("flood", tenantA);
    await ready("other", tenantB);
    const suffix = uniqueSuffix();
    const appNamespaces = Array.from({ length: fanOut }, (_, i) => `share-${suffix}-${i}`);
    const nsB = `share-other-${suffix}`;
    const { askedB } = await flood(appNamespaces, nsB);
    await eventually(
      "tenant B's copy on the control plane",
      async () => assert.ok(await env.controlClient.get(refB, "db", providerNamespace(uidB, nsB))),
      120_000,
    );
    const tenantBSeconds = (performance.now() - askedB) / 1000;
    const copiesOfA = (await env.controlClient.list(env.ref)).items.length;
    t.diagnostic(
      `at 5 requests/s: tenant B's object synced in ${tenantBSeconds.toFixed(1)} s, when ${copiesOfA} of tenant A's ${fanOut} were`,
    );
    // B's three control-plane requests wait behind A's share (4 at a time, under a second each), not
    // behind A's 64 at once (13 s each)
    assert.ok(copiesOfA < fanOut, "tenant A's fan-out was over before B's object synced: nothing was measured");
    assert.ok(tenantBSeconds < 15, `tenant B's object took ${tenantBSeconds.toFixed(1)} s behind tenant A's fan-out`);
  });
});

function binding(name: string, namespace: string, group: string): KubeObject {
  return {
    apiVersion: "bind.klutch.dev/v1alpha1",
    kind: "AppClusterBinding",
    metadata: { name, namespace },
    spec: {
      kubeconfigSecretRef: { name: `${name}-kubeconfig` },
      exports: [{ group, resource: "postgresqlinstances" }],
    },
  };
}
