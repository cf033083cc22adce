import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { buildExport } from "../../src/export/plan.ts";
import { builtinDefaults, parseServiceExportSpec } from "../../src/export/request.ts";
import { parseXrd, selectVersion } from "../../src/export/xrd.ts";
import { seedClaims, xrd } from "../fixtures/xrds.ts";
import { rejects } from "../support/input-errors.ts";

// the input allows claims of example.org's custom resources (backups)
const defaults = { ...builtinDefaults, allowedClaimGroups: ["example.org"] };

function plan(xrdObject: Record<string, unknown>, spec: Record<string, unknown>, name = "postgresql") {
  return buildExport(parseXrd(xrdObject), parseServiceExportSpec(name, spec), defaults);
}

describe("the template", () => {
  it("has exactly the seed's shape", () => {
    const { template } = plan(xrd({}), { xrd: "postgresqlinstances.anynines.com", permissionClaims: seedClaims });
    assert.deepEqual(template, {
      apiVersion: "example-backend.klutch.anynines.com/v1alpha1",
      kind: "APIServiceExportTemplate",
      metadata: {
        name: "postgresql",
        namespace: "crossplane-system",
        labels: { "app.kubernetes.io/managed-by": "function-klutch-bind" },
        annotations: {
          "bind.klutch.dev/export": "postgresql",
          "bind.klutch.dev/claims-role": "klutch-bind:export:postgresql:claims",
        },
      },
      spec: {
        APIServiceSelector: { group: "anynines.com", resource: "postgresqlinstances", version: "v1" },
        permissionClaims: seedClaims,
      },
    });
  });

  it("omits permissionClaims when there are none, as the seed's first example does", () => {
    const { template } = plan(xrd({}), { xrd: "postgresqlinstances.anynines.com" });
    assert.deepEqual(Object.keys(template.spec as object), ["APIServiceSelector"]);
  });

  it("goes to the requested template namespace, when the input allows it", () => {
    const { template } = buildExport(
      parseXrd(xrd({})),
      parseServiceExportSpec("postgresql", { xrd: "postgresqlinstances.anynines.com", templateNamespace: "klutch" }),
      { ...builtinDefaults, allowedTemplateNamespaces: ["crossplane-system", "klutch"] },
    );
    assert.equal(template.metadata.namespace, "klutch");
  });

  it("writes claim selectors in klutch-bind's shape: names, namespaces, labelSelectors", () => {
    const claims = [
      {
        group: "",
        resource: "secrets",
        version: "v1",
        selector: {
          owner: "Provider",
          names: ["creds", "creds-admin"],
          namespaces: ["team-a"],
          labelSelector: {
            matchLabels: { "klutch.dev/credentials": "true" },
            matchExpressions: [{ key: "tier", operator: "In", values: ["gold"] }],
          },
        },
      },
      { group: "example.org", resource: "backups", version: "v1beta1", selector: { owner: "Consumer" } },
    ];
    const { template } = plan(xrd({}), { xrd: "postgresqlinstances.anynines.com", permissionClaims: claims });
    assert.deepEqual((template.spec as { permissionClaims: unknown }).permissionClaims, [
      {
        group: "",
        resource: "secrets",
        version: "v1",
        selector: {
          owner: "Provider",
          names: ["creds", "creds-admin"],
          namespaces: ["team-a"],
          labelSelectors: [{ "klutch.dev/credentials": "true", tier: "gold" }],
        },
      },
      claims[1],
    ]);
  });
});

describe("the version", () => {
  const multi = xrd({
    versions: [
      { name: "v1alpha1", served: true },
      { name: "v1beta1", served: true, referenceable: true },
      { name: "v1", served: false },
    ],
  });

  it("defaults to the referenceable version", () => {
    assert.equal(plan(multi, { xrd: "postgresqlinstances.anynines.com" }).exported.version, "v1beta1");
  });

  it("is the requested one when it is served", () => {
    assert.equal(
      plan(multi, { xrd: "postgresqlinstances.anynines.com", version: "v1alpha1" }).exported.version,
      "v1alpha1",
    );
  });

  it("must be served", () => {
    rejects(
      () => plan(multi, { xrd: "postgresqlinstances.anynines.com", version: "v1" }),
      "spec.version",
      /served by XRD postgresqlinstances\.anynines\.com \(v1alpha1, v1beta1\), got "v1"/,
    );
    rejects(() => plan(multi, { xrd: "postgresqlinstances.anynines.com", version: "v9" }), "spec.version", /got "v9"/);
  });

  it("falls back to the only served version when none is referenceable", () => {
    const single = parseXrd(xrd({ versions: [{ name: "v2", served: true }] }));
    assert.equal(selectVersion(single, undefined, "spec.version"), "v2");
  });

  it("must be chosen when several are served and none is referenceable", () => {
    const ambiguous = parseXrd(xrd({ versions: [{ name: "v1" }, { name: "v2" }] }));
    rejects(() => selectVersion(ambiguous, undefined, "spec.version"), "spec.version", /\(v1, v2\)/);
  });
});

describe("scopes and XRD versions", () => {
  it("records a namespaced v2 XR", () => {
    assert.equal(
      plan(xrd({ scope: "Namespaced" }), { xrd: "postgresqlinstances.anynines.com" }).exported.scope,
      "Namespaced",
    );
  });

  it("records a cluster-scoped v2 XR", () => {
    assert.equal(
      plan(xrd({ scope: "Cluster" }), { xrd: "postgresqlinstances.anynines.com" }).exported.scope,
      "Cluster",
    );
  });

  it("defaults a v2 XRD to Namespaced and a v1 XRD to LegacyCluster", () => {
    assert.equal(parseXrd(xrd({})).scope, "Namespaced");
    assert.equal(parseXrd(xrd({ apiVersion: "apiextensions.crossplane.io/v1" })).scope, "LegacyCluster");
  });

  it("exports a service binding API of another group and kind", () => {
    const { exported, template } = plan(
      xrd({ group: "bindings.example.org", plural: "servicebindings", kind: "ServiceBinding" }),
      { xrd: "servicebindings.bindings.example.org" },
      "servicebindings",
    );
    assert.deepEqual(exported, {
      group: "bindings.example.org",
      resource: "servicebindings",
      version: "v1",
      kind: "ServiceBinding",
      scope: "Namespaced",
    });
    assert.equal(template.metadata.name, "servicebindings");
  });

  it("rejects what is not an XRD, naming the field", () => {
    rejects(() => parseXrd({ apiVersion: "v1", kind: "ConfigMap" }), "xrd.kind", /CompositeResourceDefinition/);
    const noPlural = xrd({});
    (noPlural.spec as { names: Record<string, unknown> }).names = { kind: "K" };
    rejects(() => parseXrd(noPlural), "xrd.spec.names.plural", /must be a string/);
    rejects(() => parseXrd(xrd({ versions: [] })), "xrd.spec.versions", /at least one version/);
    rejects(
      () => parseXrd(xrd({ scope: "Galaxy" })),
      "xrd.spec.scope",
      /"Namespaced", "Cluster", "LegacyCluster", got "Galaxy"/,
    );
  });
});

describe("RBAC for the sync", () => {
  const { clusterRole, clusterRoleBinding, claimsRole } = plan(xrd({}), {
    xrd: "postgresqlinstances.anynines.com",
    permissionClaims: [
      ...seedClaims,
      { group: "example.org", resource: "backups", version: "v1", selector: { owner: "Consumer" } },
    ],
  });

  it("grants the exported resource, its status and the CRD by name cluster-wide, and may bind the claims role", () => {
    assert.deepEqual(clusterRole.rules, [
      {
        apiGroups: ["anynines.com"],
        resources: ["postgresqlinstances"],
        verbs: ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"],
      },
      { apiGroups: ["anynines.com"], resources: ["postgresqlinstances/status"], verbs: ["get", "update", "patch"] },
      {
        apiGroups: ["rbac.authorization.k8s.io"],
        resources: ["clusterroles"],
        resourceNames: ["klutch-bind:export:postgresql:claims"],
        verbs: ["bind"],
      },
      {
        apiGroups: ["apiextensions.k8s.io"],
        resources: ["customresourcedefinitions"],
        resourceNames: ["postgresqlinstances.anynines.com"],
        verbs: ["get"],
      },
    ]);
  });

  it("grants each claimed resource only in a separate role, for the provider namespaces", () => {
    assert.equal(claimsRole?.metadata.name, "klutch-bind:export:postgresql:claims");
    assert.deepEqual(claimsRole?.rules, [
      {
        apiGroups: [""],
        resources: ["configmaps", "secrets"],
        verbs: ["get", "list", "watch", "create", "update", "patch", "delete"],
      },
      {
        apiGroups: ["example.org"],
        resources: ["backups"],
        verbs: ["get", "list", "watch", "create", "update", "patch", "delete"],
      },
    ]);
  });

  it("has no claims role and no bind permission without claims", () => {
    const bare = plan(xrd({}), { xrd: "postgresqlinstances.anynines.com" });
    assert.equal(bare.claimsRole, undefined);
    assert.equal((bare.clusterRole.rules as unknown[]).length, 3);
  });

  it("binds the role to the sync service account", () => {
    assert.deepEqual(clusterRoleBinding.roleRef, {
      apiGroup: "rbac.authorization.k8s.io",
      kind: "ClusterRole",
      name: clusterRole.metadata.name,
    });
    assert.deepEqual(clusterRoleBinding.subjects, [
      { kind: "ServiceAccount", name: "klutch-bind-sync", namespace: "crossplane-system" },
    ]);
  });

  it("names never collide between two exports and stay within Kubernetes' limits", () => {
    const a = plan(xrd({}), { xrd: "postgresqlinstances.anynines.com" }, "a");
    const b = plan(xrd({}), { xrd: "postgresqlinstances.anynines.com" }, "b");
    assert.notEqual(a.clusterRole.metadata.name, b.clusterRole.metadata.name);
    assert.equal(a.clusterRole.metadata.name, "klutch-bind:export:a");
    const long1 = plan(xrd({}), { xrd: "postgresqlinstances.anynines.com" }, `${"x".repeat(250)}1`);
    const long2 = plan(xrd({}), { xrd: "postgresqlinstances.anynines.com" }, `${"x".repeat(250)}2`);
    assert.ok(long1.clusterRole.metadata.name.length <= 253);
    assert.notEqual(long1.clusterRole.metadata.name, long2.clusterRole.metadata.name);
  });

  it("is deterministic", () => {
    const spec = { xrd: "postgresqlinstances.anynines.com", permissionClaims: seedClaims };
    assert.deepEqual(plan(xrd({}), spec), plan(xrd({}), spec));
  });
});

describe("bad export requests name the field and the value", () => {
  const cases: Array<[string, Record<string, unknown>, string, RegExp]> = [
    ["no xrd", {}, "spec.xrd", /must be a string/],
    ["xrd not a name", { xrd: "Not A Name" }, "spec.xrd", /RFC 1123 subdomain.*got "Not A Name"/],
    [
      "unknown owner",
      {
        xrd: "a.b",
        permissionClaims: [{ group: "", resource: "secrets", version: "v1", selector: { owner: "Someone" } }],
      },
      "spec.permissionClaims[0].selector.owner",
      /"Provider", "Consumer", got "Someone"/,
    ],
    [
      "claim without resource",
      { xrd: "a.b", permissionClaims: [{ group: "", version: "v1", selector: { owner: "Provider" } }] },
      "spec.permissionClaims[0].resource",
      /must be a string/,
    ],
    [
      "a field selector on a field claims do not have",
      {
        xrd: "a.b",
        permissionClaims: [
          {
            group: "",
            resource: "secrets",
            version: "v1",
            selector: { owner: "Provider", fieldSelectors: ["spec.x=1"] },
          },
        ],
      },
      "spec.permissionClaims[0].selector.fieldSelectors[0]",
      /only metadata\.name, metadata\.namespace, type can be selected on/,
    ],
    [
      "a label selector map that is not of strings",
      {
        xrd: "a.b",
        permissionClaims: [
          {
            group: "",
            resource: "secrets",
            version: "v1",
            selector: { owner: "Provider", labelSelectors: [{ a: 1 }] },
          },
        ],
      },
      "spec.permissionClaims[0].selector.labelSelectors[0].a",
      /must be a string/,
    ],
    [
      "claim without version",
      { xrd: "a.b", permissionClaims: [{ group: "", resource: "secrets", selector: { owner: "Provider" } }] },
      "spec.permissionClaims[0].version",
      /must be a string/,
    ],
    [
      "resource not plural lowercase",
      {
        xrd: "a.b",
        permissionClaims: [{ group: "", resource: "Secret", version: "v1", selector: { owner: "Provider" } }],
      },
      "spec.permissionClaims[0].resource",
      /lowercase plural.*got "Secret"/,
    ],
    [
      "claimed twice",
      { xrd: "a.b", permissionClaims: [seedClaims[0], seedClaims[1], seedClaims[0]] },
      "spec.permissionClaims[2]",
      /claims secrets\. again \(already claimed by spec\.permissionClaims\[0\]\)/,
    ],
    [
      "claims not a list",
      { xrd: "a.b", permissionClaims: { group: "" } },
      "spec.permissionClaims",
      /must be a list, got an object/,
    ],
    [
      "names not strings",
      {
        xrd: "a.b",
        permissionClaims: [
          { group: "", resource: "secrets", version: "v1", selector: { owner: "Provider", names: [1] } },
        ],
      },
      "spec.permissionClaims[0].selector.names[0]",
      /must be a string, got 1/,
    ],
    [
      "In without values",
      {
        xrd: "a.b",
        permissionClaims: [
          {
            group: "",
            resource: "secrets",
            version: "v1",
            selector: { owner: "Provider", labelSelector: { matchExpressions: [{ key: "a", operator: "In" }] } },
          },
        ],
      },
      "spec.permissionClaims[0].selector.labelSelector.matchExpressions[0].values",
      /must not be empty for In/,
    ],
    [
      "bad operator",
      {
        xrd: "a.b",
        permissionClaims: [
          {
            group: "",
            resource: "secrets",
            version: "v1",
            selector: { owner: "Provider", labelSelector: { matchExpressions: [{ key: "a", operator: "Like" }] } },
          },
        ],
      },
      "spec.permissionClaims[0].selector.labelSelector.matchExpressions[0].operator",
      /got "Like"/,
    ],
    [
      "bad template namespace",
      { xrd: "a.b", templateNamespace: "Crossplane System" },
      "spec.templateNamespace",
      /RFC 1123 label/,
    ],
  ];
  for (const [what, spec, field, message] of cases) {
    it(what, () => rejects(() => parseServiceExportSpec("x", spec), field, message));
  }

  it("a spec that is not an object", () =>
    rejects(() => parseServiceExportSpec("x", "xrd"), "spec", /must be an object, got "xrd"/));
});
