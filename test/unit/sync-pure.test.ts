import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { aggregatedRoles } from "../../src/api/aggregated-roles.ts";
import { acceptAll, consent, parseRecorded } from "../../src/api/consent.ts";
import { bindingPrefix, providerClusterScopedName, providerNamespace } from "../../src/api/naming.ts";
import { parseClaims } from "../../src/export/claims.ts";
import { describeClaim } from "../../src/export/describe.ts";
import { parseFieldSelector } from "../../src/export/field-selector.ts";
import type { ClaimSelector } from "../../src/export/types.ts";
import { ownership, refusal } from "../../src/sync/binding/cluster-owners.ts";
import { consumerCrd } from "../../src/sync/binding/consumer-crd.ts";
import { claimSelects, matchesLabels, serverFieldSelector } from "../../src/sync/mirror/selector.ts";

describe("provider names", () => {
  it("map one app namespace to one provider namespace per binding, readable and valid", () => {
    const a = providerNamespace("uid-a", "team-orders");
    const b = providerNamespace("uid-b", "team-orders");
    assert.notEqual(a, b, "two bindings never share a namespace");
    assert.match(a, /^klb-[0-9a-f]{10}-team-orders$/);
    assert.equal(a, providerNamespace("uid-a", "team-orders"), "deterministic");
  });

  it("stay within 63 characters and unique when the app namespace is long", () => {
    const long1 = providerNamespace("uid", `${"n".repeat(60)}-1`);
    const long2 = providerNamespace("uid", `${"n".repeat(60)}-2`);
    assert.ok(long1.length <= 63 && long2.length <= 63);
    assert.notEqual(long1, long2);
    assert.match(long1, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
  });

  it("prefix cluster-scoped objects per binding", () => {
    assert.equal(providerClusterScopedName("uid-a", "shared"), `${bindingPrefix("uid-a")}-shared`);
  });
});

describe("claim selectors", () => {
  it("match names with globs, app namespaces and labels", () => {
    const selector = {
      owner: "Provider" as const,
      names: ["db-*", "exact"],
      namespaces: ["team-*"],
      labelSelector: {
        matchLabels: { a: "1" },
        matchExpressions: [{ key: "tier", operator: "NotIn" as const, values: ["dev"] }],
      },
    };
    assert.equal(claimSelects(selector, { name: "db-creds", labels: { a: "1" } }, "team-x"), true);
    assert.equal(claimSelects(selector, { name: "exact", labels: { a: "1", tier: "prod" } }, "team-x"), true);
    assert.equal(claimSelects(selector, { name: "other", labels: { a: "1" } }, "team-x"), false, "name");
    assert.equal(claimSelects(selector, { name: "db-creds", labels: { a: "1" } }, "ops"), false, "namespace");
    assert.equal(claimSelects(selector, { name: "db-creds", labels: { a: "2" } }, "team-x"), false, "label");
    assert.equal(
      claimSelects(selector, { name: "db-creds", labels: { a: "1", tier: "dev" } }, "team-x"),
      false,
      "NotIn",
    );
  });

  it("selects everything when it names nothing", () => {
    assert.equal(claimSelects({ owner: "Consumer" }, { name: "anything" }, "any"), true);
  });

  it("evaluate Exists and DoesNotExist", () => {
    assert.equal(matchesLabels({ matchExpressions: [{ key: "x", operator: "Exists" }] }, { x: "" }), true);
    assert.equal(matchesLabels({ matchExpressions: [{ key: "x", operator: "DoesNotExist" }] }, { x: "" }), false);
  });
});

describe("the consumer CRD", () => {
  const provider = {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: {
      name: "things.example.org",
      uid: "u",
      resourceVersion: "7",
      ownerReferences: [{ kind: "CompositeResourceDefinition" }],
    },
    spec: {
      group: "example.org",
      names: { plural: "things", kind: "Thing" },
      scope: "Namespaced",
      conversion: { strategy: "Webhook", webhook: { clientConfig: { url: "https://provider.internal" } } },
      versions: [
        { name: "v1alpha1", served: false, storage: false, schema: { openAPIV3Schema: { type: "object" } } },
        {
          name: "v1beta1",
          served: true,
          storage: false,
          schema: { openAPIV3Schema: { type: "object" } },
          subresources: { status: {} },
        },
        {
          name: "v1",
          served: true,
          storage: true,
          schema: { openAPIV3Schema: { type: "object" } },
          additionalPrinterColumns: [{ name: "A", type: "string", jsonPath: ".a" }],
        },
      ],
    },
    status: { acceptedNames: {} },
  };

  it("keeps every served version with schema, subresources and columns; no webhook, no provider metadata", () => {
    const crd = consumerCrd(provider);
    const spec = crd.spec as { versions: Array<{ name: string; storage: boolean }>; conversion?: unknown };
    assert.deepEqual(
      spec.versions.map((v) => [v.name, v.storage]),
      [
        ["v1beta1", false],
        ["v1", true],
      ],
    );
    assert.equal(spec.conversion, undefined);
    assert.deepEqual(Object.keys(crd.metadata), ["name", "labels"]);
    assert.equal(crd.status, undefined);
    assert.deepEqual((spec.versions[0] as { subresources?: unknown }).subresources, { status: {} });
  });

  it("aggregates into admin, edit and view, view read-only", () => {
    const roles = aggregatedRoles("example.org", "things");
    assert.deepEqual(
      roles.map((r) => Object.keys(r.metadata.labels ?? {})[0]),
      [
        "rbac.authorization.k8s.io/aggregate-to-admin",
        "rbac.authorization.k8s.io/aggregate-to-edit",
        "rbac.authorization.k8s.io/aggregate-to-view",
      ],
    );
    const viewRules = (roles[2]?.rules ?? []) as Array<{ verbs: string[] }>;
    assert.deepEqual(viewRules[0]?.verbs, ["get", "list", "watch"]);
  });
});

describe("cluster-local objects", () => {
  it("are never claimed: each cluster's root CA configmap and service account tokens", async () => {
    const { clusterLocal } = await import("../../src/sync/mirror/claimed-objects.ts");
    const meta = (name: string) => ({ name, namespace: "n" });
    assert.equal(clusterLocal({ apiVersion: "v1", kind: "ConfigMap", metadata: meta("kube-root-ca.crt") }), true);
    assert.equal(
      clusterLocal({
        apiVersion: "v1",
        kind: "Secret",
        metadata: meta("t"),
        type: "kubernetes.io/service-account-token",
      }),
      true,
    );
    assert.equal(clusterLocal({ apiVersion: "v1", kind: "ConfigMap", metadata: meta("settings") }), false);
    assert.equal(clusterLocal({ apiVersion: "v1", kind: "Secret", metadata: meta("creds"), type: "Opaque" }), false);
  });
});

describe("ownership of an app cluster's API", () => {
  const api = "dbs.example.com";
  const view = (key: string, uid: string, clusterUid?: string, exports = [api]) => ({
    key,
    uid,
    clusterUid,
    exports,
    deleting: false,
  });
  const a = view("team-a/first", "uid-a", "cluster-1");
  const b = view("team-b/second", "uid-b", "cluster-1");

  it("gives the API to the binding the app cluster names and refuses the others, naming it", () => {
    assert.deepEqual(ownership("uid-a", "cluster-1", api, [{ uid: "uid-a" }], [a, b], true), { owner: true });
    assert.deepEqual(ownership("uid-b", "cluster-1", api, [{ uid: "uid-a" }], [a, b], true), {
      owner: false,
      by: "team-a/first",
      seen: true,
    });
    // nothing named yet: the first to mark it holds it
    assert.deepEqual(ownership("uid-b", "cluster-1", api, [], [a, b], true), { owner: true });
  });

  it("never refuses for what another binding's cluster says it is", () => {
    // a's cluster reports b's kube-system uid, but b's cluster does not name a
    assert.deepEqual(ownership("uid-b", "cluster-1", api, [], [a, b], true), { owner: true });
    assert.deepEqual(ownership("uid-b", "cluster-1", api, [{ uid: "uid-b" }], [a, b], true), { owner: true });
  });

  it("does not wait for another binding whose cluster is not known yet", () => {
    const unknown = view("team-a/hanging", "uid-h");
    assert.deepEqual(ownership("uid-b", "cluster-1", api, [], [unknown, b], true), { owner: true });
    // named, though: it holds the API whatever its cluster (it marked this one)
    assert.deepEqual(ownership("uid-b", "cluster-1", api, [{ uid: "uid-h" }], [unknown, b], true), {
      owner: false,
      by: "team-a/hanging",
      seen: true,
    });
  });

  it("lets a mark go when its binding is gone, deleted, no longer exports the API or binds another cluster", () => {
    assert.deepEqual(ownership("uid-b", "cluster-1", api, [{ uid: "uid-gone" }], [a, b], true), { owner: true });
    assert.deepEqual(ownership("uid-b", "cluster-1", api, [{ uid: "uid-a" }], [{ ...a, deleting: true }, b], true), {
      owner: true,
    });
    const otherApi = view("team-a/first", "uid-a", "cluster-1", ["caches.example.com"]);
    assert.deepEqual(ownership("uid-b", "cluster-1", api, [{ uid: "uid-a" }], [otherApi, b], true), { owner: true });
    const moved = view("team-a/first", "uid-a", "cluster-2");
    assert.deepEqual(ownership("uid-b", "cluster-1", api, [{ uid: "uid-a" }], [moved, b], true), { owner: true });
  });

  it("in a sync of one namespace, respects a mark naming a binding it cannot see", () => {
    const mark = { uid: "uid-x", key: "bind.klutch.dev/team-x/other" };
    assert.deepEqual(ownership("uid-b", "cluster-1", api, [mark], [b], false), {
      owner: false,
      by: "bind.klutch.dev/team-x/other",
      seen: false,
    });
    assert.deepEqual(ownership("uid-b", "cluster-1", api, [mark], [b], true), { owner: true });
    const text = refusal({ owner: false, by: mark.key, seen: false }, api, (k) => k);
    assert.match(
      text,
      /outside the namespace this sync serves: if it is gone, remove the label bind\.klutch\.dev\/binding/,
    );
  });

  it("takes the first live binding among those the objects' labels name", () => {
    assert.deepEqual(ownership("uid-b", "cluster-1", api, [{ uid: "uid-gone" }, { uid: "uid-a" }], [a, b], true), {
      owner: false,
      by: "team-a/first",
      seen: true,
    });
  });
});

describe("per-claim consent", () => {
  const secrets = { group: "", resource: "secrets", version: "v1", selector: { owner: "Provider" as const } };
  const configMaps = { group: "", resource: "configmaps", version: "v1", selector: { owner: "Consumer" as const } };

  it("syncs a template's claim only as it was accepted", () => {
    assert.deepEqual(consent([secrets], acceptAll([secrets])), { accepted: [secrets], pending: [], rejected: [] });
    // the template grew: the new claim waits
    assert.deepEqual(consent([secrets, configMaps], acceptAll([secrets])), {
      accepted: [secrets],
      pending: [configMaps],
      rejected: [],
    });
    // the template widened an accepted claim: it waits too
    const wider = { ...secrets, selector: { ...secrets.selector, namespaces: ["*"] } };
    assert.deepEqual(consent([wider], acceptAll([secrets])).pending, [wider]);
    assert.deepEqual(consent([secrets], [{ ...secrets, state: "Rejected" }]).rejected, [secrets]);
  });

  it("decodes what a binding recorded, naming the field of a broken entry", () => {
    assert.equal(parseRecorded(undefined, "spec.exports[0].permissionClaims"), undefined);
    assert.deepEqual(parseRecorded([{ ...secrets, state: "Accepted" }], "f"), [{ ...secrets, state: "Accepted" }]);
    assert.throws(
      () => parseRecorded([{ ...secrets, state: "Maybe" }], "f"),
      /f\[0\]\.state: must be "Accepted" or "Rejected"/,
    );
    assert.throws(() => parseRecorded("all", "f"), /f: must be a list/);
  });
});

describe("klutch-bind's selectors", () => {
  const owner = "Provider" as const;

  it("labelSelectors: an object matching any one map is selected, nothing else", () => {
    const selector: ClaimSelector = { owner, labelSelectors: [{ app: "db", tier: "gold" }, { shared: "yes" }] };
    assert.equal(claimSelects(selector, { name: "a", labels: { app: "db", tier: "gold", x: "1" } }, "ns"), true);
    assert.equal(claimSelects(selector, { name: "b", labels: { shared: "yes" } }, "ns"), true);
    assert.equal(claimSelects(selector, { name: "c", labels: { app: "db" } }, "ns"), false);
    assert.equal(claimSelects(selector, { name: "d" }, "ns"), false);
  });

  it("fieldSelectors: every selector, every term; the namespace is the app namespace", () => {
    const selector = {
      owner,
      fieldSelectors: ["type=kubernetes.io/tls", "metadata.name!=old,metadata.namespace==team-a"],
    };
    assert.equal(claimSelects(selector, { name: "cert", type: "kubernetes.io/tls" }, "team-a"), true);
    assert.equal(claimSelects(selector, { name: "old", type: "kubernetes.io/tls" }, "team-a"), false);
    assert.equal(claimSelects(selector, { name: "cert", type: "Opaque" }, "team-a"), false);
    assert.equal(claimSelects(selector, { name: "cert", type: "kubernetes.io/tls" }, "team-b"), false);
    assert.equal(serverFieldSelector(selector), "metadata.name!=old");
    assert.equal(serverFieldSelector({ owner }), undefined);
  });

  it("refuses field selectors it cannot apply exactly, naming the field", () => {
    assert.throws(() => parseFieldSelector("status.phase=Running", "f"), /f: selects on status\.phase/);
    assert.throws(() => parseFieldSelector("metadata.name", "f"), /f: must be field=value/);
    assert.throws(() => parseFieldSelector(" ", "f"), /f: must not be empty/);
  });
});

describe("claims in words", () => {
  it("say what klutch-bind's selectors select", () => {
    assert.equal(
      describeClaim({
        group: "",
        resource: "secrets",
        version: "v1",
        selector: { owner: "Provider", labelSelectors: [{ a: "1", b: "2" }, { c: "3" }], fieldSelectors: ["type=x"] },
      }),
      "writes secrets labelled a=1 and b=2 or c=3, where type=x into your namespaces (the provider's copies; your edits are reverted)",
    );
  });
});

describe("claims read no wider than written", () => {
  const claim = (selector: Record<string, unknown>, resource = "secrets") =>
    parseClaims([{ group: "", resource, version: "v1", selector: { owner: "Provider", ...selector } }], "c")[0];

  it("keeps a __proto__ label key, so the map does not become empty and select everything", () => {
    const parsed = claim({ labelSelectors: [JSON.parse('{"__proto__": "x"}')] });
    assert.ok(parsed);
    assert.equal(claimSelects(parsed.selector, { name: "a", labels: {} }, "ns"), false);
  });

  it("refuses a field selector value with = in it, and type on anything but secrets", () => {
    assert.throws(() => claim({ fieldSelectors: ["metadata.name=a=b"] }), /must be field=value/);
    assert.throws(
      () => claim({ fieldSelectors: ["type=x"] }, "configmaps"),
      /selects on type, which only secrets have/,
    );
    assert.ok(claim({ fieldSelectors: ["type=x"] }));
  });
});
