// Crossplane in the loop: the real Crossplane core composes through our function, installed from
// our real package, and the sync carries the result to an app cluster. The core listens on every
// interface, so this file runs itself again in a network namespace of its own.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, openSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { providerNamespace } from "../../src/api/naming.ts";
import { refs } from "../../src/api/resources.ts";
import { listBindable, pickExports } from "../../src/bind/bindable.ts";
import { createBinding } from "../../src/bind/binding.ts";
import { decide } from "../../src/bind/claim-choice.ts";
import { exportLabel } from "../../src/export/labelled.ts";
import { runExportFunction } from "../../src/function/export-function.ts";
import { startFunctionServer } from "../../src/function/server.ts";
import { KubeClient, type KubeObject, type ResourceRef } from "../../src/kube/client.ts";
import { conditionOf } from "../../src/kube/conditions.ts";
import { type RunningSync, startSync } from "../../src/sync/manager.ts";
import { xrd } from "../fixtures/xrds.ts";
import { clientConfig, testClusters } from "../support/clusters.ts";
import {
  type CrossplaneCore,
  crossplaneNamespace,
  type InstalledFunction,
  installFunction,
  type Registry,
  startCrossplaneCore,
  startRegistry,
} from "../support/crossplane-core.ts";
import { eventually } from "../support/eventually.ts";
import { apply as applyManifests, readManifests } from "../support/manifests.ts";
import { inOwnNetnsEnv, netnsUnavailable, runInOwnNetns } from "../support/netns.ts";
import { stopProcess } from "../support/processes.ts";
import { crossplaneUnavailable, repoRoot, tool } from "../support/tools.ts";

const thisFile = relative(repoRoot, fileURLToPath(import.meta.url));
const pg: ResourceRef = { group: "anynines.com", version: "v1", resource: "postgresqlinstances", namespaced: true };
const watchOperations: ResourceRef = {
  group: "ops.crossplane.io",
  version: "v1alpha1",
  resource: "watchoperations",
  namespaced: false,
};
const operations: ResourceRef = { ...watchOperations, resource: "operations" };
const silent = pino({ level: "silent" });
const labelled = (obj: KubeObject): KubeObject => ({
  ...obj,
  metadata: { ...obj.metadata, labels: { ...obj.metadata.labels, [exportLabel]: "true" } },
});

if (process.env[inOwnNetnsEnv] !== "1") {
  describe("Crossplane in the loop", { skip: crossplaneUnavailable() ?? netnsUnavailable() }, () => {
    it("passes in a network namespace of its own", { timeout: 900_000 }, async (t) => {
      const { code, output } = await runInOwnNetns(thisFile);
      for (const line of output.split("\n").filter((l) => /^\s*(✔|✖|﹣)/.test(l))) t.diagnostic(line.trim());
      assert.equal(code, 0, output.split("\n").slice(-120).join("\n"));
    });
  });
} else {
  describe("the real Crossplane core composes through our function", () => {
    let control: KubeClient;
    let app: KubeClient;
    let core: CrossplaneCore;
    let registry: Registry;
    let ours: InstalledFunction;
    let sample: InstalledFunction;
    let sync: RunningSync | undefined;
    const dir = mkdtempSync(join(tmpdir(), "klb-crossplane-"));

    let clusters: Awaited<ReturnType<typeof testClusters>>;
    const apply = (file: string) => applyManifests(clusters.control, readManifests(file));

    before(async () => {
      clusters = await testClusters();
      control = KubeClient.fromConfig(clientConfig(clusters.control));
      app = KubeClient.fromConfig(clientConfig(clusters.app));
      core = await startCrossplaneCore(clusters.control, dir, { enableOperations: true, pollInterval: "5s" });
      registry = await startRegistry(dir);
      ours = await installFunction(
        core,
        registry,
        "function-klutch-bind",
        join(repoRoot, "package"),
        async (certs, port) => {
          const server = await startFunctionServer(runExportFunction, {
            address: `127.0.0.1:${port}`,
            insecure: false,
            tlsCertsDir: certs,
            maxRecvMessageBytes: 4 * 1024 * 1024,
            logger: silent,
          });
          return { stop: () => server.shutdown(1000) };
        },
      );
      sample = await installFunction(
        core,
        registry,
        "function-sample-credentials",
        join(repoRoot, "test/crossplane/sample-function/package"),
        async (certs, port) => {
          const log = openSync(join(dir, "sample-function.log"), "a");
          const child = spawn(tool("sample-function"), ["--address", `127.0.0.1:${port}`, "--tls-certs-dir", certs], {
            stdio: ["ignore", log, log],
          });
          return { stop: () => stopProcess(child) };
        },
      );
      for (const file of [
        "deploy/control-plane/apiserviceexporttemplate-crd.yaml",
        "deploy/control-plane/appclusterbinding-crd.yaml",
        "deploy/control-plane/klutch-appclusterbinding-crd.yaml",
        "deploy/control-plane/serviceexport-xrd.yaml",
        "deploy/control-plane/serviceexport-composition.yaml",
        "examples/export/xrd.yaml",
        "test/crossplane/sample-function/composition.yaml",
      ]) {
        await apply(file);
      }
      await eventually("Crossplane serves ServiceExports and PostgresqlInstances", async () => {
        await control.list(refs.serviceExports);
        await control.list(pg);
      });
    });

    after(async () => {
      await sync?.stop();
      await ours?.stop();
      await sample?.stop();
      await registry?.stop();
      await core?.stop();
      control?.close();
      app?.close();
    });

    it("composes the template and RBAC of a ServiceExport over mTLS, and the XR becomes Ready", async () => {
      await control.apply(
        refs.serviceExports,
        {
          apiVersion: "bind.klutch.dev/v1alpha1",
          kind: "ServiceExport",
          metadata: { name: "postgresqlinstances" },
          spec: {
            xrd: "postgresqlinstances.anynines.com",
            permissionClaims: [{ group: "", resource: "secrets", version: "v1", selector: { owner: "Provider" } }],
          },
        },
        "klutch-bind-test",
        true,
      );
      await eventually(
        "ServiceExport Ready and Exported",
        async () => {
          const xr = await control.get(refs.serviceExports, "postgresqlinstances");
          assert.equal(conditionOf(xr, "Exported")?.status, "True", JSON.stringify(xr?.status));
          assert.equal(conditionOf(xr, "Ready")?.status, "True", JSON.stringify(xr?.status));
        },
        90_000,
      );
      const template = await control.get(refs.templates, "postgresqlinstances", crossplaneNamespace);
      assert.deepEqual(template?.spec, {
        APIServiceSelector: { group: "anynines.com", resource: "postgresqlinstances", version: "v1" },
        // as the function wrote it, with the defaults klutch-bind's schema (and ours) fill in
        permissionClaims: [
          {
            group: "",
            resource: "secrets",
            version: "v1",
            selector: { owner: "Provider", names: ["*"], namespaces: ["*"] },
            read: {},
            onConflict: { recreateWhenConsumerSideDeleted: true },
          },
        ],
      });
      assert.ok(await control.get(refs.clusterRoles, "klutch-bind:export:postgresqlinstances"));
      assert.ok(await control.get(refs.clusterRoleBindings, "klutch-bind:export:postgresqlinstances"));
      assert.ok(await control.get(refs.clusterRoles, "klutch-bind:export:postgresqlinstances:claims"));
    });

    it("carries an app team's instance to Crossplane and its credentials and readiness back", async () => {
      const namespace = "bindings";
      await control.apply(
        refs.namespaces,
        { apiVersion: "v1", kind: "Namespace", metadata: { name: namespace } },
        "t",
        true,
      );
      sync = await startSync({
        control,
        logger: silent,
        workers: 4,
        namespace,
        resyncMs: 2000,
        autoExport: false,
        allowLoopbackAppServers: true,
      });
      const exports = pickExports(await listBindable(control, crossplaneNamespace), [
        "postgresqlinstances.anynines.com",
      ]);
      await createBinding(
        control,
        {
          name: "app",
          namespace,
          kubeconfig: readFileSync(clusters.app.kubeconfigPath, "utf8"),
          exports,
          // the app team accepts the credentials claim, as `bind --accept-claims` does; the
          // binding's app cluster account may reach only what was accepted
          decisions: decide(exports, () => true),
        },
        "klutch-bind-test",
      );
      // createBinding writes klutch-bind's AppClusterBinding, as bind and the web page do
      const binding = await control.get(refs.klutchBindings, "app", namespace);
      await eventually("the app cluster serves PostgresqlInstances", () => app.list(pg), 60_000);
      await app.apply(
        refs.namespaces,
        { apiVersion: "v1", kind: "Namespace", metadata: { name: "orders" } },
        "t",
        true,
      );
      await app.apply(
        pg,
        {
          apiVersion: "anynines.com/v1",
          kind: "PostgresqlInstance",
          metadata: { name: "orders-db", namespace: "orders" },
          spec: { version: "16" },
        },
        "app-team",
        true,
      );
      const pns = providerNamespace(binding?.metadata.uid ?? "", "orders");
      await eventually(
        "Crossplane composed the credentials Secret for the provider's copy",
        async () => assert.ok(await control.get(refs.secrets, "orders-db-credentials", pns)),
        90_000,
      );
      await eventually(
        "credentials and Ready=True in the app cluster",
        async () => {
          const secret = await app.get(refs.secrets, "orders-db-credentials", "orders");
          assert.deepEqual(Object.keys((secret?.data as object | undefined) ?? {}).sort(), [
            "host",
            "password",
            "username",
          ]);
          assert.equal(conditionOf(await app.get(pg, "orders-db", "orders"), "Ready")?.status, "True");
        },
        90_000,
      );

      await app.delete(pg, "orders-db", "orders");
      await eventually(
        "the provider's copy, then the app object, are gone",
        async () => {
          assert.equal(await control.get(pg, "orders-db", pns), undefined);
          assert.equal(await app.get(pg, "orders-db", "orders"), undefined);
        },
        120_000,
      );
    });

    it("exports a labelled XRD by itself through the WatchOperation example (operation mode)", async () => {
      await apply("examples/auto-export/watchoperation.yaml");
      assert.ok(await control.get(watchOperations, "klutch-bind-auto-export"));
      await control.apply(
        refs.xrds,
        labelled(xrd({ group: "anynines.com", plural: "caches", kind: "Cache", scope: "Namespaced" }) as KubeObject),
        "klutch-bind-test",
        true,
      );
      // on failure, what Crossplane says: the WatchOperation's conditions and those of its Operations
      const crossplaneSays = async () => {
        const watch = await control.get(watchOperations, "klutch-bind-auto-export");
        const ops = await control.list(operations, {});
        return JSON.stringify({
          watchOperation: watch?.status,
          operations: ops.items.map((o) => ({ name: o.metadata.name, status: o.status })),
        }).slice(0, 4000);
      };
      try {
        await eventually(
          "the Operation applied the template, owned by the XRD",
          async () => {
            const template = await control.get(refs.templates, "caches.anynines.com", crossplaneNamespace);
            assert.deepEqual(template?.spec, {
              APIServiceSelector: { group: "anynines.com", resource: "caches", version: "v1" },
            });
            assert.equal(template?.metadata.ownerReferences?.[0]?.kind, "CompositeResourceDefinition");
            assert.ok(await control.get(refs.clusterRoles, "klutch-bind:export:caches.anynines.com"));
          },
          120_000,
        );
      } catch (err) {
        throw new Error(`${(err as Error).message}\ncrossplane says: ${await crossplaneSays()}`);
      }
    });
    it("reports a function that is down on the XR, and recovers when it is back", async () => {
      const touch = (value: string) =>
        control.mergePatch(refs.serviceExports, "postgresqlinstances", undefined, {
          metadata: { annotations: { "klutch-bind.test/touch": value } },
        });
      await ours.stop();
      try {
        await touch("down");
        await eventually(
          "Synced=False naming the function",
          async () => {
            const synced = conditionOf(await control.get(refs.serviceExports, "postgresqlinstances"), "Synced");
            assert.equal(synced?.status, "False");
            assert.match(synced?.message ?? "", /function-klutch-bind/);
          },
          // Crossplane waits for the function up to its call deadline (2 minutes) before it reports
          200_000,
        );
      } finally {
        await ours.restart();
      }
      await touch("up");
      await eventually(
        "Synced=True again",
        async () => {
          const xr = await control.get(refs.serviceExports, "postgresqlinstances");
          assert.equal(conditionOf(xr, "Synced")?.status, "True", JSON.stringify(xr?.status));
        },
        120_000,
      );
    });

    it("follows a new referenceable version of the XRD, and removes what it composed with the export", async () => {
      const live = await control.get(refs.xrds, "postgresqlinstances.anynines.com");
      assert.ok(live);
      const spec = live.spec as { versions: Array<Record<string, unknown>> };
      const [v1] = spec.versions;
      assert.ok(v1);
      spec.versions = [
        { ...v1, referenceable: false },
        { ...v1, name: "v2", referenceable: true },
      ];
      await control.update(refs.xrds, live);
      await eventually(
        "the template selects v2",
        async () => {
          const template = await control.get(refs.templates, "postgresqlinstances", crossplaneNamespace);
          assert.equal(
            (template?.spec as { APIServiceSelector?: { version?: string } } | undefined)?.APIServiceSelector?.version,
            "v2",
          );
        },
        120_000,
      );

      await control.delete(refs.serviceExports, "postgresqlinstances");
      await eventually(
        "template and RBAC deleted with the export",
        async () => {
          assert.equal(await control.get(refs.templates, "postgresqlinstances", crossplaneNamespace), undefined);
          assert.equal(await control.get(refs.clusterRoles, "klutch-bind:export:postgresqlinstances"), undefined);
          assert.equal(
            await control.get(refs.clusterRoleBindings, "klutch-bind:export:postgresqlinstances"),
            undefined,
          );
        },
        120_000,
      );
    });
  });
}
