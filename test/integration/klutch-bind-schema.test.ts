// The function's templates are valid klutch-bind templates: a server-side dry run with
// fieldValidation=Strict against klutch-bind's own CRD (test/fixtures/klutch-bind-template-crd.yaml,
// on an API server of its own, since it has the name of ours) accepts them. And our CRD is a strict
// superset: a template using every klutch-bind field is accepted by both and stored the same.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { composedKeys } from "../../src/function/composed-keys.ts";
import { runExportFunction } from "../../src/function/export-function.ts";
import { KubeApiError, KubeClient } from "../../src/kube/client.ts";
import { xrd } from "../fixtures/xrds.ts";
import type { Cluster } from "../support/cluster.ts";
import { clientConfig, freshCluster, testClusters, testNamespace, uniqueSuffix } from "../support/clusters.ts";
import { desiredJson, request } from "../support/function-client.ts";
import { applyCrds } from "../support/manifests.ts";

type Template = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; [key: string]: unknown };
  spec: { permissionClaims?: Array<Record<string, unknown>>; [key: string]: unknown };
};

const templatesPath = (namespace: string) =>
  `/apis/example-backend.klutch.anynines.com/v1alpha1/namespaces/${namespace}/apiserviceexporttemplates`;

/** A strict server-side dry-run create: what the API server would store, nothing stored. */
function dryRunCreate(client: KubeClient, template: Template): Promise<Template> {
  return client.request<Template>("POST", templatesPath(template.metadata.namespace), {
    body: template,
    query: { dryRun: "All", fieldValidation: "Strict" },
  });
}

async function refused(promise: Promise<unknown>, code: number, message: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof KubeApiError, String(err));
    assert.equal(err.code, code, err.message);
    assert.match(err.message, message);
    return true;
  });
}

/** The template the function composes for a ServiceExport with these claims. */
function rendered(name: string, permissionClaims: unknown[]): Template {
  const rsp = runExportFunction(
    request({
      xr: {
        apiVersion: "bind.klutch.dev/v1alpha1",
        kind: "ServiceExport",
        metadata: { name },
        spec: { xrd: "postgresqlinstances.anynines.com", permissionClaims },
      },
      required: { xrd: [xrd({})] },
      // the platform team allows its own backups API, as a claim of a custom resource must be
      input: { apiVersion: "bind.klutch.dev/v1alpha1", kind: "Input", allowedClaimGroups: ["example.org"] },
    }),
  );
  const template = desiredJson(rsp)[composedKeys.template];
  assert.ok(template, `no template composed: ${JSON.stringify(rsp.results)}`);
  return template as unknown as Template;
}

/** ServiceExports a platform team writes, in this project's claim shape and in klutch-bind's. */
const serviceExports: Record<string, unknown[]> = {
  "seed-claims": [
    { group: "", resource: "secrets", version: "v1", selector: { owner: "Provider" } },
    { group: "", resource: "configmaps", version: "v1", selector: { owner: "Provider" } },
  ],
  "names-namespaces-labels": [
    {
      group: "",
      resource: "secrets",
      version: "v1",
      selector: {
        owner: "Provider",
        names: ["db-credentials", "db-admin"],
        namespaces: ["team-orders"],
        labelSelector: { matchLabels: { "klutch.test/credentials": "true" } },
      },
    },
    {
      group: "",
      resource: "configmaps",
      version: "v1",
      selector: { owner: "Consumer", names: ["*"], labelSelector: { matchLabels: { app: "orders", tier: "db" } } },
    },
    { group: "example.org", resource: "backups", version: "v1beta1", selector: { owner: "Consumer" } },
  ],
  "in-expressions": [
    {
      group: "",
      resource: "secrets",
      version: "v1",
      selector: {
        owner: "Provider",
        labelSelector: {
          matchLabels: { app: "db" },
          matchExpressions: [{ key: "tier", operator: "In", values: ["gold", "silver"] }],
        },
      },
    },
  ],
  "klutch-bind-behaviour": [
    {
      group: "",
      resource: "configmaps",
      version: "v1",
      selector: { owner: "Consumer", names: ["app-settings"] },
      required: true,
      read: { labels: [{ pattern: "app.kubernetes.io/*" }] },
      update: { fields: ["data.plan"] },
      onConflict: { recreateWhenConsumerSideDeleted: false },
      autoAdopt: true,
    },
  ],
  "klutch-bind-selectors": [
    {
      group: "",
      resource: "secrets",
      version: "v1",
      selector: {
        owner: "Provider",
        namespaces: ["*"],
        labelSelectors: [{ app: "db" }, { app: "cache" }],
        fieldSelectors: ["type=kubernetes.io/basic-auth"],
      },
    },
  ],
};

/** A template using every field of klutch-bind's schema. */
function everyField(namespace: string): Template {
  const patterns = (...p: string[]) => p.map((pattern) => ({ pattern }));
  return {
    apiVersion: "example-backend.klutch.anynines.com/v1alpha1",
    kind: "APIServiceExportTemplate",
    metadata: { name: `every-field-${uniqueSuffix()}`, namespace },
    spec: {
      APIServiceSelector: { group: "anynines.com", resource: "postgresqlinstances", version: "v1" },
      permissionClaims: [
        {
          group: "",
          resource: "secrets",
          version: "v1",
          required: true,
          selector: {
            names: ["db-credentials", "*"],
            namespaces: ["team-orders"],
            labelSelectors: [{ app: "db" }, { app: "cache", tier: "gold" }],
            fieldSelectors: ["type=kubernetes.io/basic-auth", "metadata.name!=old"],
            owner: "Provider",
          },
          read: {
            labels: patterns("app.kubernetes.io/*"),
            labelsOnProviderOwnedObjects: patterns("team"),
            annotations: patterns("example.org/*"),
            overrideAnnotations: patterns("example.org/override"),
          },
          create: { replaceExisting: true },
          update: {
            fields: ["spec.size"],
            preserving: ["data.custom"],
            alwaysRecreate: false,
            labels: patterns("*"),
            labelsOnConsumerOwnedObjects: patterns("owner"),
            annotations: patterns("example.org/*"),
            annotationsOnConsumerOwnedObjects: patterns("note"),
          },
          onConflict: { recreateWhenConsumerSideDeleted: false },
          autoAdopt: false,
          autoDonate: true,
        },
        // the smallest claim: group, selector, read and onConflict come from the defaults
        { resource: "configmaps", version: "v1" },
        // cluster-scoped: namespaces explicitly empty
        {
          group: "example.org",
          resource: "clusterthings",
          version: "v1",
          selector: { namespaces: [], owner: "Consumer" },
          autoAdopt: true,
        },
      ],
    },
  };
}

describe("templates against klutch-bind's schema (strict server-side dry run)", () => {
  let klutch: KubeClient;
  before(async () => {
    const cluster: Cluster = await freshCluster("klutch-schema");
    await applyCrds(cluster, "test/fixtures/klutch-bind-template-crd.yaml");
    klutch = KubeClient.fromConfig(clientConfig(cluster));
    await klutch.request("POST", "/api/v1/namespaces", {
      body: { apiVersion: "v1", kind: "Namespace", metadata: { name: "crossplane-system" } },
    });
  });

  for (const [name, claims] of Object.entries(serviceExports)) {
    it(`accepts the function's template for ServiceExport ${name}, nothing dropped`, async () => {
      const template = rendered(name, claims);
      const stored = await dryRunCreate(klutch, template);
      const written = template.spec.permissionClaims ?? [];
      const kept = stored.spec.permissionClaims ?? [];
      assert.equal(kept.length, written.length);
      written.forEach((claim, i) => {
        // what klutch-bind stores is what was written plus its defaults
        const { selector, ...rest } = claim as { selector: Record<string, unknown> };
        const storedClaim = kept[i] as { selector: Record<string, unknown> };
        assert.deepEqual(storedClaim, {
          read: {},
          onConflict: { recreateWhenConsumerSideDeleted: true },
          ...rest,
          selector: { names: ["*"], namespaces: ["*"], ...selector },
        });
      });
      assert.deepEqual(stored.spec.APIServiceSelector, template.spec.APIServiceSelector);
    });
  }

  it("writes matchLabels as labelSelectors, which klutch-bind knows; labelSelector it would refuse", async () => {
    const template = rendered("labels", serviceExports["names-namespaces-labels"] ?? []);
    const [first] = template.spec.permissionClaims ?? [];
    assert.deepEqual((first?.selector as { labelSelectors?: unknown } | undefined)?.labelSelectors, [
      { "klutch.test/credentials": "true" },
    ]);
    // what the function wrote before: klutch-bind's strict schema refuses the unknown field
    const old = structuredClone(template);
    old.metadata.name = "labels-old";
    const oldClaim = old.spec.permissionClaims?.[0] as { selector: Record<string, unknown> };
    delete oldClaim.selector.labelSelectors;
    oldClaim.selector.labelSelector = { matchLabels: { "klutch.test/credentials": "true" } };
    await refused(
      dryRunCreate(klutch, old),
      400,
      /unknown field "spec\.permissionClaims\[0\]\.selector\.labelSelector"/,
    );
  });

  it("accepts a template using every klutch-bind field, and enforces autoAdopt/autoDonate exclusion", async () => {
    const stored = await dryRunCreate(klutch, everyField("crossplane-system"));
    const [, smallest] = stored.spec.permissionClaims ?? [];
    assert.deepEqual(smallest, {
      group: "",
      resource: "configmaps",
      version: "v1",
      selector: { names: ["*"], namespaces: ["*"] },
      read: {},
      onConflict: { recreateWhenConsumerSideDeleted: true },
    });
    const both = everyField("crossplane-system");
    const claim = both.spec.permissionClaims?.[0] as Record<string, unknown>;
    claim.autoAdopt = true;
    await refused(dryRunCreate(klutch, both), 422, /donate and adopt are mutually exclusive/);
  });

  describe("our CRD (deploy/) is a strict superset", () => {
    let ours: KubeClient;
    let namespace: string;
    before(async () => {
      const { control } = await testClusters();
      await applyCrds(control, "deploy/control-plane/apiserviceexporttemplate-crd.yaml");
      ours = KubeClient.fromConfig(clientConfig(control));
      namespace = await testNamespace(control, "klutch-schema");
    });

    it("accepts the template using every klutch-bind field and stores it exactly as klutch-bind does", async () => {
      const template = everyField(namespace);
      const here = await dryRunCreate(ours, template);
      const there = await dryRunCreate(klutch, {
        ...template,
        metadata: { ...template.metadata, namespace: "crossplane-system" },
      });
      assert.deepEqual(here.spec, there.spec);
      const both = everyField(namespace);
      (both.spec.permissionClaims?.[0] as Record<string, unknown>).autoAdopt = true;
      await refused(dryRunCreate(ours, both), 422, /donate and adopt are mutually exclusive/);
    });

    it("accepts the function's templates as klutch-bind stores them", async () => {
      for (const [name, claims] of Object.entries(serviceExports)) {
        const template = rendered(name, claims);
        const here = await dryRunCreate(ours, { ...template, metadata: { ...template.metadata, namespace } });
        const there = await dryRunCreate(klutch, template);
        assert.deepEqual(here.spec, there.spec, name);
      }
    });

    it("accepts this project's extension (labelSelector, globs), which klutch-bind's strict schema refuses", async () => {
      const extended: Template = {
        apiVersion: "example-backend.klutch.anynines.com/v1alpha1",
        kind: "APIServiceExportTemplate",
        metadata: { name: "extended", namespace },
        spec: {
          APIServiceSelector: { group: "anynines.com", resource: "postgresqlinstances" },
          permissionClaims: [
            {
              group: "",
              resource: "secrets",
              version: "v1",
              selector: {
                owner: "Provider",
                names: ["db-*"],
                labelSelector: {
                  matchLabels: { app: "db" },
                  matchExpressions: [{ key: "tier", operator: "NotIn", values: ["dev"] }],
                },
              },
            },
          ],
        },
      };
      const here = await dryRunCreate(ours, extended);
      assert.deepEqual(
        (here.spec.permissionClaims?.[0]?.selector as { labelSelector?: unknown } | undefined)?.labelSelector,
        {
          matchLabels: { app: "db" },
          matchExpressions: [{ key: "tier", operator: "NotIn", values: ["dev"] }],
        },
      );
      await refused(
        dryRunCreate(klutch, { ...extended, metadata: { ...extended.metadata, namespace: "crossplane-system" } }),
        400,
        /unknown field "spec\.permissionClaims\[0\]\.selector\.labelSelector"/,
      );
    });
  });
});
