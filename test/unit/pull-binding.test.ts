// Pull bindings (issue 26), the pure parts: the decoders of klutch-bind's objects, the konnector's
// Role rules, the heartbeat's Healthy condition, the cluster namespace's name, and the answer to an
// export request.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  decodeExportApi,
  decodeExportRequest,
  decodeHeartbeat,
  parseGoDuration,
  serviceNamespaceTarget,
} from "../../src/api/pull-binding.ts";
import type { KubeObject } from "../../src/kube/client.ts";
import { clusterNamespaceName } from "../../src/provider/provision.ts";
import { answerRequest } from "../../src/sync/pull/export-request.ts";
import { heartbeatHealth, maxRecheckMs, withConditions } from "../../src/sync/pull/heartbeat.ts";
import { clusterNamespaceRules, providerNamespaceRules } from "../../src/sync/pull/rules.ts";

function obj(kind: string, name: string, rest: Record<string, unknown> = {}): KubeObject {
  return { apiVersion: "klutch.anynines.com/v1alpha1", kind, metadata: { name, namespace: "cluster-x" }, ...rest };
}

const configmapClaim = { group: "", resource: "configmaps", version: "v1", selector: { owner: "Consumer" } };

describe("decodeExportRequest", () => {
  it("reads resources with defaults: core group, no versions, claims parsed", () => {
    const decoded = decodeExportRequest(
      obj("APIServiceExportRequest", "r", {
        spec: {
          resources: [{ group: "db.example", resource: "postgresqlinstances", permissionClaims: [configmapClaim] }],
        },
      }),
    );
    assert.equal(decoded.length, 1);
    assert.equal(decoded[0]?.group, "db.example");
    assert.deepEqual(decoded[0]?.versions, []);
    assert.equal(decoded[0]?.claims[0]?.resource, "configmaps");
    assert.equal(decodeExportRequest(obj("R", "r", { spec: { resources: [{ resource: "secrets" }] } }))[0]?.group, "");
  });

  it("refuses what is wrong, naming the field", () => {
    const cases: Array<[unknown, RegExp]> = [
      [undefined, /spec: must be an object/],
      [{}, /spec\.resources: /],
      [{ resources: [] }, /spec\.resources: must name at least one/],
      [{ resources: [{ resource: "Bad_Name" }] }, /spec\.resources\[0\]\.resource: /],
      [{ resources: [{ resource: "x", group: "*" }] }, /spec\.resources\[0\]\.group: .*wildcards/],
      [{ resources: [{ resource: "x", versions: ["v1", 3] }] }, /spec\.resources\[0\]\.versions\[1\]: /],
      [
        { resources: [{ resource: "x", permissionClaims: [{ resource: "secrets" }] }] },
        /permissionClaims\[0\]\.version/,
      ],
      [{ resources: [{ resource: "x", extra: 1 }] }, /spec\.resources\[0\]\.extra: is not a field/],
      [{ resources: [{ resource: "x" }, { resource: "x" }] }, /spec\.resources\[1\]: requests x\. twice/],
    ];
    for (const [spec, message] of cases) {
      assert.throws(() => decodeExportRequest(obj("R", "r", { spec })), { message }, JSON.stringify(spec));
    }
  });
});

describe("the other decoders", () => {
  it("parseGoDuration reads metav1.Duration text and refuses anything else", () => {
    assert.equal(parseGoDuration("5m0s", "f"), 300_000);
    assert.equal(parseGoDuration("1h30m", "f"), 5_400_000);
    assert.equal(parseGoDuration("1.5s", "f"), 1500);
    assert.equal(parseGoDuration("250ms", "f"), 250);
    assert.equal(parseGoDuration("0", "f"), 0);
    for (const bad of ["", "5", "5 m", "-1s", "1d", "m5"])
      assert.throws(() => parseGoDuration(bad, "f"), /f: must be a duration/);
  });

  it("serviceNamespaceTarget takes namespace names only", () => {
    assert.equal(serviceNamespaceTarget(obj("APIServiceNamespace", "default")), "default");
    for (const bad of ["a.b", "x".repeat(64), "-a"]) {
      assert.throws(
        () => serviceNamespaceTarget(obj("APIServiceNamespace", bad)),
        /metadata\.name: must be the app cluster namespace/,
      );
    }
  });

  it("decodeHeartbeat reads strings and refuses other types", () => {
    assert.deepEqual(decodeHeartbeat(obj("ClusterBinding", "cluster", { status: { heartbeatInterval: "5m0s" } })), {
      heartbeatInterval: "5m0s",
    });
    assert.throws(
      () => decodeHeartbeat(obj("ClusterBinding", "cluster", { status: { lastHeartbeatTime: 5 } })),
      /status\.lastHeartbeatTime: must be a string/,
    );
  });

  it("decodeExportApi reads group, plural and scope", () => {
    const spec = { group: "db.example", names: { plural: "postgresqlinstances", kind: "P" }, scope: "Namespaced" };
    assert.deepEqual(decodeExportApi(obj("APIServiceExport", "x", { spec })), {
      group: "db.example",
      resource: "postgresqlinstances",
      namespaced: true,
    });
    assert.throws(
      () => decodeExportApi(obj("APIServiceExport", "x", { spec: { ...spec, scope: "Both" } })),
      /spec\.scope: /,
    );
  });
});

describe("the konnector's rules", () => {
  it("in its cluster namespace: nothing on secrets, no wildcard, a token for its own account only", () => {
    const rules = clusterNamespaceRules();
    const flat = rules.flatMap((r) => r.resources.map((res) => ({ res, ...r })));
    assert.ok(!flat.some((r) => r.res.startsWith("secrets")));
    assert.ok(!rules.some((r) => [...r.verbs, ...r.resources, ...r.apiGroups].includes("*")));
    const token = rules.find((r) => r.resources.includes("serviceaccounts/token"));
    assert.deepEqual(token, {
      apiGroups: [""],
      resources: ["serviceaccounts/token"],
      verbs: ["create"],
      resourceNames: ["klutch-binder"],
    });
    // spec of its ClusterBinding and exports: read only
    const clusterBindings = rules.filter((r) => r.resources.includes("clusterbindings"));
    assert.deepEqual(clusterBindings.flatMap((r) => r.verbs).sort(), ["get", "list", "watch"]);
    assert.ok(!rules.some((r) => r.resources.includes("apiserviceexports") && r.verbs.includes("create")));
  });

  it("in a provider namespace: the bound APIs and their claims, seven verbs, one rule per group", () => {
    const rules = providerNamespaceRules([
      {
        group: "db.example",
        resource: "postgresqlinstances",
        namespaced: true,
        claims: [
          { group: "", resource: "secrets", version: "v1", selector: {} },
          { group: "", resource: "configmaps", version: "v1", selector: {} },
        ],
      },
      { group: "db.example", resource: "clusterthings", namespaced: false, claims: [] },
      {
        group: "mq.example",
        resource: "queues",
        namespaced: true,
        claims: [
          { group: "", resource: "namespaces", version: "v1", selector: {} },
          { group: "rbac.authorization.k8s.io", resource: "roles", version: "v1", selector: {} },
          { group: "storage.k8s.io", resource: "storageclasses", version: "v1", selector: { namespaces: [] } },
        ],
      },
    ]);
    const verbs = ["get", "list", "watch", "create", "update", "patch", "delete"];
    assert.deepEqual(rules, [
      { apiGroups: [""], resources: ["configmaps", "secrets"], verbs },
      { apiGroups: ["db.example"], resources: ["postgresqlinstances"], verbs },
      { apiGroups: ["mq.example"], resources: ["queues"], verbs },
    ]);
    assert.deepEqual(providerNamespaceRules([]), []);
  });
});

describe("heartbeat health", () => {
  const now = Date.parse("2026-01-01T12:00:00Z");
  const at = (msAgo: number) => new Date(now - msAgo).toISOString();

  it("moves from pending to healthy to timed out, and says when to look again", () => {
    assert.equal(heartbeatHealth({}, now).condition.reason, "FirstHeartbeatPending");
    const fresh = heartbeatHealth({ lastHeartbeatTime: at(1000), heartbeatInterval: "5s" }, now);
    assert.equal(fresh.condition.status, "True");
    assert.equal(fresh.recheckMs, 9001);
    const late = heartbeatHealth({ lastHeartbeatTime: at(10_001), heartbeatInterval: "5s" }, now);
    assert.equal(late.condition.status, "False");
    assert.equal(late.condition.reason, "HeartbeatTimeout");
    assert.match(late.condition.message ?? "", /nothing is deleted/);
    // twice the interval exactly is still in time
    assert.equal(
      heartbeatHealth({ lastHeartbeatTime: at(10_000), heartbeatInterval: "5s" }, now).condition.status,
      "True",
    );
  });

  it("a heartbeat without interval, from the future, or not a time is not healthy", () => {
    assert.equal(heartbeatHealth({ lastHeartbeatTime: at(0) }, now).condition.reason, "HeartbeatIntervalMissing");
    assert.equal(
      heartbeatHealth({ lastHeartbeatTime: at(0), heartbeatInterval: "soon" }, now).condition.reason,
      "HeartbeatIntervalMissing",
    );
    assert.equal(
      heartbeatHealth({ lastHeartbeatTime: at(-60_000), heartbeatInterval: "5m" }, now).condition.reason,
      "HeartbeatTimeDrift",
    );
    assert.equal(
      heartbeatHealth({ lastHeartbeatTime: "yesterday", heartbeatInterval: "5m" }, now).condition.reason,
      "HeartbeatInvalid",
    );
  });

  it("asks to look again within maxRecheckMs, however far the konnector's times reach", () => {
    const huge = heartbeatHealth({ lastHeartbeatTime: at(0), heartbeatInterval: "1000000h" }, now);
    assert.equal(huge.condition.status, "True");
    assert.equal(huge.recheckMs, maxRecheckMs);
    const ahead = heartbeatHealth({ lastHeartbeatTime: "9999-12-31T00:00:00Z", heartbeatInterval: "5m" }, now);
    assert.equal(ahead.condition.reason, "HeartbeatTimeDrift");
    assert.equal(ahead.recheckMs, maxRecheckMs);
  });

  it("withConditions keeps lastTransitionTime while a condition's status holds", () => {
    const before = [{ type: "Healthy", status: "True", reason: "A", lastTransitionTime: "2020-01-01T00:00:00.000Z" }];
    const same = withConditions(before, [{ type: "Healthy", status: "True", reason: "B" }], new Date(now));
    assert.equal(same[0]?.lastTransitionTime, "2020-01-01T00:00:00.000Z");
    const flipped = withConditions(before, [{ type: "Healthy", status: "False", reason: "C" }], new Date(now));
    assert.equal(flipped[0]?.lastTransitionTime, new Date(now).toISOString());
  });
});

describe("provisioning names", () => {
  it("the cluster namespace depends on identity and cluster id, stably", () => {
    const a = clusterNamespaceName("alice", "c1");
    assert.equal(a, clusterNamespaceName("alice", "c1"));
    assert.match(a, /^cluster-[0-9a-z]{1,13}$/);
    assert.notEqual(a, clusterNamespaceName("alice", "c2"));
    assert.notEqual(a, clusterNamespaceName("bob", "c1"));
    // the separator keeps "a#b" + "c" apart from "a" + "b#c"
    assert.notEqual(clusterNamespaceName("a#b", "c"), clusterNamespaceName("a", "bc"));
  });
});

describe("answerRequest", () => {
  const template = (claims: unknown[]): KubeObject => ({
    apiVersion: "example-backend.klutch.anynines.com/v1alpha1",
    kind: "APIServiceExportTemplate",
    metadata: { name: "t", namespace: "crossplane-system" },
    spec: { APIServiceSelector: { group: "db.example", resource: "postgresqlinstances" }, permissionClaims: claims },
  });
  const crd: KubeObject = {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: "postgresqlinstances.db.example" },
    spec: {
      group: "db.example",
      scope: "Namespaced",
      names: { plural: "postgresqlinstances", kind: "PostgresqlInstance" },
      versions: [
        { name: "v1", served: true, storage: true, schema: { openAPIV3Schema: { type: "object" } } },
        { name: "v2", served: false, storage: false, schema: { openAPIV3Schema: { type: "object" } } },
      ],
    },
  };
  const request = (resources: unknown[]) => obj("APIServiceExportRequest", "r", { spec: { resources } });
  const crdOf = async (group: string, resource: string) =>
    `${resource}.${group}` === crd.metadata.name ? crd : undefined;

  it("a templated API with a claim of its template: one export with the CRD's served versions and that claim", async () => {
    const answer = await answerRequest(
      request([{ group: "db.example", resource: "postgresqlinstances", permissionClaims: [configmapClaim] }]),
      [template([configmapClaim])],
      crdOf,
    );
    assert.equal(answer.phase, "Succeeded");
    if (answer.phase !== "Succeeded") return;
    const spec = answer.exports[0]?.spec as {
      versions: Array<{ name: string; storage: boolean }>;
      permissionClaims: unknown[];
    };
    assert.equal(answer.exports[0]?.metadata.name, "postgresqlinstances.db.example");
    assert.deepEqual(
      spec.versions.map((v) => [v.name, v.storage]),
      [["v1", true]],
    );
    assert.equal(spec.permissionClaims.length, 1);
  });

  it("fails, saying why, for an API without template, a claim not the template's, an unknown version", async () => {
    const none = await answerRequest(
      request([{ group: "db.example", resource: "redisinstances" }]),
      [template([])],
      crdOf,
    );
    assert.deepEqual(none.phase === "Failed" && [none.reason, none.message], [
      "NoTemplate",
      "no APIServiceExportTemplate exports redisinstances.db.example",
    ]);
    const wider = { ...configmapClaim, selector: {} };
    const notOffered = await answerRequest(
      request([{ group: "db.example", resource: "postgresqlinstances", permissionClaims: [wider] }]),
      [template([configmapClaim])],
      crdOf,
    );
    assert.equal(notOffered.phase === "Failed" && notOffered.reason, "ClaimNotOffered");
    const version = await answerRequest(
      request([{ group: "db.example", resource: "postgresqlinstances", versions: ["v2"] }]),
      [template([])],
      crdOf,
    );
    assert.equal(version.phase === "Failed" && version.reason, "UnknownVersion");
    const invalid = await answerRequest(obj("APIServiceExportRequest", "r", { spec: { resources: "all" } }), [], crdOf);
    assert.equal(invalid.phase === "Failed" && invalid.reason, "InvalidRequest");
  });
});
