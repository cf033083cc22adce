// What `klutch-bind bind URL` installs in the app cluster (pure) and how it reads the page's answer.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { appObjects, konnectorRules, kubeconfigSecretName } from "../../src/app-bind/app-objects.ts";
import { decodeBindingResponse } from "../../src/app-bind/binding-response.ts";
import type { KubeObject } from "../../src/kube/client.ts";

const configmaps = { group: "", resource: "configmaps", version: "v1", selector: { owner: "Consumer" as const } };
const secrets = { group: "", resource: "secrets", version: "v1", selector: { owner: "Provider" as const } };
const pg = {
  name: "postgresqlinstances.anynines.com",
  group: "anynines.com",
  resource: "postgresqlinstances",
  claims: [configmaps],
};
const redis = {
  name: "redisinstances.anynines.com",
  group: "anynines.com",
  resource: "redisinstances",
  claims: [secrets],
};
const crd: KubeObject = {
  apiVersion: "apiextensions.k8s.io/v1",
  kind: "CustomResourceDefinition",
  metadata: { name: "x" },
};
const kubeconfig = (namespace?: string, extra = "") => `apiVersion: v1
kind: Config
clusters: [{name: cp, cluster: {server: "https://cp.example:6443"}}]
users: [{name: b, user: {token: t${extra}}}]
contexts: [{name: c, context: {cluster: cp, user: b${namespace ? `, namespace: ${namespace}` : ""}}}]
current-context: c
`;

type Rule = { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] };

describe("the app cluster's objects of bind URL", () => {
  const objects = appObjects(
    {
      namespace: "klutch-bind",
      image: "img:1",
      binding: redis,
      served: [pg, redis],
      kubeconfig: { text: "k", server: "https://cp.example:6443", clusterNamespace: "cluster-abc" },
    },
    crd,
  );
  const byKind = (kind: string) => objects.filter((o) => o.kind === kind);

  it("grant the konnector no wildcard, the CRDs and aggregated roles of every served API by name", () => {
    const roles = byKind("ClusterRole") as Array<KubeObject & { rules: Rule[] }>;
    for (const rule of roles.flatMap((r) => r.rules)) {
      for (const list of [rule.apiGroups, rule.resources, rule.verbs])
        assert.ok(!list.includes("*"), JSON.stringify(rule));
    }
    const main = roles.find((r) => r.metadata.name === "klutch-bind:app:konnector");
    const crds = main?.rules.find((r) => r.resources.includes("customresourcedefinitions"));
    assert.deepEqual(crds?.resourceNames, [pg.name, redis.name]);
    assert.ok(main?.rules.some((r) => r.resources.includes("apiservicebindings/status") && r.verbs.includes("update")));
    assert.ok(!main?.rules.some((r) => r.resources.includes("secrets")), "no Secret cluster-wide");
  });

  it("put the accepted claims of every served API in the claims role only: bound per app namespace", () => {
    const claims = byKind("ClusterRole").find((r) => r.metadata.name === "klutch-bind:app:konnector:claims") as
      | (KubeObject & { rules: Rule[] })
      | undefined;
    assert.deepEqual(
      claims?.rules.map((r) => [r.resources[0], r.verbs.includes("create")]),
      [
        ["configmaps", false],
        ["secrets", true],
      ],
    );
    const bindings = byKind("ClusterRoleBinding");
    assert.deepEqual(
      bindings.map((b) => (b as KubeObject & { roleRef: { name: string } }).roleRef.name),
      ["klutch-bind:app:konnector"],
      "the claims role is bound by the konnector per namespace, never cluster-wide",
    );
  });

  it("record the binding as klutch-bind does, its Secret per control plane and cluster namespace", () => {
    const [binding] = byKind("APIServiceBinding");
    const spec = binding?.spec as { kubeconfigSecretRef: { name: string }; permissionClaims: unknown[] };
    assert.equal(binding?.metadata.name, redis.name);
    assert.deepEqual(spec.permissionClaims, [{ ...secrets, state: "Accepted" }]);
    assert.equal(spec.kubeconfigSecretRef.name, kubeconfigSecretName("https://cp.example:6443", "cluster-abc"));
    assert.notEqual(kubeconfigSecretName("https://cp.example:6443", "cluster-abd"), spec.kubeconfigSecretRef.name);
    const [deployment] = byKind("Deployment");
    assert.ok(deployment);
    const container = (
      deployment.spec as { template: { spec: { containers: Array<{ args: string[]; securityContext: unknown }> } } }
    ).template.spec.containers[0];
    assert.ok(container?.args.includes("--app-account=klutch-bind/konnector"));
    assert.deepEqual(container?.securityContext, {
      runAsNonRoot: true,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
    });
  });

  it("a konnector serving nothing has no rights on any API", () => {
    const rules = konnectorRules({ namespace: "klutch-bind", name: "konnector" }, []);
    assert.ok(!rules.some((r) => r.resources.includes("customresourcedefinitions")));
  });
});

describe("the page's answer to bind URL", () => {
  const response = (over: Record<string, unknown> = {}) => ({
    apiVersion: "klutch.anynines.com/v1alpha1",
    kind: "BindingResponse",
    authentication: { oauth2CodeGrant: { sid: "S1", id: "dana" } },
    kubeconfig: Buffer.from(kubeconfig("cluster-abc")).toString("base64"),
    requests: [
      {
        apiVersion: "klutch.anynines.com/v1alpha1",
        kind: "APIServiceExportRequest",
        metadata: { name: pg.name },
        spec: {
          resources: [
            {
              group: "anynines.com",
              resource: "postgresqlinstances",
              versions: ["v1"],
              permissionClaims: [configmaps],
            },
          ],
        },
      },
    ],
    ...over,
  });

  it("gives the API, its accepted claims and the control plane's kubeconfig with its cluster namespace", () => {
    const answer = decodeBindingResponse(response(), "S1", false);
    assert.deepEqual(answer.api, {
      group: "anynines.com",
      resource: "postgresqlinstances",
      version: "v1",
      claims: [configmaps],
    });
    assert.equal(answer.kubeconfig?.clusterNamespace, "cluster-abc");
    assert.equal(answer.kubeconfig?.server, "https://cp.example:6443");
    assert.equal(answer.identity, "dana");
  });

  it("refuses another session's answer, another group, several requests, and kubeconfigs that cannot serve", () => {
    const cases: Array<[unknown, RegExp]> = [
      [response(), /sid: is not this bind's session/],
      [response({ apiVersion: "kube-bind.io/v1alpha1" }), /apiVersion: must be klutch\.anynines\.com/],
      [response({ requests: [] }), /requests: must hold one/],
      [response({ kubeconfig: Buffer.from(kubeconfig()).toString("base64") }), /names no namespace/],
      [response({ kubeconfig: "" }), /kubeconfig: is empty/],
      [
        response({
          kubeconfig: Buffer.from(kubeconfig("ns").replace("token: t", "token-file: /etc/passwd")).toString("base64"),
        }),
        /reads its token from a file/,
      ],
    ];
    for (const [i, [value, why]] of cases.entries()) {
      assert.throws(() => decodeBindingResponse(value, i === 0 ? "S2" : "S1", false), why, String(i));
    }
    assert.equal(
      decodeBindingResponse(response({ kubeconfig: "" }), "S1", true).kubeconfig,
      undefined,
      "a dry run has none",
    );
  });
});
