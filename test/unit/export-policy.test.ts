// Exports cannot escalate: wildcards, subresources and non-DNS names are refused; claims are an
// allow list (secrets, configmaps, custom resources of groups the input allows, and what it names),
// other template namespaces only when the input allows them; the composed roles never grant more
// than the named resources.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { InputError } from "../../src/export/errors.ts";
import { claimsAnnotation, claimsField, exportLabel } from "../../src/export/labelled.ts";
import { buildExport } from "../../src/export/plan.ts";
import { claimRefusal, deniedClaims, escalation, escalationWarning } from "../../src/export/policy.ts";
import { builtinDefaults, parseServiceExportSpec } from "../../src/export/request.ts";
import type { ExportDefaults, Manifest } from "../../src/export/types.ts";
import { parseXrd } from "../../src/export/xrd.ts";
import { runExportFunction } from "../../src/function/export-function.ts";
import { parseInput } from "../../src/function/input.ts";
import { watchedResourceRequirement } from "../../src/function/operation.ts";
import { seedClaims, xrd } from "../fixtures/xrds.ts";
import { request } from "../support/function-client.ts";
import { random } from "../support/fuzz.ts";
import { rejects } from "../support/input-errors.ts";

const target = "postgresqlinstances.anynines.com";

function claim(group: string, resource: string, version = "v1") {
  return { group, resource, version, selector: { owner: "Provider" } };
}

function plan(spec: Record<string, unknown>, defaults: ExportDefaults = builtinDefaults, xrdObject = xrd({})) {
  return buildExport(parseXrd(xrdObject), parseServiceExportSpec("x", spec), defaults);
}

describe("claims name one resource by DNS names", () => {
  const cases: Array<[string, Record<string, unknown>, string, RegExp]> = [
    ["a wildcard group", claim("*", "secrets"), "group", /one API group: wildcards are refused, got "\*"/],
    ["a group with a wildcard", claim("*.k8s.io", "secrets"), "group", /wildcards are refused/],
    ["a group in capitals", claim("Apps", "deployments"), "group", /RFC 1123 subdomain, e\.g\. apps, got "Apps"/],
    ["a group with an empty label", claim("example..org", "things"), "group", /RFC 1123 subdomain/],
    ["a wildcard resource", claim("", "*"), "resource", /one resource: wildcards are refused, got "\*"/],
    ["a resource glob", claim("", "secret*"), "resource", /wildcards are refused/],
    ["pods/exec", claim("", "pods/exec"), "resource", /not a subresource.*got "pods\/exec"/],
    ["a service account token", claim("", "serviceaccounts/token"), "resource", /not a subresource/],
    ["a subresource wildcard", claim("", "secrets/*"), "resource", /wildcards are refused/],
    ["a dotted resource", claim("", "secrets.v1"), "resource", /lowercase plural resource name/],
    ["a resource starting with a digit", claim("example.org", "1things"), "resource", /starting with a letter/],
    ["a wildcard version", claim("", "secrets", "*"), "version", /one version: wildcards are refused/],
    ["a version with a dot", claim("", "secrets", "v1.2"), "version", /RFC 1123 label.*got "v1\.2"/],
  ];
  for (const [what, c, part, message] of cases) {
    it(`refuses ${what}`, () =>
      rejects(
        () => parseServiceExportSpec("x", { xrd: target, permissionClaims: [c] }),
        `spec.permissionClaims[0].${part}`,
        message,
      ));
  }

  it("refuses a wildcard or odd spec.version", () => {
    rejects(() => parseServiceExportSpec("x", { xrd: target, version: "*" }), "spec.version", /wildcards/);
    rejects(() => parseServiceExportSpec("x", { xrd: target, version: "V1" }), "spec.version", /RFC 1123 label/);
  });

  it("takes the core group, a custom group, and hyphenated resources", () => {
    const request = parseServiceExportSpec("x", {
      xrd: target,
      permissionClaims: [claim("", "secrets"), claim("example.org", "backup-schedules", "v1beta1")],
    });
    assert.deepEqual(
      request.permissionClaims.map((c) => [c.group, c.resource, c.version]),
      [
        ["", "secrets", "v1"],
        ["example.org", "backup-schedules", "v1beta1"],
      ],
    );
  });
});

describe("the XRD is not trusted either", () => {
  const withNames = (group: string, plural: string) => xrd({ name: "x.example.org", group, plural });
  const cases: Array<[string, Record<string, unknown>, string, RegExp]> = [
    ["a wildcard plural", withNames("example.org", "*"), "xrd.spec.names.plural", /wildcards are refused/],
    ["a subresource plural", withNames("example.org", "things/status"), "xrd.spec.names.plural", /subresource/],
    ["a plural in capitals", withNames("example.org", "Things"), "xrd.spec.names.plural", /lowercase plural/],
    ["a wildcard group", withNames("*", "things"), "xrd.spec.group", /RFC 1123 subdomain .*got "\*"/],
    [
      "a built-in's group and plural",
      withNames("rbac.authorization.k8s.io", "clusterrolebindings"),
      "xrd.spec.group",
      /exports clusterrolebindings\.rbac\.authorization\.k8s\.io, which is escalation-prone/,
    ],
    ["a denied group", withNames("apps", "widgets"), "xrd.spec.group", /escalation-prone/],
    [
      "a wildcard version name",
      xrd({ versions: [{ name: "*", served: true }] }),
      "xrd.spec.versions[0].name",
      /wildcards/,
    ],
  ];
  for (const [what, object, field, message] of cases) {
    it(`refuses ${what}`, () => rejects(() => parseXrd(object), field, message));
  }
});

describe("escalation-prone claims", () => {
  const denied: Array<[string, string]> = [
    ["rbac.authorization.k8s.io", "roles"],
    ["rbac.authorization.k8s.io", "clusterroles"],
    ["rbac.authorization.k8s.io", "rolebindings"],
    ["rbac.authorization.k8s.io", "clusterrolebindings"],
    ["", "serviceaccounts"],
    ["", "pods"],
    ["", "nodes"],
    ["", "namespaces"],
    ["", "persistentvolumes"],
    ["", "services"],
    ["", "endpoints"],
    ["certificates.k8s.io", "certificatesigningrequests"],
    ["admissionregistration.k8s.io", "validatingwebhookconfigurations"],
    ["admissionregistration.k8s.io", "mutatingwebhookconfigurations"],
    ["admissionregistration.k8s.io", "validatingadmissionpolicies"],
    ["admissionregistration.k8s.io", "validatingadmissionpolicybindings"],
    ["apiextensions.k8s.io", "customresourcedefinitions"],
    ["apiregistration.k8s.io", "apiservices"],
    ["apps", "deployments"],
    ["apps", "daemonsets"],
    ["apps", "statefulsets"],
    ["apps", "replicasets"],
    ["batch", "jobs"],
    ["batch", "cronjobs"],
    ["storage.k8s.io", "storageclasses"],
    ["coordination.k8s.io", "leases"],
    ["authentication.k8s.io", "tokenreviews"],
    ["authorization.k8s.io", "subjectaccessreviews"],
    ["pkg.crossplane.io", "providers"],
    ["bind.klutch.dev", "appclusterbindings"],
    ["example-backend.klutch.anynines.com", "apiserviceexporttemplates"],
    ["networking.k8s.io", "ingresses"],
    ["gateway.networking.k8s.io", "httproutes"],
    ["gateway.networking.k8s.io", "gateways"],
    ["policy", "poddisruptionbudgets"],
  ];
  for (const [group, resource] of denied) {
    const id = group === "" ? resource : `${resource}.${group}`;
    it(`refuses ${id} unless the input allows it by name`, () => {
      const spec = { xrd: target, permissionClaims: [seedClaims[0], claim(group, resource)] };
      rejects(
        () => plan(spec),
        "spec.permissionClaims[1]",
        new RegExp(`claims ${id.replaceAll(".", "\\.")}, which is escalation-prone .*allowedClaims`),
      );
      const allowed = plan(spec, { ...builtinDefaults, allowedClaims: [{ group, resource }] });
      const rules = allowed.claimsRole?.rules as Array<{ apiGroups: string[]; resources: string[] }>;
      assert.ok(rules.some((r) => r.apiGroups[0] === group && r.resources.includes(resource)));
    });
  }

  it("allows secrets and configmaps by default, and nothing else", () => {
    for (const [group, resource] of [
      ["", "secrets"],
      ["", "configmaps"],
    ] as const) {
      assert.equal(claimRefusal({ group, resource }, builtinDefaults), undefined, resource);
    }
    assert.doesNotThrow(() => plan({ xrd: target, permissionClaims: seedClaims }));
    // what no deny list named: a core resource, a Kubernetes API of tomorrow, a custom resource
    for (const [group, resource, id] of [
      ["", "resourcequotas", "resourcequotas"],
      ["future.k8s.io", "widgets", "widgets\\.future\\.k8s\\.io"],
      ["example.org", "backups", "backups\\.example\\.org"],
    ] as const) {
      rejects(
        () => plan({ xrd: target, permissionClaims: [claim(group, resource)] }),
        "spec.permissionClaims[0]",
        new RegExp(`: claims ${id}, which is not allowed by default .*allowedClaims to export it$`),
      );
      const named = plan(
        { xrd: target, permissionClaims: [claim(group, resource)] },
        { ...builtinDefaults, allowedClaims: [{ group, resource }] },
      );
      assert.ok(named.claimsRole, `${resource}.${group} allowed by name`);
    }
  });

  it("allows the custom resources of a group the input allows, never a Kubernetes API by its group", () => {
    const withGroups = { ...builtinDefaults, allowedClaimGroups: ["example.org", "aws.m.upbound.io"] };
    for (const [group, resource] of [
      ["example.org", "backups"],
      ["example.org", "backup-schedules"],
      ["aws.m.upbound.io", "buckets"],
    ] as const) {
      assert.equal(claimRefusal({ group, resource }, withGroups), undefined, `${resource}.${group}`);
    }
    rejects(
      () => plan({ xrd: target, permissionClaims: [claim("example.org", "backups")] }),
      "spec.permissionClaims[0]",
      /claims backups\.example\.org, which is not allowed by default \(only secrets and configmaps are\); the function input must list its group "example\.org" in allowedClaimGroups or \{group: "example\.org", resource: backups\} in allowedClaims/,
    );
    assert.ok(plan({ xrd: target, permissionClaims: [claim("example.org", "backups")] }, withGroups).claimsRole);
    // even were such a group in the list (the input refuses it), built-in APIs need their name
    const builtins = {
      ...builtinDefaults,
      allowedClaimGroups: ["gateway.networking.k8s.io", "policy", "", "snapshot.storage.k8s.io"],
    };
    for (const [group, resource] of [
      ["gateway.networking.k8s.io", "httproutes"],
      ["policy", "poddisruptionbudgets"],
      ["", "services"],
      ["snapshot.storage.k8s.io", "volumesnapshots"],
    ] as const) {
      assert.match(String(claimRefusal({ group, resource }, builtins)), /allowedClaims/, `${resource}.${group}`);
    }
  });

  it("refuses namespaced Crossplane provider configs even in an allowed group, unless named", () => {
    const defaults = { ...builtinDefaults, allowedClaimGroups: ["aws.m.upbound.io", "kubernetes.m.crossplane.io"] };
    for (const [group, resource] of [
      ["aws.m.upbound.io", "providerconfigs"],
      ["aws.m.upbound.io", "providerconfigusages"],
      ["kubernetes.m.crossplane.io", "providerconfigs"],
      ["kubernetes.m.crossplane.io", "clusterproviderconfigs"],
    ] as const) {
      const id = `${resource}.${group}`;
      rejects(
        () => plan({ xrd: target, permissionClaims: [claim(group, resource)] }, defaults),
        "spec.permissionClaims[0]",
        new RegExp(
          `claims ${id.replaceAll(".", "\\.")}, which is escalation-prone \\(provider configs choose the credentials a Crossplane provider uses\\); .*allowedClaims`,
        ),
      );
      assert.ok(
        plan(
          { xrd: target, permissionClaims: [claim(group, resource)] },
          { ...defaults, allowedClaims: [{ group, resource }] },
        ),
      );
    }
  });

  it("allows exactly what is named: roles do not allow clusterrolebindings", () => {
    const defaults = { ...builtinDefaults, allowedClaims: [{ group: "rbac.authorization.k8s.io", resource: "roles" }] };
    rejects(
      () =>
        plan({ xrd: target, permissionClaims: [claim("rbac.authorization.k8s.io", "clusterrolebindings")] }, defaults),
      "spec.permissionClaims[0]",
      /clusterrolebindings\.rbac\.authorization\.k8s\.io/,
    );
    assert.ok(plan({ xrd: target, permissionClaims: [claim("rbac.authorization.k8s.io", "roles")] }, defaults));
  });

  it("lists a reason for every entry, and no entry twice", () => {
    const keys = deniedClaims.map((d) => `${d.group}/${d.resource ?? "*"}`);
    assert.equal(new Set(keys).size, keys.length);
    for (const d of deniedClaims) assert.ok(d.why.length > 0);
  });

  it("warns the sync's auto-export, which cannot know the input, naming each claim", () => {
    assert.equal(
      escalationWarning(
        seedClaims.map((c) => ({ ...c, selector: { owner: "Provider" } })),
        "c",
      ),
      undefined,
    );
    const text = escalationWarning(
      [
        { group: "", resource: "secrets", version: "v1", selector: { owner: "Provider" } },
        { group: "apps", resource: "deployments", version: "v1", selector: { owner: "Consumer" } },
        { group: "example.org", resource: "backups", version: "v1", selector: { owner: "Consumer" } },
        { group: "aws.m.upbound.io", resource: "providerconfigs", version: "v1", selector: { owner: "Consumer" } },
      ],
      claimsField,
    );
    assert.match(
      String(text),
      /^metadata\.annotations\["bind\.klutch\.dev\/permission-claims"\]\[1\] claims deployments\.apps \(.*\); .*\[3\] claims providerconfigs\.aws\.m\.upbound\.io \(.*\): .*allowedClaims$/,
    );
    assert.doesNotMatch(String(text), /backups/);
  });
});

describe("template namespaces", () => {
  it("takes the input's default", () => {
    assert.equal(plan({ xrd: target }).template.metadata.namespace, "crossplane-system");
  });

  it("refuses another namespace unless the input allows it", () => {
    rejects(
      () => plan({ xrd: target, templateNamespace: "kube-system" }),
      "spec.templateNamespace",
      /must be a namespace the function input allows \(allowedTemplateNamespaces: crossplane-system\), got "kube-system"/,
    );
    const input = parseInput({
      apiVersion: "bind.klutch.dev/v1alpha1",
      kind: "Input",
      templateNamespace: "klutch",
      allowedTemplateNamespaces: ["team-a"],
    });
    assert.deepEqual(input.defaults.allowedTemplateNamespaces, ["klutch", "team-a"]);
    assert.equal(
      plan({ xrd: target, templateNamespace: "team-a" }, input.defaults).template.metadata.namespace,
      "team-a",
    );
    assert.equal(plan({ xrd: target }, input.defaults).template.metadata.namespace, "klutch");
    rejects(
      () => plan({ xrd: target, templateNamespace: "crossplane-system" }, input.defaults),
      "spec.templateNamespace",
      /allowedTemplateNamespaces: klutch, team-a/,
    );
  });
});

describe("the function input's allow-lists", () => {
  const base = { apiVersion: "bind.klutch.dev/v1alpha1", kind: "Input" };

  it("default to nothing beyond the default namespace", () => {
    const input = parseInput(base);
    assert.deepEqual(input.defaults.allowedClaims, []);
    assert.deepEqual(input.defaults.allowedClaimGroups, []);
    assert.deepEqual(input.defaults.allowedTemplateNamespaces, ["crossplane-system"]);
    assert.deepEqual(parseInput(undefined).defaults.allowedTemplateNamespaces, ["crossplane-system"]);
  });

  it("name claims by group and resource", () => {
    const input = parseInput({ ...base, allowedClaims: [{ group: "", resource: "serviceaccounts" }] });
    assert.deepEqual(input.defaults.allowedClaims, [{ group: "", resource: "serviceaccounts" }]);
  });

  it("name groups of custom resources", () => {
    const input = parseInput({ ...base, allowedClaimGroups: ["example.org", "aws.m.upbound.io"] });
    assert.deepEqual(input.defaults.allowedClaimGroups, ["example.org", "aws.m.upbound.io"]);
  });

  const bad: Array<[string, Record<string, unknown>, string, RegExp]> = [
    ...(
      [
        ["", /built-in Kubernetes API group/],
        ["policy", /built-in Kubernetes API group/],
        ["apps", /built-in Kubernetes API group/],
        ["gateway.networking.k8s.io", /a Kubernetes API group/],
        ["snapshot.storage.k8s.io", /a Kubernetes API group/],
        ["metrics.kubernetes.io", /a Kubernetes API group/],
        ["pkg.crossplane.io", /Crossplane packages/],
        ["bind.klutch.dev", /this project/],
      ] as const
    ).map(([group, why]): [string, Record<string, unknown>, string, RegExp] => [
      `the group ${JSON.stringify(group)} as a group of custom resources`,
      { allowedClaimGroups: ["example.org", group] },
      "input.allowedClaimGroups[1]",
      new RegExp(`must be a group of custom resources, not .*${why.source}.*allowedClaims`),
    ]),
    ["a wildcard group", { allowedClaimGroups: ["*.example.org"] }, "input.allowedClaimGroups[0]", /wildcards/],
    [
      "a wildcard claim",
      { allowedClaims: [{ group: "*", resource: "*" }] },
      "input.allowedClaims[0].group",
      /wildcards/,
    ],
    [
      "a wildcard resource",
      { allowedClaims: [{ group: "", resource: "*" }] },
      "input.allowedClaims[0].resource",
      /wildcards/,
    ],
    [
      "a subresource",
      { allowedClaims: [{ group: "", resource: "pods/exec" }] },
      "input.allowedClaims[0].resource",
      /subresource/,
    ],
    ["a claim without group", { allowedClaims: [{ resource: "pods" }] }, "input.allowedClaims[0].group", /is required/],
    ["claims not a list", { allowedClaims: "pods" }, "input.allowedClaims", /must be a list/],
    [
      "a wildcard namespace",
      { allowedTemplateNamespaces: ["*"] },
      "input.allowedTemplateNamespaces[0]",
      /RFC 1123 label/,
    ],
  ];
  for (const [what, extra, field, message] of bad) {
    it(`refuse ${what}`, () => rejects(() => parseInput({ ...base, ...extra }), field, message));
  }
});

describe("through the function", () => {
  const xr = (spec: Record<string, unknown>) => ({
    apiVersion: "bind.klutch.dev/v1alpha1",
    kind: "ServiceExport",
    metadata: { name: "escalate" },
    spec: { xrd: target, ...spec },
  });
  const results = (rsp: ReturnType<typeof runExportFunction>) =>
    rsp.results.map((r) => [r.severity, r.reason, r.message]);

  it("a composition step gets a fatal InvalidInput result and an Exported=False condition", () => {
    const rsp = runExportFunction(
      request({
        xr: xr({ permissionClaims: [claim("rbac.authorization.k8s.io", "clusterrolebindings")] }),
        required: { xrd: [xrd({})] },
      }),
    );
    assert.equal(rsp.results.length, 1);
    assert.equal(rsp.results[0]?.severity, "SEVERITY_FATAL");
    assert.equal(rsp.results[0]?.reason, "InvalidInput");
    assert.match(String(rsp.results[0]?.message), /^spec\.permissionClaims\[0\]: claims clusterrolebindings\./);
    const exported = rsp.conditions?.find((c) => c.type === "Exported");
    assert.equal(exported?.reason, "InvalidInput");
    assert.deepEqual(rsp.desired?.resources ?? {}, {});
  });

  it("an operation step gets the same refusal, naming the annotation", () => {
    const base = xrd({});
    const watched = {
      ...base,
      metadata: {
        ...(base.metadata as object),
        labels: { [exportLabel]: "true" },
        annotations: { [claimsAnnotation]: JSON.stringify([claim("", "pods")]) },
      },
    };
    const rsp = runExportFunction(request({ required: { [watchedResourceRequirement]: [watched] } }));
    assert.deepEqual(results(rsp), [
      [
        "SEVERITY_FATAL",
        "InvalidInput",
        `${claimsField}[0]: claims pods, which is escalation-prone (pods run code with the namespace's secrets and service accounts); ` +
          'the function input must list {group: "", resource: pods} in allowedClaims to export it',
      ],
    ]);
  });
});

// A small property test: over many generated claims and XRDs, good and bad, the export either
// refuses with an InputError or composes roles that grant named resources only.
describe("the composed roles never grant more than the named resources", () => {
  // mostly names that pass, sometimes ones that must not
  const groups = [
    ["", "example.org", "apps", "rbac.authorization.k8s.io", "core"],
    ["*", "Example.org", "a..b", "x.*"],
  ];
  const resources = [
    ["secrets", "configmaps", "pods", "backups", "clusterroles", "deployments", "a-b"],
    ["*", "pods/exec", "Backups", "s*", "secrets/*"],
  ];
  const versions = [
    ["v1", "v1beta1"],
    ["*", "V1", ""],
  ];
  const xrdGroups = [
    ["anynines.com", "example.org"],
    ["*", "apps", "rbac.authorization.k8s.io", "x*.org"],
  ];
  const plurals = [
    ["postgresqlinstances", "caches"],
    ["*", "things/status", "clusterrolebindings", "Things"],
  ];
  const namespaces = [
    [undefined, "crossplane-system", "klutch"],
    ["kube-system", "*"],
  ];
  type Rule = { apiGroups?: string[]; resources?: string[]; verbs?: string[]; resourceNames?: string[] };
  const rulesOf = (role: Manifest | undefined): Rule[] => (role?.rules as Rule[] | undefined) ?? [];

  it("holds for 3000 generated exports", () => {
    let composed = 0;
    let refused = 0;
    for (let seed = 1; seed <= 3000; seed++) {
      const rng = random(seed);
      const some = <T>([good, bad]: T[][]): T => rng.pick(rng.int(12) === 0 ? (bad ?? []) : (good ?? []));
      const claims = Array.from({ length: rng.int(4) }, () => claim(some(groups), some(resources), some(versions)));
      const xrdGroup = some(xrdGroups);
      const plural = some(plurals);
      const namespace = some(namespaces);
      const allowedClaims = rng.int(2) === 0 ? [] : [{ group: some(groups), resource: some(resources) }];
      const defaults: ExportDefaults = {
        ...builtinDefaults,
        allowedClaims: allowedClaims.filter((a) => !`${a.group}${a.resource}`.includes("*")),
        allowedClaimGroups: rng.int(2) === 0 ? [] : ["example.org"],
        allowedTemplateNamespaces: ["crossplane-system", ...(rng.int(2) === 0 ? ["klutch"] : [])],
      };
      const spec = {
        xrd: `${plural}.${xrdGroup}`,
        permissionClaims: claims,
        ...(namespace === undefined ? {} : { templateNamespace: namespace }),
      };
      let result: ReturnType<typeof buildExport>;
      try {
        result = buildExport(
          parseXrd(xrd({ name: "generated.example.org", group: xrdGroup, plural })),
          parseServiceExportSpec("generated", spec),
          defaults,
        );
      } catch (err) {
        assert.ok(err instanceof InputError, `seed ${seed}: ${String(err)}`);
        refused++;
        continue;
      }
      composed++;
      const why = `seed ${seed}: ${JSON.stringify({ spec, xrdGroup, plural, defaults })}`;
      const named = new Set(claims.map((c) => `${c.group}/${c.resource}`));
      for (const rule of [...rulesOf(result.clusterRole), ...rulesOf(result.claimsRole)]) {
        for (const value of [...(rule.apiGroups ?? []), ...(rule.resources ?? []), ...(rule.verbs ?? [])]) {
          assert.ok(!value.includes("*"), `${why}: ${JSON.stringify(rule)}`);
        }
        assert.ok((rule.resources ?? []).length > 0 && (rule.apiGroups ?? []).length === 1, why);
      }
      // the cluster role: the exported resource and its status, and by name the claims role and the CRD
      for (const rule of rulesOf(result.clusterRole)) {
        const [group] = rule.apiGroups ?? [];
        const resourcesOfRule = rule.resources ?? [];
        if (group === xrdGroup) {
          assert.ok(
            resourcesOfRule.every((r) => r === plural || r === `${plural}/status`),
            `${why}: ${JSON.stringify(rule)}`,
          );
          assert.ok(escalation({ group: xrdGroup, resource: plural }) === undefined, why);
        } else {
          assert.deepEqual(rule.resourceNames?.length, 1, `${why}: ${JSON.stringify(rule)}`);
          assert.ok(
            (group === "rbac.authorization.k8s.io" &&
              resourcesOfRule.join() === "clusterroles" &&
              rule.verbs?.join() === "bind" &&
              rule.resourceNames?.[0] === result.claimsRole?.metadata.name) ||
              (group === "apiextensions.k8s.io" &&
                resourcesOfRule.join() === "customresourcedefinitions" &&
                rule.verbs?.join() === "get" &&
                rule.resourceNames?.[0] === `${plural}.${xrdGroup}`),
            `${why}: ${JSON.stringify(rule)}`,
          );
        }
      }
      // the claims role: exactly the claimed resources, each allowed by default or by the input
      const granted = rulesOf(result.claimsRole).flatMap((r) =>
        (r.resources ?? []).map((res) => `${r.apiGroups?.[0]}/${res}`),
      );
      assert.deepEqual(new Set(granted), named, why);
      for (const c of claims) {
        const byDefault = c.group === "" && (c.resource === "secrets" || c.resource === "configmaps");
        const named = defaults.allowedClaims.some((a) => a.group === c.group && a.resource === c.resource);
        const byGroup = defaults.allowedClaimGroups.includes(c.group) && escalation(c) === undefined;
        assert.ok(byDefault || named || byGroup, `${why}: ${c.resource}.${c.group} granted without being allowed`);
      }
      assert.ok(defaults.allowedTemplateNamespaces.includes(result.template.metadata.namespace ?? ""), why);
    }
    // both outcomes are exercised
    assert.ok(composed > 100 && refused > 100, `composed ${composed}, refused ${refused}`);
  });
});
