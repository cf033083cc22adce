// `klutch-bind unbind --app RESOURCE.GROUP`, the app team undoing `klutch-bind bind URL`, for real:
// two APIs of one control plane are bound headless into a fresh app cluster of this file's own and
// served by one konnector, run as its Deployment would (its arguments, its ServiceAccount's token:
// exactly the rights bind granted). Unbinding one with --orphan keeps its provider copies and its
// app objects (our finalizer gone) and shrinks the konnector's rights to the other; unbinding the
// last with --delete deletes its provider copies (only those with the binding's label), keeps the
// app objects and the CRDs, and removes the konnector. The konnector is never refused (403) while
// it runs. Also: --dry-run changes nothing, and the errors name what is wrong.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { labels } from "../../src/api/naming.ts";
import { bindingRef, konnectorFinalizer, pullAnnotations, pullRefs } from "../../src/api/pull-binding.ts";
import { refs } from "../../src/api/resources.ts";
import { KubeClient, type KubeObject, type ResourceRef } from "../../src/kube/client.ts";
import { conditionOf } from "../../src/kube/conditions.ts";
import { deleteProviderCopies } from "../../src/sync/mirror/release.ts";
import type { RunningWeb } from "../../src/web/server.ts";
import { type Account, grant, serviceAccount } from "../support/accounts.ts";
import {
  type DeployedKonnector,
  klutchBind,
  konnectorRequests,
  printed,
  startDeployedKonnector,
  startPullPage,
} from "../support/app-bind.ts";
import type { Cluster } from "../support/cluster.ts";
import { clientConfig, freshCluster, onFileDone, testClusters, testNamespace } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";
import { stopProcess } from "../support/processes.ts";
import { type PullEnv, pullEnv } from "../support/pull-env.ts";

const _repoRoot = join(import.meta.dirname, "../..");
const configmapClaim = { group: "", resource: "configmaps", version: "v1", selector: { owner: "Consumer" } };
const claimVerbs = ["get", "list", "watch", "create", "update", "patch", "delete"];
const syncFinalizer = "bind.klutch.dev/sync";
const ns = "klutch-bind";
const appNs = "shop";

type Rules = Array<{ apiGroups: string[]; resources: string[] }>;

describe("klutch-bind unbind --app: undoing bind URL from the app cluster", () => {
  let env: PullEnv;
  let web: RunningWeb;
  let app: Cluster;
  let appClient: KubeClient;
  let dana: Account;
  let api1: ResourceRef;
  let api2: ResourceRef;
  let id1: string;
  let id2: string;
  let konnector: DeployedKonnector | undefined;
  /** the provider namespace of app namespace shop */
  let providerNs = "";

  before(async () => {
    [env, app] = await Promise.all([
      pullEnv({
        prefix: "app-unbind",
        claims: [configmapClaim],
        claimsRules: [{ apiGroups: [""], resources: ["configmaps"], verbs: claimVerbs }],
        secondApi: true,
      }),
      freshCluster("app-unbind-app"),
    ]);
    api1 = env.api;
    assert.ok(env.api2);
    api2 = env.api2;
    id1 = `${api1.resource}.${api1.group}`;
    id2 = `${api2.resource}.${api2.group}`;
    appClient = KubeClient.fromConfig(clientConfig(app));
    onFileDone(async () => appClient.close());
    dana = await serviceAccount(env.admin, env.tenantNs, "dana");
    await grant(env.admin, dana, "klutch-bind:binder", env.tenantNs);
    web = await startPullPage(env);
  });
  after(async () => {
    const owned = await env.admin.list(refs.namespaces, { labelSelector: "bind.klutch.dev/pull-binding=true" });
    for (const n of owned.items) {
      const owner = n.metadata.annotations?.[pullAnnotations.identity] ?? "";
      if (owner.startsWith(`${dana.username}#`)) await env.admin.delete(refs.namespaces, n.metadata.name);
    }
  });

  /** the konnector's 403s once both bindings were Ready: unbinding must add none */
  let refusedBefore = { app: 0, control: 0 };

  /** The konnector has not been refused (403) on either side since then; its lines saying so otherwise. */
  async function neverRefused(): Promise<void> {
    const f = (await konnectorRequests(konnector?.metricsPort ?? 0)).forbidden;
    const said = (konnector?.out ?? []).filter((l) => /403|forbidden/i.test(l)).join("\n");
    assert.deepEqual({ app: f.app, control: f.control }, refusedBefore, said);
  }

  /** bind URL, headless, as dana; the konnector started once its Deployment is there. */
  async function bind(apiId: string, claims: string): Promise<void> {
    const tokenFile = join(app.dir, "dana.token");
    writeFileSync(tokenFile, dana.token);
    const run = klutchBind([
      "bind",
      `${web.url}/export/klutch`,
      "--kubeconfig",
      app.kubeconfigPath,
      "--token-file",
      tokenFile,
      "--api",
      apiId,
      "--from-namespace",
      env.tenantNs,
      "--accept-claims",
      claims,
      "--konnector-image",
      "klutch-bind:test",
      "--timeout",
      "180",
    ]);
    const clusterNs = /cluster namespace (\S+) on /.exec(await printed(run, /bound .* as /))?.[1] ?? "";
    assert.notEqual(clusterNs, "");
    await env.serve(clusterNs);
    await printed(run, /✓ Deployment klutch-bind\/klutch-bind-konnector/);
    konnector ??= await startDeployedKonnector(appClient, app, ns, "konnector-0", [
      "--heartbeat-interval",
      "5",
      "--lease-duration",
      "5",
    ]);
    assert.equal(await run.exited, 0, run.out.join("\n"));
  }

  const make = (api: ResourceRef, name: string) =>
    appClient.create(api, {
      apiVersion: `${api.group}/v1`,
      kind: "PostgresqlInstance",
      metadata: { name, namespace: appNs },
      spec: { size: "small" },
    });

  /** waits for the provider copy of app object name; its provider namespace */
  async function copied(api: ResourceRef, name: string): Promise<KubeObject> {
    let copy: KubeObject | undefined;
    await eventually(`the copy of ${name} on the control plane`, async () => {
      copy = (await env.admin.list(api)).items.find((o) => o.metadata.name === name);
      assert.ok(copy);
    });
    assert.ok(copy);
    return copy;
  }

  const mainRole = () => appClient.get(refs.clusterRoles, "klutch-bind:app:konnector");
  const rulesOf = (role: KubeObject | undefined) => ((role as { rules?: Rules } | undefined)?.rules ?? []) as Rules;

  it("binds two APIs into one konnector, which holds each APIServiceBinding with its finalizer", {
    timeout: 240_000,
  }, async () => {
    await bind(id1, "configmaps.core/Consumer");
    await bind(id2, "none");
    for (const id of [id1, id2]) {
      await eventually(`${id} Ready and held`, async () => {
        const binding = await appClient.get(bindingRef, id);
        assert.equal(conditionOf(binding, "Ready")?.status, "True", JSON.stringify(binding?.status));
        assert.ok(binding?.metadata.finalizers?.includes(konnectorFinalizer), JSON.stringify(binding?.metadata));
      });
    }
    await appClient.apply(refs.namespaces, { apiVersion: "v1", kind: "Namespace", metadata: { name: appNs } }, "test");
    for (const name of ["a1", "a2"]) await make(api1, name);
    await make(api2, "b1");
    for (const name of ["a1", "a2"]) providerNs = (await copied(api1, name)).metadata.namespace ?? "";
    await copied(api2, "b1");
    // the claims role is bound in the app namespace by the konnector
    assert.ok(await appClient.get(refs.roleBindings, "klutch-bind:app:konnector:claims", appNs));
    const groups = rulesOf(await mainRole()).flatMap((r) => r.apiGroups);
    assert.ok(groups.includes(api1.group) && groups.includes(api2.group), JSON.stringify(groups));
    // binding a second API may race the API server's RBAC cache (bind URL's part, not unbind's): a
    // refusal then is retried; what unbinding adds is counted from here
    refusedBefore = (await konnectorRequests(konnector?.metricsPort ?? 0)).forbidden;
  });

  it("unbind --app --orphan keeps the provider copies and the app objects (our finalizer gone), and shrinks the konnector's rights to the other binding", {
    timeout: 120_000,
  }, async () => {
    assert.ok(konnector, "the first test's konnector runs");
    const run = klutchBind(["unbind", "--app", id1, "--orphan", "--kubeconfig", app.kubeconfigPath, "--timeout", "60"]);
    assert.equal(await run.exited, 0, run.out.join("\n"));
    const out = run.out.join("\n");
    assert.match(out, /waiting for the konnector to release/);
    assert.match(out, /released by the konnector and deleted \(provider copies kept\)/);
    assert.equal(await appClient.get(bindingRef, id1), undefined);
    for (const name of ["a1", "a2"]) {
      const copy = await env.admin.get(api1, name, providerNs);
      assert.ok(copy, `the provider copy ${name} stays`);
      assert.equal(copy.metadata.deletionTimestamp, undefined);
      const mine = await appClient.get(api1, name, appNs);
      assert.ok(mine, `the app object ${name} stays`);
      assert.ok(!mine.metadata.finalizers?.includes(syncFinalizer), JSON.stringify(mine.metadata));
      assert.equal(mine.metadata.labels?.[labels.binding], undefined);
    }
    assert.ok(await appClient.get(refs.crds, id1), "the API's CRD stays");
    // rights: the other API only; no claims (only the first had one)
    const groups = rulesOf(await mainRole()).flatMap((r) => r.apiGroups);
    assert.ok(!groups.includes(api1.group), JSON.stringify(groups));
    assert.ok(groups.includes(api2.group), JSON.stringify(groups));
    const crdNames = rulesOf(await mainRole())
      .filter((r) => r.resources.includes("customresourcedefinitions"))
      .flatMap((r) => (r as { resourceNames?: string[] }).resourceNames ?? []);
    assert.deepEqual(crdNames, [id2]);
    assert.deepEqual(rulesOf(await appClient.get(refs.clusterRoles, "klutch-bind:app:konnector:claims")), []);
    // the other binding goes on, with what is left
    assert.ok(await appClient.get(refs.deployments, "klutch-bind-konnector", ns), "the konnector stays");
    await make(api2, "b2");
    await copied(api2, "b2");
    assert.equal(conditionOf(await appClient.get(bindingRef, id2), "Ready")?.status, "True");
    await neverRefused();
  });

  it("unbind --app --dry-run prints the plan and changes nothing", async () => {
    const run = klutchBind(["unbind", "--app", id2, "--delete", "--kubeconfig", app.kubeconfigPath, "--dry-run"]);
    assert.equal(await run.exited, 0, run.out.join("\n"));
    const out = run.out.join("\n");
    assert.match(
      out,
      new RegExp(`annotate APIServiceBinding ${id2.replaceAll(".", "\\.")} bind\\.klutch\\.dev/deletion-policy=Delete`),
    );
    for (const step of [
      "delete Deployment klutch-bind/klutch-bind-konnector",
      "delete ClusterRole klutch-bind:app:konnector",
      "delete ServiceAccount klutch-bind/konnector",
      `delete RoleBinding ${appNs}/klutch-bind:app:konnector:claims`,
    ]) {
      assert.ok(out.includes(step), `${step}\n${out}`);
    }
    assert.ok(!out.includes("CustomResourceDefinition"), "never the CRD");
    assert.ok(!out.includes("delete Namespace"), "never the namespace: nothing proves all it holds is ours");
    const binding = await appClient.get(bindingRef, id2);
    assert.ok(binding);
    assert.equal(binding.metadata.deletionTimestamp, undefined);
    assert.equal(binding.metadata.annotations?.[pullAnnotations.deletionPolicy], undefined);
    assert.ok(await appClient.get(refs.deployments, "klutch-bind-konnector", ns));
  });

  it("the last unbind --app --delete deletes the labelled provider copies only, keeps the app objects and the CRDs, and removes the konnector", {
    timeout: 120_000,
  }, async () => {
    assert.ok(konnector, "the first test's konnector runs");
    const running = konnector;
    const b1 = await env.admin.get(api2, "b1", providerNs);
    assert.ok(b1, "b1's copy is in the provider namespace of shop");
    // the binding's label in a namespace that is none of its provider namespaces: the konnector looks
    // only in those it was granted, never across the cluster, so this one stays
    const bindingKey = b1.metadata.labels?.[labels.binding] ?? "";
    assert.notEqual(bindingKey, "");
    const elsewhere = await testNamespace((await testClusters()).control, "app-unbind-elsewhere");
    await env.admin.create(api2, {
      apiVersion: `${api2.group}/v1`,
      kind: "PostgresqlInstance",
      metadata: { name: "elsewhere", namespace: elsewhere, labels: { [labels.binding]: bindingKey } },
      spec: { size: "large" },
    });
    const run = klutchBind(["unbind", "--app", id2, "--delete", "--kubeconfig", app.kubeconfigPath, "--timeout", "60"]);
    // the kubelet's part: once the Deployment is gone, its pod stops (and with it the metrics)
    await eventually(
      "the Deployment is deleted",
      async () => assert.equal(await appClient.get(refs.deployments, "klutch-bind-konnector", ns), undefined),
      60_000,
    );
    // never refused while it ran
    const refused = await neverRefused().catch((err: unknown) => err);
    await stopProcess(running.child);
    assert.equal(await run.exited, 0, run.out.join("\n"));
    if (refused) throw refused;
    assert.match(run.out.join("\n"), /released by the konnector and deleted \(provider copies deleted\)/);

    await eventually("the binding's provider copies are gone", async () => {
      for (const name of ["b1", "b2"]) assert.equal(await env.admin.get(api2, name, providerNs), undefined, name);
    });
    assert.ok(await env.admin.get(api2, "elsewhere", elsewhere), "outside the provider namespaces: untouched");
    for (const name of ["a1", "a2"]) assert.ok(await env.admin.get(api1, name, providerNs), `${name} stays orphaned`);
    for (const name of ["b1", "b2"]) {
      const mine = await appClient.get(api2, name, appNs);
      assert.ok(mine, `the app object ${name} stays`);
      assert.ok(!mine.metadata.finalizers?.includes(syncFinalizer), JSON.stringify(mine.metadata));
    }
    for (const id of [id1, id2]) assert.ok(await appClient.get(refs.crds, id), `the CRD ${id} stays`);

    // the konnector's objects are gone
    assert.equal(await appClient.get(bindingRef, id2), undefined);
    assert.equal(await appClient.get(refs.serviceAccounts, "konnector", ns), undefined);
    for (const role of ["klutch-bind:app:konnector", "klutch-bind:app:konnector:claims"]) {
      assert.equal(await appClient.get(refs.clusterRoles, role), undefined, role);
    }
    assert.equal(await appClient.get(refs.clusterRoleBindings, "klutch-bind:app:konnector"), undefined);
    assert.equal(await appClient.get(pullRefs.roles, "klutch-bind:app:konnector:namespace", ns), undefined);
    assert.equal(await appClient.get(refs.roleBindings, "klutch-bind:app:konnector:namespace", ns), undefined);
    assert.equal(await appClient.get(refs.roleBindings, "klutch-bind:app:konnector:claims", appNs), undefined);
    const secrets = (await appClient.list(refs.secrets, { namespace: ns })).items;
    assert.deepEqual(
      secrets.map((s) => s.metadata.name),
      [],
    );
    // the namespace stays: what else it holds cannot be proven ours, so it is the team's to delete
    const namespace = await appClient.get(refs.namespaces, ns);
    assert.equal(namespace?.metadata.deletionTimestamp, undefined, "the namespace stays");
    assert.match(run.out.join("\n"), /namespace klutch-bind stays/);
  });

  it("deleteProviderCopies deletes only what carries the binding's label, and only in the namespaces given", async () => {
    const control = (await testClusters()).control;
    const [mine, other] = await Promise.all([
      testNamespace(control, "app-unbind-copies"),
      testNamespace(control, "app-unbind-other"),
    ]);
    const put = (namespace: string, name: string, owner?: string) =>
      env.admin.create(api1, {
        apiVersion: `${api1.group}/v1`,
        kind: "PostgresqlInstance",
        metadata: { name, namespace, ...(owner ? { labels: { [labels.binding]: owner } } : {}) },
        spec: { size: "small" },
      });
    await put(mine, "ours", "uid-1");
    await put(mine, "theirs", "uid-2");
    await put(mine, "nobodys");
    await put(other, "ours-elsewhere", "uid-1");
    assert.equal(await deleteProviderCopies(env.admin, api1, "uid-1", [mine]), 1);
    const left = async (namespace: string) =>
      (await env.admin.list(api1, { namespace })).items
        .filter((o) => o.metadata.deletionTimestamp === undefined)
        .map((o) => o.metadata.name)
        .sort();
    assert.deepEqual(await left(mine), ["nobodys", "theirs"]);
    assert.deepEqual(await left(other), ["ours-elsewhere"]);
  });

  it("says what is wrong: no such binding; a binding no konnector releases times out naming the konnector", {
    timeout: 60_000,
  }, async () => {
    const missing = klutchBind(["unbind", "--app", "nothere.example.com", "--kubeconfig", app.kubeconfigPath]);
    assert.equal(await missing.exited, 1);
    assert.match(missing.out.join("\n"), /the app cluster has no APIServiceBinding nothere\.example\.com/);
    const both = klutchBind(["unbind", "--app", id1, "--delete", "--orphan", "--kubeconfig", app.kubeconfigPath]);
    assert.equal(await both.exited, 2);
    assert.match(both.out.join("\n"), /--delete and --orphan: choose one/);
    // held as a konnector holds one, with no konnector left to release it
    const name = `stuck.${api1.group}`;
    await appClient.create(bindingRef, {
      apiVersion: "klutch.anynines.com/v1alpha1",
      kind: "APIServiceBinding",
      metadata: { name, finalizers: [konnectorFinalizer] },
      spec: { kubeconfigSecretRef: { name: "gone", namespace: "default", key: "kubeconfig" } },
    });
    onFileDone(async () => {
      const left = await appClient.get(bindingRef, name);
      if (left) await appClient.mergePatch(bindingRef, name, undefined, { metadata: { finalizers: null } });
    });
    const stuck = klutchBind(["unbind", "--app", name, "--kubeconfig", app.kubeconfigPath, "--timeout", "2"]);
    assert.equal(await stuck.exited, 1);
    assert.match(
      stuck.out.join("\n"),
      /the konnector has not released APIServiceBinding stuck\..* within 2 s: is it running\? there is no Deployment klutch-bind\/klutch-bind-konnector/,
    );
  });
});
