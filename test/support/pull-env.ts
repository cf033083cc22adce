// A control plane ready for pull bindings (issue 26), shared by the tests of both sides
// (pull-binding.test.ts, konnector.test.ts): the klutch CRDs, an exported API of the test's own
// group with its template (claims as given), the sync running with --pull-bindings as a
// ServiceAccount holding the shipped RBAC and what the composition function grants per export, and
// a way to provision a binding and get its account's client.
import assert from "node:assert/strict";
import { pino } from "pino";
import { clusterBindingName, pullLabels, pullRefs } from "../../src/api/pull-binding.ts";
import { refs } from "../../src/api/resources.ts";
import { claimsRoleAnnotation } from "../../src/export/plan.ts";
import { KubeClient, type KubeObject, type ResourceRef } from "../../src/kube/client.ts";
import { conditionOf, isEstablished } from "../../src/kube/conditions.ts";
import { readKubeconfigFile } from "../../src/kube/kubeconfig.ts";
import { controlPlaneAddress, type Provisioned, provisionPullBinding } from "../../src/provider/provision.ts";
import { type RunningSync, type SyncOptions, startSync } from "../../src/sync/manager.ts";
import { grant, serviceAccount } from "./accounts.ts";
import type { Cluster } from "./cluster.ts";
import { clientConfig, onFileDone, testClusters, testNamespace, uniqueSuffix } from "./clusters.ts";
import { eventually } from "./eventually.ts";
import { applyCrds, readManifests } from "./manifests.ts";
import { exportedCrd } from "./sync-env.ts";

/** on a cluster namespace provisioned here: the tenant namespace of the env (its sync serves only those) */
const envLabel = "klutch-bind.test/pull-env";

export function tokenKubeconfig(server: string, caData: string, token: string): string {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "c", cluster: { server, "certificate-authority-data": caData } }],
    users: [{ name: "u", user: { token } }],
    contexts: [{ name: "c", context: { cluster: "c", user: "u" } }],
    "current-context": "c",
  });
}

export const pullCrdFiles = [
  "clusterbinding",
  "apiserviceexport",
  "apiserviceexportrequest",
  "apiservicenamespace",
].map((k) => `deploy/control-plane/klutch-${k}-crd.yaml`);

export type PullBinding = { identity: string; provisioned: Provisioned; client: KubeClient; ns: string; uid: string };

export type PullEnv = {
  /** the control plane's cluster */
  control: Cluster;
  admin: KubeClient;
  /** the sync's namespace, holding the template */
  tenantNs: string;
  /** the exported API (postgresqlinstances of the test's own group) */
  api: ResourceRef;
  /** with secondApi: a second exported API (postgresqlinstances of a second group of the test's), the same claims */
  api2: ResourceRef | undefined;
  sync: RunningSync;
  /** requests the sync has sent to the control plane so far */
  syncRequests: () => number;
  /** the control plane's CA bundle (base64), as its kubeconfig holds it */
  caData: () => Promise<string>;
  /** provisions a binding of identity and cluster id; its account's client closes when the file is done */
  bind: (identity: string, clusterId: string, tokenSeconds?: number) => Promise<PullBinding>;
  /** the binding account asks for a provider namespace for app namespace name */
  askNamespace: (binding: PullBinding, name: string) => Promise<KubeObject>;
  /** waits for the APIServiceNamespace name to be granted; its provider namespace */
  grantedNamespace: (binding: PullBinding, name: string, timeoutMs?: number) => Promise<string>;
  /** has this env's sync serve a cluster namespace made elsewhere (by the web page): it serves only those it is told of */
  serve: (clusterNamespace: string) => Promise<void>;
};

export type PullEnvOptions = {
  prefix: string;
  /** the template's permission claims */
  claims: unknown[];
  /** the rules of the claims role the composition function would compose for them */
  claimsRules: unknown[];
  /** more options of the sync */
  sync?: (tenantNs: string) => Partial<SyncOptions>;
  /** a control plane of the file's own (e.g. one trusting an OpenID provider); the shared one by default */
  control?: Cluster;
  /** export a second API too (env.api2) */
  secondApi?: boolean;
};

const verbs = ["get", "list", "watch", "create", "update", "patch", "delete"];

export async function pullEnv(options: PullEnvOptions): Promise<PullEnv> {
  const control = options.control ?? (await testClusters()).control;
  const admin = KubeClient.fromConfig(clientConfig(control));
  onFileDone(async () => admin.close());
  const caData = async () => {
    const address = controlPlaneAddress(readKubeconfigFile(control.kubeconfigPath));
    assert.equal(address.server, admin.server);
    assert.ok(address.certificateAuthorityData, "the control plane's kubeconfig holds its CA");
    return address.certificateAuthorityData;
  };
  await applyCrds(control, "deploy/control-plane/apiserviceexporttemplate-crd.yaml");
  for (const file of pullCrdFiles) await applyCrds(control, file);
  const tenantNs = await testNamespace(control, options.prefix);
  const group = `${options.prefix}${uniqueSuffix()}.klutch-bind.test`;
  const api = { group, version: "v1", resource: "postgresqlinstances", namespaced: true };
  const group2 = `b${group}`;
  const api2 = options.secondApi ? { ...api, group: group2 } : undefined;
  const crd = exportedCrd(group, "Namespaced");
  const crds = [crd, ...(api2 ? [exportedCrd(group2, "Namespaced")] : [])];
  for (const made of crds) {
    await admin.apply(refs.crds, made, "test", true);
    onFileDone(() => admin.delete(refs.crds, made.metadata.name));
    await eventually("the exported CRD is served", async () =>
      assert.ok(isEstablished(await admin.get(refs.crds, made.metadata.name))),
    );
  }
  // the sync runs as a ServiceAccount with the shipped RBAC (sync-rbac.yaml) and what the
  // composition function grants per export (src/export/plan.ts), so the Roles it writes pass the
  // API server's escalation check only with rights that RBAC really gives it
  const claimsRole = `${tenantNs}:claims`;
  const exportRole = `${tenantNs}:export`;
  const syncRole = `${tenantNs}:sync`;
  const shipped = readManifests("deploy/control-plane/sync-rbac.yaml").find((o) => o.kind === "ClusterRole") as
    | (KubeObject & { rules: unknown[] })
    | undefined;
  assert.ok(shipped);
  const clusterRole = (name: string, rules: unknown[]): KubeObject => ({
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRole",
    metadata: { name },
    rules,
  });
  await admin.apply(refs.clusterRoles, clusterRole(syncRole, shipped.rules), "test");
  await admin.apply(
    refs.clusterRoles,
    clusterRole(exportRole, [
      ...[group, ...(api2 ? [group2] : [])].flatMap((g) => [
        { apiGroups: [g], resources: ["postgresqlinstances"], verbs: [...verbs, "deletecollection"] },
        { apiGroups: [g], resources: ["postgresqlinstances/status"], verbs: ["get", "update", "patch"] },
      ]),
      {
        apiGroups: ["rbac.authorization.k8s.io"],
        resources: ["clusterroles"],
        resourceNames: [claimsRole],
        verbs: ["bind"],
      },
      {
        apiGroups: ["apiextensions.k8s.io"],
        resources: ["customresourcedefinitions"],
        resourceNames: crds.map((c) => c.metadata.name),
        verbs: ["get"],
      },
    ]),
    "test",
  );
  await admin.apply(refs.clusterRoles, clusterRole(claimsRole, options.claimsRules), "test");
  const account = await serviceAccount(admin, tenantNs, "pull-sync");
  for (const role of [syncRole, exportRole]) {
    await grant(admin, account, role);
    const binding = `${account.namespace}-${account.name}-${role.replaceAll(":", "-")}`;
    onFileDone(() => admin.delete(refs.clusterRoleBindings, binding));
  }
  for (const role of [syncRole, exportRole, claimsRole]) onFileDone(() => admin.delete(refs.clusterRoles, role));
  for (const [i, exported] of [group, ...(api2 ? [group2] : [])].entries()) {
    await admin.create(refs.templates, {
      apiVersion: "example-backend.klutch.anynines.com/v1alpha1",
      kind: "APIServiceExportTemplate",
      metadata: {
        name: i === 0 ? "postgresqlinstances" : `postgresqlinstances-${i + 1}`,
        namespace: tenantNs,
        annotations: { [claimsRoleAnnotation]: claimsRole },
      },
      spec: {
        APIServiceSelector: { group: exported, resource: "postgresqlinstances", version: "v1" },
        permissionClaims: options.claims,
      },
    });
  }
  const asSync = KubeClient.fromKubeconfigText(tokenKubeconfig(admin.server, await caData(), account.token));
  onFileDone(async () => asSync.close());
  const sync = await startSync({
    control: asSync,
    logger: pino({ level: process.env.KLB_TEST_LOG ?? "silent" }),
    workers: 1,
    namespace: tenantNs,
    templateNamespaces: [tenantNs],
    pullBindings: true,
    // this file's cluster namespaces only: another file's sync serves its own
    pullBindingSelector: `${envLabel}=${tenantNs}`,
    ...options.sync?.(tenantNs),
  });
  onFileDone(() => sync.stop());

  const made: PullBinding[] = [];
  onFileDone(async () => {
    for (const binding of made) {
      const owned = await admin.list(refs.namespaces, { labelSelector: `${pullLabels.ownedBy}=${binding.ns}` });
      for (const ns of owned.items) await admin.delete(refs.namespaces, ns.metadata.name);
      await admin.delete(refs.namespaces, binding.ns);
    }
  });
  const serve = async (clusterNamespace: string) => {
    await admin.mergePatch(refs.namespaces, clusterNamespace, undefined, {
      metadata: { labels: { [envLabel]: tenantNs } },
    });
  };
  const bind = async (identity: string, clusterId: string, tokenSeconds?: number): Promise<PullBinding> => {
    const provisioned = await provisionPullBinding(admin, {
      identity,
      clusterId,
      certificateAuthorityData: await caData(),
      ...(tokenSeconds ? { tokenSeconds } : {}),
    });
    await serve(provisioned.namespace);
    const client = KubeClient.fromKubeconfigText(provisioned.kubeconfig);
    onFileDone(async () => client.close());
    const binding = await admin.get(pullRefs.clusterBindings, clusterBindingName, provisioned.namespace);
    assert.ok(binding?.metadata.uid);
    const bound = { identity, provisioned, client, ns: provisioned.namespace, uid: binding.metadata.uid };
    made.push(bound);
    return bound;
  };
  const askNamespace = (binding: PullBinding, name: string) =>
    binding.client.create(pullRefs.serviceNamespaces, {
      apiVersion: "klutch.anynines.com/v1alpha1",
      kind: "APIServiceNamespace",
      metadata: { name, namespace: binding.ns },
      spec: {},
    });
  const grantedNamespace = async (binding: PullBinding, name: string, timeoutMs?: number) => {
    let namespace = "";
    await eventually(
      `APIServiceNamespace ${name} has its namespace`,
      async () => {
        const sn = await binding.client.get(pullRefs.serviceNamespaces, name, binding.ns);
        const status = sn?.status as { namespace?: string } | undefined;
        assert.equal(conditionOf(sn, "Ready")?.status, "True", JSON.stringify(sn?.status));
        assert.ok(status?.namespace);
        namespace = status.namespace;
      },
      timeoutMs,
    );
    return namespace;
  };
  const syncRequests = () => asSync.requests;
  return {
    control,
    admin,
    tenantNs,
    api,
    api2,
    sync,
    syncRequests,
    caData,
    bind,
    askNamespace,
    grantedNamespace,
    serve,
  };
}
