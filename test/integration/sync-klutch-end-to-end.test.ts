// klutch-bind's objects exactly as its users write them, end to end on real API servers: a
// hand-written template (a Provider-owned secrets claim with labelSelectors), a plain kubeconfig
// Secret and a klutch.anynines.com AppClusterBinding without any of our additions, served by a sync
// run with --kubeconfig-secrets same-namespace.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { parse } from "yaml";
import { providerNamespace } from "../../src/api/naming.ts";
import { refs } from "../../src/api/resources.ts";
import type { KubeObject } from "../../src/kube/client.ts";
import { conditionOf } from "../../src/kube/conditions.ts";
import { testNamespace, uniqueSuffix } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";
import { type SyncEnv, syncEnv } from "../support/sync-env.ts";

/** YAML as a klutch-bind user writes it, GROUP and NAMESPACE filled in. */
function manifest(text: string, vars: Record<string, string>): KubeObject {
  return parse(text.replace(/\b(GROUP|NAMESPACE)\b/g, (v) => vars[v] ?? v)) as KubeObject;
}

const templateYaml = `
apiVersion: example-backend.klutch.anynines.com/v1alpha1
kind: APIServiceExportTemplate
metadata:
  name: postgresqlinstances
  namespace: NAMESPACE
spec:
  APIServiceSelector:
    group: GROUP
    resource: postgresqlinstances
    version: v1
  permissionClaims:
    - resource: secrets
      version: v1
      selector:
        owner: Provider
        labelSelectors:
          - example.com/role: credentials
`;

const secretYaml = `
apiVersion: v1
kind: Secret
metadata:
  name: team-orders-kubeconfig
  namespace: NAMESPACE
type: Opaque
stringData:
  kubeconfig: ""
`;

const bindingYaml = `
apiVersion: klutch.anynines.com/v1alpha1
kind: AppClusterBinding
metadata:
  name: team-orders
  namespace: NAMESPACE
spec:
  kubeconfigSecretRef:
    name: team-orders-kubeconfig
    namespace: NAMESPACE
    key: kubeconfig
  apiExports:
    - group: GROUP
      resource: postgresqlinstances
`;

function providerSecret(namespace: string, name: string, labels: Record<string, string>): KubeObject {
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name, namespace, labels },
    data: { password: Buffer.from(`${name}-password`).toString("base64") },
  };
}

describe("klutch-bind's template and AppClusterBinding, unchanged, end to end", () => {
  let env: SyncEnv;
  let vars: Record<string, string>;

  before(async () => {
    env = await syncEnv({ resyncMs: 500, kubeconfigSecrets: "same-namespace" });
    vars = { GROUP: env.ref.group, NAMESPACE: env.bindingNamespace };
  });

  it("binds the API, syncs spec up and status down, and copies only the selected claimed Secrets", async () => {
    await env.controlClient.create(refs.templates, manifest(templateYaml, vars));
    const secret = manifest(secretYaml, vars);
    await env.controlClient.create(refs.secrets, { ...secret, stringData: { kubeconfig: env.appKubeconfig } });
    const binding = await env.controlClient.create(refs.klutchBindings, manifest(bindingYaml, vars));

    await eventually(
      "SecretValid and Ready",
      async () => {
        const read = await env.controlClient.get(refs.klutchBindings, "team-orders", env.bindingNamespace);
        assert.equal(conditionOf(read, "SecretValid")?.status, "True", JSON.stringify(read?.status));
        assert.equal(conditionOf(read, "Ready")?.status, "True", JSON.stringify(read?.status));
      },
      60_000,
    );
    // the binding recorded none: the template's claim is accepted once, as klutch-bind accepts it, and recorded
    const recorded = await env.controlClient.get(refs.klutchBindings, "team-orders", env.bindingNamespace);
    const apiExports = ((recorded?.spec ?? {}) as { apiExports?: Array<{ permissionClaims?: unknown[] }> }).apiExports;
    assert.deepEqual(
      apiExports?.[0]?.permissionClaims?.map((c) => [
        (c as { resource: string }).resource,
        (c as { state: string }).state,
      ]),
      [["secrets", "Accepted"]],
    );
    // the bound API is served in the app cluster
    const crdName = `postgresqlinstances.${env.ref.group}`;
    await eventually("API in the app cluster", async () => assert.ok(await env.appClient.get(refs.crds, crdName)));

    // an app object goes up
    const appNs = `orders-${uniqueSuffix()}`;
    await env.appObject(appNs, "db", "m");
    const pns = providerNamespace(binding.metadata.uid ?? "", appNs);
    let copy: KubeObject | undefined;
    await eventually("spec up", async () => {
      copy = await env.controlClient.get(env.ref, "db", pns);
      assert.deepEqual(copy?.spec, { size: "m" });
    });

    // its status comes down
    const status = { endpoint: "db.orders:5432", conditions: [{ type: "Ready", status: "True", reason: "Available" }] };
    await env.controlClient.updateStatus(env.ref, { ...(copy as KubeObject), status });
    await eventually("status down", async () =>
      assert.deepEqual((await env.appClient.get(env.ref, "db", appNs))?.status, status),
    );

    // claimed Secrets: the unselected ones first, so they had their chance before the selected arrive
    for (const s of [
      providerSecret(pns, "internal-token", { "example.com/role": "internal" }),
      providerSecret(pns, "unlabelled", {}),
      providerSecret(pns, "db-credentials", { "example.com/role": "credentials" }),
    ]) {
      await env.controlClient.create(refs.secrets, s);
    }
    await eventually("the selected Secret arrives", async () => {
      const arrived = await env.appClient.get(refs.secrets, "db-credentials", appNs);
      const password = (arrived?.data as Record<string, string> | undefined)?.password ?? "";
      assert.equal(Buffer.from(password, "base64").toString(), "db-credentials-password");
    });
    await sleep(2500); // several resyncs of the binding
    for (const name of ["internal-token", "unlabelled"]) {
      assert.equal(await env.appClient.get(refs.secrets, name, appNs), undefined, `${name} is not selected`);
    }
    // a Secret labelled later is selected then
    const later = await env.controlClient.get(refs.secrets, "unlabelled", pns);
    await env.controlClient.update(refs.secrets, {
      ...(later as KubeObject),
      metadata: { ...(later as KubeObject).metadata, labels: { "example.com/role": "credentials" } },
    });
    await eventually("labelled later, it arrives", async () =>
      assert.ok(await env.appClient.get(refs.secrets, "unlabelled", appNs)),
    );
    assert.equal(await env.appClient.get(refs.secrets, "internal-token", appNs), undefined);
    const read = await env.controlClient.get(refs.klutchBindings, "team-orders", env.bindingNamespace);
    assert.equal(conditionOf(read, "Ready")?.status, "True");
    // the plain Secret is the user's: the sync marks nothing on it
    const kept = await env.controlClient.get(refs.secrets, "team-orders-kubeconfig", env.bindingNamespace);
    assert.equal(kept?.metadata.labels, undefined);
    assert.equal(kept?.metadata.annotations, undefined);
  });

  it("refuses an unmarked Secret of another namespace, even with same-namespace", async () => {
    const elsewhere = await testNamespace(env.control, "klutch-secrets");
    const secret = manifest(secretYaml, { ...vars, NAMESPACE: elsewhere });
    await env.controlClient.create(refs.secrets, { ...secret, stringData: { kubeconfig: env.appKubeconfig } });
    const binding = manifest(bindingYaml, vars) as KubeObject & {
      spec: { kubeconfigSecretRef: { namespace: string } };
    };
    binding.metadata.name = "elsewhere";
    binding.spec.kubeconfigSecretRef.namespace = elsewhere;
    await env.controlClient.create(refs.klutchBindings, binding);
    await eventually("SecretValid=False", async () => {
      const read = await env.controlClient.get(refs.klutchBindings, "elsewhere", env.bindingNamespace);
      const valid = conditionOf(read, "SecretValid");
      assert.equal(valid?.status, "False", JSON.stringify(read?.status));
      assert.equal(valid?.reason, "KubeconfigNotMarked");
      assert.match(
        valid?.message ?? "",
        new RegExp(
          `secret ${elsewhere}/team-orders-kubeconfig is not a klutch-bind kubeconfig Secret: label it app\\.kubernetes\\.io/managed-by=klutch-bind and annotate it bind\\.klutch\\.dev/kubeconfig-for=klutch\\.anynines\\.com/${env.bindingNamespace}/elsewhere`,
        ),
      );
      assert.match(valid?.message ?? "", /must be marked, also with --kubeconfig-secrets same-namespace/);
      assert.equal(conditionOf(read, "Ready")?.status, "False");
    });
  });
});
