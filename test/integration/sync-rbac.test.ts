// The sync as it runs in production: a service account holding only the static RBAC of
// deploy/control-plane plus what the function composed for the export. Everything works, and it
// cannot read a secret outside its provider namespaces.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { providerNamespace } from "../../src/api/naming.ts";
import { refs } from "../../src/api/resources.ts";
import { composedKeys } from "../../src/function/composed-keys.ts";
import { runExportFunction } from "../../src/function/export-function.ts";
import { KubeClient, type KubeObject } from "../../src/kube/client.ts";
import { conditionOf } from "../../src/kube/conditions.ts";
import { xrd } from "../fixtures/xrds.ts";
import { accountKubeconfig, serviceAccount } from "../support/accounts.ts";
import { kubeConfig, onFileDone, uniqueSuffix } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";
import { desiredJson, request } from "../support/function-client.ts";
import { apply, readManifests } from "../support/manifests.ts";
import { stopProcess, testSyncFlags } from "../support/processes.ts";
import { syncEnv } from "../support/sync-env.ts";
import { repoRoot } from "../support/tools.ts";

describe("the sync with least privilege", () => {
  it("works with only the static RBAC and the function's, and reads no secret outside its namespaces", async () => {
    const env = await syncEnv({ inProcess: false });
    const suffix = uniqueSuffix();
    const account = `sync-${suffix}`;
    const ns = env.bindingNamespace;
    const sa = await serviceAccount(env.controlClient, ns, account);

    // static RBAC from deploy/, bound to this test's account
    const statics = readManifests("deploy/control-plane/sync-rbac.yaml");
    const clusterRole = statics.find((o) => o.kind === "ClusterRole");
    const kubeconfigRole = statics.find((o) => o.kind === "Role");
    assert.ok(clusterRole && kubeconfigRole);
    const subject = { kind: "ServiceAccount", name: account, namespace: ns };
    await apply(env.control, [
      clusterRole,
      { ...kubeconfigRole, metadata: { ...kubeconfigRole.metadata, namespace: ns } },
      {
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "ClusterRoleBinding",
        metadata: { name: `klutch-bind:sync:${suffix}` },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "klutch-bind:sync" },
        subjects: [subject],
      },
      {
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "RoleBinding",
        metadata: { name: "klutch-bind:sync-kubeconfigs", namespace: ns },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: kubeconfigRole.metadata?.name ?? "" },
        subjects: [subject],
      },
    ] as never);

    // what the function composes for this export: template, roles, binding to the account
    const exportName = `export-${suffix}`;
    const rsp = await runExportFunction(
      request({
        xr: {
          apiVersion: "bind.klutch.dev/v1alpha1",
          kind: "ServiceExport",
          metadata: { name: exportName },
          spec: {
            xrd: `postgresqlinstances.${env.ref.group}`,
            templateNamespace: ns,
            permissionClaims: [{ group: "", resource: "secrets", version: "v1", selector: { owner: "Provider" } }],
          },
        },
        required: { xrd: [xrd({ group: env.ref.group })] },
        input: {
          apiVersion: "bind.klutch.dev/v1alpha1",
          kind: "Input",
          allowedTemplateNamespaces: [ns],
          syncServiceAccount: { name: account, namespace: ns },
        },
      }),
    );
    const desired = desiredJson(rsp);
    await apply(env.control, Object.values(composedKeys).map((k) => desired[k]) as never);

    // the account's token, as the sidecar would have it
    const asSync = accountKubeconfig(kubeConfig(env.control), sa);
    const kubeconfigPath = join(mkdtempSync(join(tmpdir(), "klb-sa-")), "sync.kubeconfig");
    writeFileSync(kubeconfigPath, asSync.exportConfig());

    const sync: ChildProcess = spawn(
      process.execPath,
      [join(repoRoot, "src/cli/main.ts"), "sync", "--kubeconfig", kubeconfigPath, "--namespace", ns, ...testSyncFlags],
      { stdio: ["ignore", "ignore", "inherit"] },
    );
    onFileDone(() => stopProcess(sync));

    await env.kubeconfigSecret("least-privilege", env.appKubeconfig);
    const binding = await env.controlClient.create(refs.bindings, {
      apiVersion: "bind.klutch.dev/v1alpha1",
      kind: "AppClusterBinding",
      metadata: { name: "least-privilege", namespace: ns },
      spec: {
        kubeconfigSecretRef: { name: "least-privilege-kubeconfig" },
        exports: [{ group: env.ref.group, resource: "postgresqlinstances" }],
      },
    });
    await eventually(
      "binding ready as the service account",
      async () => {
        const read = await env.controlClient.get(refs.bindings, "least-privilege", ns);
        assert.equal(conditionOf(read, "Ready")?.status, "True", JSON.stringify(read?.status));
      },
      60_000,
    );

    const appNs = `lp-${suffix}`;
    const pns = providerNamespace(binding.metadata.uid ?? "", appNs);
    await env.appObject(appNs, "db");
    await eventually("provider copy", async () => assert.ok(await env.controlClient.get(env.ref, "db", pns)), 30_000);
    const creds: KubeObject = {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "db-creds", namespace: pns },
      stringData: { password: "p" },
    };
    await env.controlClient.create(refs.secrets, creds);
    await eventually(
      "claimed secret down",
      async () => assert.ok(await env.appClient.get(refs.secrets, "db-creds", appNs)),
      30_000,
    );

    const client = KubeClient.fromKubeconfigText(asSync.exportConfig());
    onFileDone(async () => client.close());
    await assert.rejects(
      client.get(refs.secrets, "app-kubeconfig", "kube-system"),
      (err: unknown) => (err as { code?: number }).code === 403,
    );
    await assert.rejects(
      client.list(refs.secrets, { namespace: "default" }),
      (err: unknown) => (err as { code?: number }).code === 403,
    );
    await assert.rejects(
      client.list(refs.secrets),
      (err: unknown) => (err as { code?: number }).code === 403,
      "no cluster-wide secret list",
    );
    assert.ok(
      await client.get(refs.secrets, "db-creds", pns),
      "but reads the claimed secret in its provider namespace",
    );
  });
});
