// A control plane and an app cluster wired for the sync: our CRDs, an exported API of its own
// (a unique group per test file), its template, a binding with the app cluster's kubeconfig, and
// the sync itself running in this process.
import { readFileSync } from "node:fs";
import { type Logger, pino } from "pino";
import { type KubeconfigSecretPolicy, kubeconfigSecretMarks } from "../../src/api/kubeconfig-secret.ts";
import { refs } from "../../src/api/resources.ts";
import type { PermissionClaim } from "../../src/export/types.ts";
import { KubeClient, type KubeObject, type ResourceRef } from "../../src/kube/client.ts";
import { conditionOf, isEstablished } from "../../src/kube/conditions.ts";
import { type RunningSync, startSync } from "../../src/sync/manager.ts";
import type { Cluster } from "./cluster.ts";
import { clientConfig, ignoreNotFound, onFileDone, testClusters, testNamespace, uniqueSuffix } from "./clusters.ts";
import { eventually } from "./eventually.ts";
import { applyCrds } from "./manifests.ts";

export type SyncEnv = {
  control: Cluster;
  app: Cluster;
  controlClient: KubeClient;
  appClient: KubeClient;
  /** the exported resource, the same on both sides */
  ref: ResourceRef;
  kind: string;
  apiVersion: string;
  bindingNamespace: string;
  /** the app cluster's kubeconfig, as a binding's Secret holds it */
  appKubeconfig: string;
  sync: RunningSync | undefined;
  bind: (name: string, claims: PermissionClaim[]) => Promise<KubeObject>;
  /**
   * A binding with a kubeconfig Secret of its own (named after it) holding text; of the exported
   * API unless exports says otherwise.
   */
  bindWith: (
    name: string,
    kubeconfigText: string,
    options?: { exports?: Array<{ group: string; resource: string }>; deletionPolicy?: "Orphan" | "Delete" },
  ) => Promise<KubeObject>;
  /** the Secret NAME-kubeconfig holding text, marked for our kind's (bind.klutch.dev) binding NAME as the sync requires */
  kubeconfigSecret: (name: string, text: string) => Promise<void>;
  /** applies the exported API's template (in the binding namespace) without binding it */
  template: (
    claims: readonly PermissionClaim[] | readonly Record<string, unknown>[],
    namespace?: string,
  ) => Promise<void>;
  /** waits (up to a minute) until the binding reports Ready=True */
  ready: (bindingName: string) => Promise<void>;
  /** an object of the exported API in the app cluster, its namespace created when missing */
  appObject: (namespace: string, name: string, size?: string) => Promise<KubeObject>;
};

/** A namespaced API like a Crossplane v2 XR's: spec, status with conditions. */
export function exportedCrd(group: string, scope: "Namespaced" | "Cluster"): KubeObject {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: `postgresqlinstances.${group}` },
    spec: {
      group,
      scope,
      names: {
        plural: "postgresqlinstances",
        singular: "postgresqlinstance",
        kind: "PostgresqlInstance",
        listKind: "PostgresqlInstanceList",
      },
      versions: [
        {
          name: "v1",
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [{ name: "Size", type: "string", jsonPath: ".spec.size" }],
          schema: {
            openAPIV3Schema: {
              type: "object",
              properties: {
                spec: { type: "object", properties: { size: { type: "string" }, version: { type: "string" } } },
                status: {
                  type: "object",
                  properties: {
                    endpoint: { type: "string" },
                    conditions: {
                      type: "array",
                      items: { type: "object", "x-kubernetes-preserve-unknown-fields": true },
                    },
                  },
                },
              },
            },
          },
        },
      ],
    },
  };
}

/**
 * For cleanups: an exported API's CRD in each cluster, once every object of it still holding a
 * finalizer let go of it (the sync is stopped by then); a cluster the API never reached is fine.
 */
export async function dropExportedApi(clients: KubeClient[], ref: ResourceRef): Promise<void> {
  for (const client of clients) {
    const objects = await client.list(ref).catch((err: unknown) => {
      ignoreNotFound(err);
      return { items: [] };
    });
    for (const obj of objects.items) {
      if (obj.metadata.finalizers?.length)
        await client.update(ref, { ...obj, metadata: { ...obj.metadata, finalizers: [] } });
    }
    await client.delete(refs.crds, `${ref.resource}.${ref.group}`);
  }
}

export type SyncEnvOptions = {
  workers?: number;
  /** the in-process sync's periodic resync; default 1 s */
  resyncMs?: number;
  /** clusters of the test's own (e.g. ones it stops); default the shared ones */
  app?: Cluster;
  control?: Cluster;
  /** false: the test runs the sync itself (as a process, say); env.sync is then undefined */
  inProcess?: boolean;
  /** the exported API's scope; default Namespaced, as Crossplane v2 XRs are */
  scope?: "Namespaced" | "Cluster";
  /** the in-process sync's logger (default silent, or KLB_TEST_LOG's level) */
  logger?: Logger;
  /** the in-process sync's --kubeconfig-secrets; default marked */
  kubeconfigSecrets?: KubeconfigSecretPolicy;
  /**
   * the in-process sync's --allow-loopback-app-servers; default true (the test clusters listen on
   * 127.0.0.1): false to see loopback servers refused
   */
  allowLoopbackAppServers?: boolean;
};

export async function syncEnv(options: SyncEnvOptions = {}): Promise<SyncEnv> {
  const shared = await testClusters();
  const control = options.control ?? shared.control;
  const app = options.app ?? shared.app;
  const controlClient = KubeClient.fromConfig(clientConfig(control));
  const appClient = KubeClient.fromConfig(clientConfig(app));
  // registered first, so it runs last: the other cleanups still need the clients
  onFileDone(async () => {
    controlClient.close();
    appClient.close();
  });
  await applyCrds(control, "deploy/control-plane/apiserviceexporttemplate-crd.yaml");
  await applyCrds(control, "deploy/control-plane/appclusterbinding-crd.yaml");
  await applyCrds(control, "deploy/control-plane/klutch-appclusterbinding-crd.yaml");
  const group = `t${uniqueSuffix()}.klutch-bind.test`;
  const namespaced = (options.scope ?? "Namespaced") === "Namespaced";
  const crd = exportedCrd(group, namespaced ? "Namespaced" : "Cluster");
  await controlClient.apply(refs.crds, crd, "test", true);
  onFileDone(async () => {
    // the sync is stopped by now: release what still carries its finalizer, or the CRD (and the
    // namespace of the bindings) never goes
    for (const kind of [refs.bindings, refs.klutchBindings]) {
      const bindings = await controlClient.list(kind, { namespace: bindingNamespace }).catch(() => ({ items: [] }));
      for (const b of bindings.items) {
        if (b.metadata.finalizers?.length)
          await controlClient.update(kind, { ...b, metadata: { ...b.metadata, finalizers: [] } });
      }
    }
    await dropExportedApi([appClient, controlClient], {
      group,
      version: "v1",
      resource: "postgresqlinstances",
      namespaced,
    });
  });
  await eventually("exported CRD established", async () => {
    if (!isEstablished(await controlClient.get(refs.crds, crd.metadata.name))) throw new Error("not established");
  });

  const bindingNamespace = await testNamespace(control, "bindings");
  const kubeconfig = readFileSync(app.kubeconfigPath);
  await controlClient.create(refs.secrets, {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: "app-kubeconfig", namespace: bindingNamespace },
    data: { kubeconfig: kubeconfig.toString("base64") },
  });
  const ref: ResourceRef = { group, version: "v1", resource: "postgresqlinstances", namespaced };
  let sync: RunningSync | undefined;
  if (options.inProcess !== false) {
    const running = await startSync({
      control: controlClient,
      allowLoopbackAppServers: options.allowLoopbackAppServers ?? true,
      logger: options.logger ?? pino({ level: process.env.KLB_TEST_LOG ?? "silent" }),
      workers: options.workers ?? 4,
      namespace: bindingNamespace,
      resyncMs: options.resyncMs ?? 1000,
      healthAddress: "127.0.0.1:0",
      ...(options.kubeconfigSecrets ? { kubeconfigSecrets: options.kubeconfigSecrets } : {}),
    });
    onFileDone(() => running.stop());
    sync = running;
  }

  return {
    control,
    app,
    controlClient,
    appClient,
    ref,
    kind: "PostgresqlInstance",
    apiVersion: `${group}/v1`,
    bindingNamespace,
    appKubeconfig: kubeconfig.toString("utf8"),
    sync,
    template,
    kubeconfigSecret,
    ready: (bindingName) =>
      eventually(
        `binding ${bindingName} ready`,
        async () => {
          // klutch-bind's kind (what bind writes) or ours (what older tests make by hand)
          const read =
            (await controlClient.get(refs.klutchBindings, bindingName, bindingNamespace)) ??
            (await controlClient.get(refs.bindings, bindingName, bindingNamespace));
          if (conditionOf(read, "Ready")?.status !== "True") throw new Error(JSON.stringify(read?.status));
        },
        60_000,
      ),
    appObject: async (namespace, name, size = "s") => {
      if ((await appClient.get(refs.namespaces, namespace)) === undefined) {
        await appClient.create(refs.namespaces, { apiVersion: "v1", kind: "Namespace", metadata: { name: namespace } });
      }
      return appClient.create(ref, {
        apiVersion: `${group}/v1`,
        kind: "PostgresqlInstance",
        metadata: { name, namespace },
        spec: { size },
      });
    },
    bindWith: async (name, kubeconfigText, options = {}) => {
      await template([]);
      return newBinding(name, kubeconfigText, options);
    },
    bind: async (name, claims) => {
      await template(claims);
      return newBinding(name, kubeconfig.toString("utf8"));
    },
  };

  /** A binding NAME with its own kubeconfig Secret NAME-kubeconfig. */
  async function newBinding(
    name: string,
    text: string,
    options: Parameters<SyncEnv["bindWith"]>[2] = {},
  ): Promise<KubeObject> {
    await kubeconfigSecret(name, text);
    return controlClient.create(refs.bindings, {
      apiVersion: "bind.klutch.dev/v1alpha1",
      kind: "AppClusterBinding",
      metadata: { name, namespace: bindingNamespace },
      spec: {
        kubeconfigSecretRef: { name: `${name}-kubeconfig` },
        exports: options?.exports ?? [{ group, resource: "postgresqlinstances" }],
        ...(options?.deletionPolicy ? { deletionPolicy: options.deletionPolicy } : {}),
      },
    });
  }

  /** The Secret NAME-kubeconfig, marked for our kind's binding NAME as the sync requires. */
  async function kubeconfigSecret(name: string, text: string): Promise<void> {
    await controlClient.create(refs.secrets, {
      apiVersion: "v1",
      kind: "Secret",
      metadata: {
        name: `${name}-kubeconfig`,
        namespace: bindingNamespace,
        ...kubeconfigSecretMarks({ group: refs.bindings.group, namespace: bindingNamespace, name }),
      },
      data: { kubeconfig: Buffer.from(text).toString("base64") },
    });
  }

  /** The exported API's template in namespace (the binding namespace by default), claims as given: klutch-bind's shape too. */
  async function template(
    claims: readonly PermissionClaim[] | readonly Record<string, unknown>[],
    namespace = bindingNamespace,
  ): Promise<void> {
    await controlClient.apply(
      refs.templates,
      {
        apiVersion: "example-backend.klutch.anynines.com/v1alpha1",
        kind: "APIServiceExportTemplate",
        metadata: { name: "postgresqlinstances", namespace },
        spec: {
          APIServiceSelector: { group, resource: "postgresqlinstances", version: "v1" },
          permissionClaims: claims,
        },
      },
      "test",
      true,
    );
  }
}
