// The local clusters enforce RBAC and run the controllers a real cluster runs: service account
// tokens, namespace deletion, garbage collection, cluster role aggregation.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { AuthenticationV1Api, CoreV1Api, KubeConfig, RbacAuthorizationV1Api } from "@kubernetes/client-node";
import type { Cluster } from "../support/cluster.ts";
import { kubeConfig, testClusters, testNamespace, uniqueSuffix } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";
import { kubeRequest } from "../support/rest.ts";

function statusOf(err: unknown): number | undefined {
  return typeof err === "object" && err !== null && "code" in err && typeof err.code === "number"
    ? err.code
    : undefined;
}

describe("a local cluster behaves like a real one", () => {
  let cluster: Cluster;
  let core: CoreV1Api;
  let rbac: RbacAuthorizationV1Api;
  let namespace: string;

  before(async () => {
    cluster = (await testClusters()).app;
    const kc = kubeConfig(cluster);
    core = kc.makeApiClient(CoreV1Api);
    rbac = kc.makeApiClient(RbacAuthorizationV1Api);
    namespace = await testNamespace(cluster);
  });

  it("denies a service account without a role (403) and allows it once a Role grants it", async () => {
    await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: "reader" } } });
    const token = await core.createNamespacedServiceAccountToken({
      namespace,
      name: "reader",
      body: { spec: { audiences: [], expirationSeconds: 600 } },
    });
    const jwt = token.status?.token;
    assert.ok(jwt, "TokenRequest returned a token");

    const admin = kubeConfig(cluster);
    const reviewed = await admin
      .makeApiClient(AuthenticationV1Api)
      .createTokenReview({ body: { spec: { token: jwt } } });
    assert.equal(reviewed.status?.user?.username, `system:serviceaccount:${namespace}:reader`);

    const asReader = new KubeConfig();
    const current = admin.getCurrentCluster();
    assert.ok(current);
    asReader.loadFromOptions({
      clusters: [current],
      users: [{ name: "reader", token: jwt }],
      contexts: [{ name: "reader", cluster: current.name, user: "reader" }],
      currentContext: "reader",
    });
    const path = `/api/v1/namespaces/${namespace}/configmaps`;
    const denied = await kubeRequest(asReader, "GET", path);
    assert.equal(denied.status, 403, denied.body);

    await rbac.createNamespacedRole({
      namespace,
      body: {
        metadata: { name: "read-configmaps" },
        rules: [{ apiGroups: [""], resources: ["configmaps"], verbs: ["get", "list"] }],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace,
      body: {
        metadata: { name: "reader-reads-configmaps" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "read-configmaps" },
        subjects: [{ kind: "ServiceAccount", name: "reader", namespace }],
      },
    });
    await eventually("the role takes effect", async () => {
      const allowed = await kubeRequest(asReader, "GET", path);
      assert.equal(allowed.status, 200, allowed.body);
    });
    const otherNamespace = await kubeRequest(asReader, "GET", "/api/v1/namespaces/default/configmaps");
    assert.equal(otherNamespace.status, 403, "the Role grants nothing outside its namespace");
  });

  it("completes a namespace deletion, removing what it held", async () => {
    const name = `doomed-${uniqueSuffix()}`;
    await core.createNamespace({ body: { metadata: { name } } });
    await core.createNamespacedConfigMap({ namespace: name, body: { metadata: { name: "cm" }, data: { a: "b" } } });
    await core.deleteNamespace({ name });
    await eventually(
      "namespace gone",
      async () => {
        const status = await core.readNamespace({ name }).then(
          () => 200,
          (err: unknown) => statusOf(err),
        );
        assert.equal(status, 404);
      },
      60_000,
    );
  });

  it("garbage-collects dependents when their owner is deleted", async () => {
    const owner = await core.createNamespacedConfigMap({ namespace, body: { metadata: { name: "owner" } } });
    assert.ok(owner.metadata?.uid);
    await core.createNamespacedConfigMap({
      namespace,
      body: {
        metadata: {
          name: "dependent",
          ownerReferences: [{ apiVersion: "v1", kind: "ConfigMap", name: "owner", uid: owner.metadata.uid }],
        },
      },
    });
    await core.deleteNamespacedConfigMap({ namespace, name: "owner", propagationPolicy: "Background" });
    await eventually(
      "dependent collected",
      async () => {
        const status = await core.readNamespacedConfigMap({ namespace, name: "dependent" }).then(
          () => 200,
          (err: unknown) => statusOf(err),
        );
        assert.equal(status, 404);
      },
      60_000,
    );
  });

  it("aggregates a labelled ClusterRole into edit", async () => {
    const name = `aggregate-to-edit-${uniqueSuffix()}`;
    const resource = `widgets${uniqueSuffix()}`;
    await rbac.createClusterRole({
      body: {
        metadata: { name, labels: { "rbac.authorization.k8s.io/aggregate-to-edit": "true" } },
        rules: [{ apiGroups: ["klutch-bind.test"], resources: [resource], verbs: ["get", "create"] }],
      },
    });
    try {
      await eventually("rule aggregated into edit", async () => {
        const edit = await rbac.readClusterRole({ name: "edit" });
        assert.ok(
          edit.rules?.some((r) => r.resources?.includes(resource)),
          "edit holds the aggregated rule",
        );
      });
    } finally {
      await rbac.deleteClusterRole({ name });
    }
  });
});
