// Issue 26, both sides of a pull binding on real API servers: the control plane's sync runs with
// --pull-bindings and holds no credential for the app cluster; `klutch-bind konnector` runs as a
// process against the app cluster (as its cluster-admin, for this first cut) with the binding's
// control-plane kubeconfig in an app cluster Secret, and mirrors through the sync's own mirroring:
// spec up into the provider namespace the control plane granted, status down, accepted claims both
// ways (a Provider-owned Secret down, a Consumer-owned ConfigMap up), deletion; a heartbeat the
// control plane turns into Healthy; no control-plane request answered 403 (its metrics); kill -9
// and a restart, nothing twice; its token renewed.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { appendFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { before, describe, it } from "node:test";
import { parse } from "yaml";
import { labels, providerNamespace } from "../../src/api/naming.ts";
import { bindingRef, clusterBindingName, pullAnnotations, pullRefs } from "../../src/api/pull-binding.ts";
import { refs } from "../../src/api/resources.ts";
import { KubeClient, type KubeObject, type ResourceRef } from "../../src/kube/client.ts";
import { conditionOf, isEstablished } from "../../src/kube/conditions.ts";
import { clientConfig, onFileDone, testClusters, testNamespace, uniqueSuffix } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";
import { applyCrds } from "../support/manifests.ts";
import { freePort } from "../support/net.ts";
import { stopProcess } from "../support/processes.ts";
import { type PullBinding, type PullEnv, pullEnv } from "../support/pull-env.ts";
import { dropExportedApi } from "../support/sync-env.ts";
import { repoRoot } from "../support/tools.ts";

const secretClaim = { group: "", resource: "secrets", version: "v1", selector: { owner: "Provider" } };
const configMapClaim = { group: "", resource: "configmaps", version: "v1", selector: { owner: "Consumer" } };
const verbs = ["get", "list", "watch", "create", "update", "patch", "delete"];
const heartbeatSeconds = 2;

type KubeconfigDoc = { users: Array<{ user: { token?: string } }> };
/** messages: what it logged (msg of each line) */
type Konnector = { child: ChildProcess; metricsPort: number; exited: Promise<unknown>; messages: string[] };

describe("the konnector: a pull binding served from the app cluster", () => {
  let env: PullEnv;
  let admin: KubeClient;
  let app: KubeClient;
  let api: ResourceRef;
  let binding: PullBinding;
  /** the konnector's own namespace in the app cluster: its Lease and the kubeconfig Secret */
  let konnNs: string;
  /** where the app team's objects live */
  let appNs: string;
  let providerNs: string;
  let appKubeconfig: string;
  let konnector: Konnector;
  /** control-plane requests answered 403, summed over every konnector process (read before each stops) */
  let forbiddenSeen = 0;
  let controlRequestsSeen = 0;

  function startKonnector(name: string, flags: string[] = []): Konnector {
    const child = spawn(
      process.execPath,
      [
        join(repoRoot, "src/cli/main.ts"),
        "konnector",
        "--kubeconfig",
        appKubeconfig,
        "--leader-election-namespace",
        konnNs,
        "--lease-duration",
        "6",
        "--heartbeat-interval",
        String(heartbeatSeconds),
        "--metrics-address",
        `127.0.0.1:${metricsPort}`,
        "--health-address",
        `127.0.0.1:${healthPort}`,
        // the app cluster is shared with other tests: this konnector serves this file's bindings only
        "--binding-selector",
        `klutch-bind.test/file=${selector}`,
        ...flags,
      ],
      { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, POD_NAME: name } },
    );
    const messages: string[] = [];
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      messages.push(String((JSON.parse(line) as { msg?: unknown }).msg));
      if (process.env.KLB_TEST_LOG_DIR) appendFileSync(join(process.env.KLB_TEST_LOG_DIR, `${name}.log`), `${line}\n`);
    });
    const exited = new Promise((resolve) => child.once("exit", resolve));
    onFileDone(() => stopProcess(child));
    return { child, metricsPort, exited, messages };
  }
  let metricsPort = 0;
  let healthPort = 0;
  const selector = `konnector-${uniqueSuffix()}`;

  /** the konnector's control-plane requests: all, and those answered 403 */
  async function controlRequests(): Promise<{ total: number; forbidden: number }> {
    const text = await (await fetch(`http://127.0.0.1:${konnector.metricsPort}/metrics`)).text();
    let total = 0;
    let forbidden = 0;
    for (const m of text.matchAll(/^klutch_bind_api_request_seconds_count\{([^}]*)\} (\d+)$/gm)) {
      const labelText = m[1] ?? "";
      if (!labelText.includes('cluster="control"')) continue;
      total += Number(m[2]);
      if (labelText.includes('code="403"')) forbidden += Number(m[2]);
    }
    return { total, forbidden };
  }

  function pg(name: string, spec: Record<string, unknown>): KubeObject {
    return {
      apiVersion: `${api.group}/v1`,
      kind: "PostgresqlInstance",
      metadata: { name, namespace: appNs },
      spec,
    };
  }

  async function providerCopies(): Promise<KubeObject[]> {
    return (await admin.list(api, { namespace: providerNs })).items;
  }

  before(async () => {
    env = await pullEnv({
      prefix: "konn",
      claims: [secretClaim, configMapClaim],
      claimsRules: [{ apiGroups: [""], resources: ["secrets", "configmaps"], verbs }],
    });
    ({ admin, api } = env);
    const clusters = await testClusters();
    appKubeconfig = clusters.app.kubeconfigPath;
    app = KubeClient.fromConfig(clientConfig(clusters.app));
    onFileDone(async () => app.close());
    await applyCrds(clusters.app, "deploy/app-cluster/klutch-apiservicebinding-crd.yaml");
    konnNs = await testNamespace(clusters.app, "konn");
    appNs = await testNamespace(clusters.app, "kapp");

    // the shortest lifetime TokenRequest grants: the restarted konnector renews it at 2 % (12 s)
    binding = await env.bind(`carol-${uniqueSuffix()}`, "app1", 600);
    providerNs = providerNamespace(binding.uid, appNs);
    // what `klutch-bind bind URL` will do: ask for the export, then record the binding in the app cluster
    await binding.client.create(pullRefs.exportRequests, {
      apiVersion: "klutch.anynines.com/v1alpha1",
      kind: "APIServiceExportRequest",
      metadata: { name: "db", namespace: binding.ns },
      spec: {
        resources: [
          { group: api.group, resource: "postgresqlinstances", permissionClaims: [secretClaim, configMapClaim] },
        ],
      },
    });
    const exportName = `postgresqlinstances.${api.group}`;
    await eventually("the control plane exports the API to the binding", async () =>
      assert.ok(await binding.client.get(pullRefs.exports, exportName, binding.ns)),
    );
    await app.create(refs.secrets, {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "provider-kubeconfig", namespace: konnNs },
      stringData: { kubeconfig: binding.provisioned.kubeconfig },
    });
    await app.create(bindingRef, {
      apiVersion: "klutch.anynines.com/v1alpha1",
      kind: "APIServiceBinding",
      metadata: { name: exportName, labels: { "klutch-bind.test/file": selector } },
      spec: {
        kubeconfigSecretRef: { name: "provider-kubeconfig", namespace: konnNs, key: "kubeconfig" },
        permissionClaims: [
          { ...secretClaim, state: "Accepted" },
          { ...configMapClaim, state: "Accepted" },
        ],
      },
    });
    // cleanups run in reverse: the konnector (registered later) stops first, then the API goes
    onFileDone(async () => {
      await app.delete(bindingRef, exportName);
      await dropExportedApi([app], api);
    });
    metricsPort = await freePort();
    healthPort = await freePort();
    konnector = startKonnector("konnector-1");
  });

  it("the control plane holds no credential for the app cluster, and its sync sent it nothing", async () => {
    const { app: appCluster } = await testClusters();
    const where = [env.tenantNs, binding.ns];
    for (const namespace of where) {
      for (const secret of (await admin.list(refs.secrets, { namespace })).items) {
        const text = Object.values((secret.data ?? {}) as Record<string, string>)
          .map((v) => Buffer.from(v, "base64").toString())
          .join("\n");
        assert.ok(
          !text.includes(appCluster.server),
          `secret ${namespace}/${secret.metadata.name} names the app cluster`,
        );
      }
    }
    const text = await env.sync.metrics.registry.metrics();
    assert.match(text, /^klutch_bind_api_requests_total\{cluster="app"\} 0$/m);
    assert.match(text, /^klutch_bind_api_requests_total\{cluster="control"\} [1-9]/m);
  });

  it("spec goes up: the app object's copy in the provider namespace the control plane granted", async () => {
    await eventually("the konnector installed the API in the app cluster", async () =>
      assert.ok(isEstablished(await app.get(refs.crds, `postgresqlinstances.${api.group}`))),
    );
    await app.create(api, pg("db1", { size: "small" }));
    await eventually("the provider copy has the spec", async () => {
      const copy = await admin.get(api, "db1", providerNs);
      assert.deepEqual(copy?.spec, { size: "small" });
      assert.equal(copy?.metadata.labels?.[labels.binding], binding.uid);
    });
    const asked = await admin.get(pullRefs.serviceNamespaces, appNs, binding.ns);
    assert.equal((asked?.status as { namespace?: string } | undefined)?.namespace, providerNs);
    await app.mergePatch(api, "db1", appNs, { spec: { size: "large" } });
    await eventually("a change goes up", async () =>
      assert.deepEqual((await admin.get(api, "db1", providerNs))?.spec, { size: "large" }),
    );
  });

  it("status comes down from the provider copy", async () => {
    const copy = await admin.get(api, "db1", providerNs);
    assert.ok(copy);
    const status = { endpoint: "db1.example", conditions: [{ type: "Ready", status: "True", reason: "Available" }] };
    await admin.updateStatus(api, { ...copy, status });
    await eventually("the app object shows the status", async () =>
      assert.deepEqual((await app.get(api, "db1", appNs))?.status, status),
    );
  });

  it("an accepted Provider-owned claim comes down: a Secret made in the provider namespace", async () => {
    await admin.create(refs.secrets, {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "db1-credentials", namespace: providerNs },
      stringData: { password: "s3cret" },
    });
    await eventually("the Secret is in the app namespace", async () => {
      const copy = await app.get(refs.secrets, "db1-credentials", appNs);
      assert.equal(
        Buffer.from(String((copy?.data as Record<string, string>)?.password), "base64").toString(),
        "s3cret",
      );
    });
  });

  it("an accepted Consumer-owned claim goes up: a ConfigMap made in the app namespace", async () => {
    await app.create(refs.configMaps, {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "db1-settings", namespace: appNs },
      data: { max_connections: "50" },
    });
    await eventually("the ConfigMap is in the provider namespace", async () =>
      assert.deepEqual((await admin.get(refs.configMaps, "db1-settings", providerNs))?.data, { max_connections: "50" }),
    );
  });

  it("deleting the app object deletes its provider copy, then the app object goes", async () => {
    await app.create(api, pg("gone", { size: "small" }));
    await eventually("copied", async () => assert.ok(await admin.get(api, "gone", providerNs)));
    await app.delete(api, "gone", appNs);
    await eventually("the copy and the app object are gone", async () => {
      assert.equal(await admin.get(api, "gone", providerNs), undefined);
      assert.equal(await app.get(api, "gone", appNs), undefined);
    });
  });

  it("heartbeat: written on the ClusterBinding, and the control plane says Healthy; the konnector's health endpoints", async () => {
    await eventually("heartbeating and healthy", async () => {
      const cluster = await admin.get(pullRefs.clusterBindings, clusterBindingName, binding.ns);
      const status = cluster?.status as { heartbeatInterval?: string; konnectorVersion?: string } | undefined;
      assert.equal(status?.heartbeatInterval, `${heartbeatSeconds}s`);
      assert.match(status?.konnectorVersion ?? "", /^\d+\.\d+\.\d+/);
      assert.equal(conditionOf(cluster, "Healthy")?.status, "True", JSON.stringify(cluster?.status));
    });
    for (const path of ["/healthz", "/readyz"]) {
      const answer = await fetch(`http://127.0.0.1:${healthPort}${path}`);
      assert.equal(answer.status, 200, path);
    }
    await eventually("the APIServiceBinding is Ready", async () => {
      const ready = conditionOf(await app.get(bindingRef, `postgresqlinstances.${api.group}`), "Ready");
      assert.equal(ready?.status, "True", JSON.stringify(ready));
    });
  });

  it("a binding whose kubeconfig Secret is missing says so in its Ready condition; the others go on", async () => {
    const name = `widgets.${api.group}`;
    await app.create(bindingRef, {
      apiVersion: "klutch.anynines.com/v1alpha1",
      kind: "APIServiceBinding",
      metadata: { name, labels: { "klutch-bind.test/file": selector } },
      spec: { kubeconfigSecretRef: { name: "nowhere", namespace: konnNs, key: "kubeconfig" } },
    });
    onFileDone(() => app.delete(bindingRef, name));
    await eventually("Ready False, naming the Secret", async () => {
      const ready = conditionOf(await app.get(bindingRef, name), "Ready");
      assert.equal(ready?.status, "False");
      assert.equal(ready?.reason, "KubeconfigMissing");
      assert.equal(ready?.message, `secret ${konnNs}/nowhere does not exist`);
    });
    assert.equal(conditionOf(await app.get(bindingRef, `postgresqlinstances.${api.group}`), "Ready")?.status, "True");
  });

  it("kill -9 and a restart: the changes made meanwhile arrive, nothing exists twice", async () => {
    const before = await controlRequests();
    controlRequestsSeen += before.total;
    forbiddenSeen += before.forbidden;
    konnector.child.kill("SIGKILL");
    await konnector.exited;
    await app.mergePatch(api, "db1", appNs, { spec: { size: "huge" } });
    await app.create(api, pg("db2", { size: "small" }));
    konnector = startKonnector("konnector-2", ["--token-renew-at", "0.02"]);
    await eventually(
      "in sync again",
      async () => {
        assert.deepEqual((await admin.get(api, "db1", providerNs))?.spec, { size: "huge" });
        assert.deepEqual((await admin.get(api, "db2", providerNs))?.spec, { size: "small" });
      },
      60_000,
    );
    const copies = (await providerCopies()).map((o) => o.metadata.name).sort();
    assert.deepEqual(copies, ["db1", "db2"]);
    const appObjects = (await app.list(api, { namespace: appNs })).items.map((o) => o.metadata.name).sort();
    assert.deepEqual(appObjects, ["db1", "db2"]);
    const asked = (await admin.list(pullRefs.serviceNamespaces, { namespace: binding.ns })).items;
    assert.deepEqual(
      asked.map((s) => s.metadata.name),
      [appNs],
      "one APIServiceNamespace for the one app namespace",
    );
    const secrets = (await app.list(refs.secrets, { namespace: appNs })).items.filter(
      (s) => s.metadata.name === "db1-credentials",
    );
    assert.equal(secrets.length, 1);
  });

  it("token renewal: a new token of its own account in the app cluster's Secret, swapped in without a restart", async () => {
    const tokenOf = (text: string) => (JSON.parse(JSON.stringify(parse(text))) as KubeconfigDoc).users[0]?.user.token;
    const first = tokenOf(binding.provisioned.kubeconfig);
    let renewed = "";
    await eventually("the Secret holds a renewed kubeconfig", async () => {
      const secret = await app.get(refs.secrets, "provider-kubeconfig", konnNs);
      renewed = Buffer.from(String((secret?.data as Record<string, string>)?.kubeconfig), "base64").toString();
      assert.ok(tokenOf(renewed));
      assert.notEqual(tokenOf(renewed), first);
    });
    const client = KubeClient.fromKubeconfigText(renewed);
    try {
      const review = await client.request<{ status?: { userInfo?: { username?: string } } }>(
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        { body: { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" } },
      );
      assert.equal(review.status?.userInfo?.username, `system:serviceaccount:${binding.ns}:klutch-binder`);
    } finally {
      client.close();
    }
    await eventually("the renewal is logged", () =>
      assert.ok(konnector.messages.includes("control-plane token renewed")),
    );
    assert.ok(
      !konnector.messages.includes("kubeconfig gone or changed: closing its connection"),
      "its own renewal restarts no connection",
    );
    await app.create(api, pg("db3", { size: "small" }));
    await eventually("still syncing", async () =>
      assert.deepEqual((await admin.get(api, "db3", providerNs))?.spec, { size: "small" }),
    );
  });

  it("the konnector's control-plane requests were never refused (403): it stays within its binding's rights", async () => {
    const now = await controlRequests();
    const total = controlRequestsSeen + now.total;
    const forbidden = forbiddenSeen + now.forbidden;
    console.log(`konnector control-plane requests: ${total}, answered 403: ${forbidden}`);
    assert.ok(now.total > 0, "the restarted konnector made control-plane requests");
    assert.equal(forbidden, 0);
  });

  it("an administrator setting bind.klutch.dev/binding-uid while the konnector runs: it mirrors into the namespaces named after it", async () => {
    const key = `${binding.uid}-moved`;
    const moved = providerNamespace(key, appNs);
    await admin.mergePatch(pullRefs.clusterBindings, clusterBindingName, binding.ns, {
      metadata: { annotations: { [pullAnnotations.bindingUid]: key } },
    });
    await eventually("the control plane grants the namespace named after the new key", async () => {
      const asked = await admin.get(pullRefs.serviceNamespaces, appNs, binding.ns);
      assert.equal((asked?.status as { namespace?: string } | undefined)?.namespace, moved);
    });
    await app.create(api, pg("db4", { size: "small" }));
    await eventually(
      "the new object's copy is in the namespace named after the new key",
      async () => assert.deepEqual((await admin.get(api, "db4", moved))?.spec, { size: "small" }),
      60_000,
    );
    assert.ok(await admin.get(refs.namespaces, providerNs), "the namespace named after the uid stays");
  });
});
