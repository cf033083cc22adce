// The sync program: control-plane client, shared informers, the binding controller, and the
// health and metrics endpoints around them.
import type { Logger } from "pino";
import { parseBindingKey } from "../api/binding-spec.ts";
import type { KubeconfigSecretPolicy } from "../api/kubeconfig-secret.ts";
import type { CacheLimits } from "../kube/cache-budget.ts";
import type { ClientOptions, KubeClient } from "../kube/client.ts";
import type { Network } from "../kube/server-addresses.ts";
import { withSafeErrors } from "../log.ts";
import { AutoExportController } from "./auto-export.ts";
import { BindingController } from "./binding/controller.ts";
import { defaultMaxExportsPerBinding, templateNamespacesOf } from "./binding/options.ts";
import { type HealthServer, serveHealth } from "./health.ts";
import { InformerRegistry } from "./informers.ts";
import { type MetricsServer, SyncMetrics, serveMetrics } from "./metrics.ts";
import { PullBindingController } from "./pull/controller.ts";
import { fenced } from "./replicas/fence.ts";
import { LeaderElector, type LeaderOptions } from "./replicas/leader.ts";
import { ShardCoordinator, type ShardOptions } from "./replicas/shards.ts";
import { type TenantLimitValues, tenantLimitDefaults } from "./tenants/limits.ts";

export type SyncOptions = {
  control: KubeClient;
  logger: Logger;
  workers: number;
  /** bindings reconciled at once, and at most per namespace (BindingControllerOptions) */
  bindingWorkers?: number;
  bindingWorkersPerNamespace?: number;
  /** what one namespace's app cluster caches hold at most (BindingControllerOptions) */
  appCacheLimits?: CacheLimits;
  /** what the app cluster lists being read hold together at most (BindingControllerOptions) */
  appListBytesInFlight?: number;
  /** provider namespaces and control-plane watches of one namespace's bindings at most (BindingControllerOptions) */
  tenantLimits?: TenantLimitValues;
  /** a binding listing more exports syncs none (BindingControllerOptions; default 50) */
  maxExportsPerBinding?: number;
  /** how long a hand-over waits for a binding's reconcile before cancelling it (BindingControllerOptions) */
  handOverWaitMs?: number;
  namespace?: string;
  appClientOptions?: ClientOptions;
  /**
   * app cluster servers on loopback addresses too (--allow-loopback-app-servers; default false:
   * refused, as link-local ones and the service network always are; server-addresses.ts). Tests,
   * whose app clusters listen on 127.0.0.1, pass true.
   */
  allowLoopbackAppServers?: boolean;
  /** the control plane's service network, refused for app cluster servers (--service-cidr; default none) */
  serviceNetworks?: readonly Network[];
  /** which Secrets may hold a binding's kubeconfig (see kubeconfig-secret.ts); default marked */
  kubeconfigSecrets?: KubeconfigSecretPolicy;
  metricsAddress?: string;
  /** serve /healthz and /readyz here (the CLI serves them itself, from before leader election) */
  healthAddress?: string;
  resyncMs?: number;
  /** where templates are read; see BindingControllerOptions.templateNamespaces */
  templateNamespaces?: string[];
  /** renew a binding's app cluster service account token at this share of its lifetime (default 0.8) */
  appTokenRenewFraction?: number;
  /** the lifetime of renewed app cluster tokens in seconds (default: as long as the token bind issued) */
  appTokenSeconds?: number;
  /** keep a ServiceExport for every XRD labelled bind.klutch.dev/export=true */
  autoExport?: boolean;
  /**
   * serve a share of the bindings beside other replicas (shards.ts); auto-export then runs on the
   * replica holding the Lease klutch-bind-sync-auto-export only
   */
  shards?: Omit<ShardOptions, "client" | "logger">;
  /**
   * the client for Leases (shards, auto-export's): one of their own, so a renewal never waits in
   * the rate limiter or connection pool behind the sync's bulk traffic (default: control)
   */
  leaseClient?: KubeClient;
  /** --leader-elect: writes to app clusters go out only while this says yes (fence.ts) */
  writeGate?: () => boolean;
  /** serve pull bindings' cluster namespaces (pull/README.md; with shards, on the holder of Lease klutch-bind-sync-pull) */
  pullBindings?: boolean;
  /** with pullBindings: only cluster namespaces with these labels too (key=value,...) */
  pullBindingSelector?: string;
};

export type RunningSync = {
  controller: BindingController;
  metrics: SyncMetrics;
  shard?: ShardCoordinator;
  /** bound ports, by endpoint */
  ports: { metrics?: number; health?: number };
  stop: () => Promise<void>;
};

export async function startSync(given: SyncOptions): Promise<RunningSync> {
  // whoever made the logger, errors of clusters we do not trust are logged by message and code only
  const options = { ...given, logger: withSafeErrors(given.logger) };
  const metrics = new SyncMetrics();
  options.control.observeRequests(metrics.apiRequests("control"));
  const controlInformers = new InformerRegistry(options.control, options.logger.child({ cluster: "control" }));
  const shardOptions = options.shards;
  const shard = shardOptions
    ? new ShardCoordinator({
        ...shardOptions,
        client: options.leaseClient ?? options.control,
        logger: options.logger,
        onLost: (reason) => {
          metrics.shardLeaseLost.inc();
          shardOptions.onLost?.(reason);
        },
      })
    : undefined;
  const controller = new BindingController({
    control: options.control,
    controlInformers,
    logger: options.logger,
    metrics,
    workers: options.workers,
    ...(options.bindingWorkers ? { bindingWorkers: options.bindingWorkers } : {}),
    ...(options.bindingWorkersPerNamespace ? { bindingWorkersPerNamespace: options.bindingWorkersPerNamespace } : {}),
    ...(options.namespace ? { namespace: options.namespace } : {}),
    ...(options.appCacheLimits ? { appCacheLimits: options.appCacheLimits } : {}),
    ...(options.appListBytesInFlight ? { appListBytesInFlight: options.appListBytesInFlight } : {}),
    appClientOptions: {
      ...options.appClientOptions,
      serverAddresses: {
        allowLoopback: options.allowLoopbackAppServers ?? false,
        serviceNetworks: options.serviceNetworks ?? [],
      },
    },
    ...(options.tenantLimits ? { tenantLimits: options.tenantLimits } : {}),
    ...(options.maxExportsPerBinding ? { maxExportsPerBinding: options.maxExportsPerBinding } : {}),
    ...(options.handOverWaitMs ? { handOverWaitMs: options.handOverWaitMs } : {}),
    ...(options.resyncMs ? { resyncMs: options.resyncMs } : {}),
    ...(options.kubeconfigSecrets ? { kubeconfigSecrets: options.kubeconfigSecrets } : {}),
    ...(options.templateNamespaces ? { templateNamespaces: options.templateNamespaces } : {}),
    ...(options.appTokenRenewFraction ? { appTokenRenewFraction: options.appTokenRenewFraction } : {}),
    ...(options.appTokenSeconds ? { appTokenSeconds: options.appTokenSeconds } : {}),
    ...(shard ? { shard } : {}),
    ...(options.writeGate ? { writeGate: options.writeGate } : {}),
  });
  controller.start();
  await shard?.start(controller);
  metrics.countRequests(() => ({ control: options.control.requests, app: controller.appRequests }));
  const newAutoExport = () => new AutoExportController(options.control, controlInformers, options.logger);
  let autoExport: { stop: () => Promise<void> } | undefined;
  if (options.autoExport && shardOptions) {
    // ServiceExports are written once for all replicas: by the one holding this Lease
    autoExport = whileLeader(
      {
        client: options.leaseClient ?? options.control,
        namespace: shardOptions.namespace,
        name: "klutch-bind-sync-auto-export",
        leaseDurationSeconds: shardOptions.leaseDurationSeconds,
        logger: options.logger,
      },
      newAutoExport,
    );
  } else if (options.autoExport) {
    const controller = newAutoExport();
    controller.start();
    autoExport = controller;
  }

  let pull: { stop: () => Promise<void> } | undefined;
  if (options.pullBindings) {
    const newPull = (control: KubeClient) =>
      new PullBindingController({
        control,
        informers: controlInformers,
        logger: options.logger.child({ controller: "pull" }),
        templateNamespaces: templateNamespacesOf(options),
        maxProviderNamespaces: (options.tenantLimits ?? tenantLimitDefaults).providerNamespaces,
        maxExports: options.maxExportsPerBinding ?? defaultMaxExportsPerBinding,
        ...(options.pullBindingSelector ? { namespaceSelector: options.pullBindingSelector } : {}),
      });
    if (shardOptions) {
      // cluster namespaces are not sharded: one replica serves them all, writing only while it holds this Lease
      const lease = {
        client: options.leaseClient ?? options.control,
        namespace: shardOptions.namespace,
        name: "klutch-bind-sync-pull",
        leaseDurationSeconds: shardOptions.leaseDurationSeconds,
        logger: options.logger,
      };
      pull = whileLeader(lease, (holds) =>
        newPull(fenced(options.control, holds, `this replica (no longer holding ${lease.name})`)),
      );
    } else {
      const controller = newPull(options.control);
      controller.start();
      pull = controller;
    }
  }

  const ports: RunningSync["ports"] = {};
  let metricsServer: MetricsServer | undefined;
  if (options.metricsAddress) {
    metricsServer = await serveMetrics(options.metricsAddress, metrics, () => {
      // only the exports synced now: a stopped one's label set goes with it
      metrics.queueDepth.reset();
      metrics.served.reset();
      for (const key of shard?.serving.values() ?? []) {
        const { namespace, name } = parseBindingKey(key);
        metrics.served.set({ binding: `${namespace}/${name}`, replica: shard?.identity }, 1);
      }
      for (const sync of controller.exportSyncs) metrics.queueDepth.set(SyncMetrics.labels(sync.ctx), sync.queueDepth);
    });
    ports.metrics = metricsServer.port;
  }
  let health: HealthServer | undefined;
  if (options.healthAddress) {
    health = await serveHealth(options.healthAddress, () => controller.health());
    ports.health = health.port;
  }
  options.logger.info({ ...ports, workers: options.workers, namespace: options.namespace ?? "(all)" }, "sync started");

  return {
    controller,
    metrics,
    ...(shard ? { shard } : {}),
    ports,
    stop: async () => {
      await shard?.stop();
      await autoExport?.stop();
      await pull?.stop();
      await controller.stop();
      await controlInformers.stopAll();
      await metricsServer?.stop();
      await health?.stop();
      options.logger.info("sync stopped");
    },
  };
}

/**
 * Runs a controller (made by make) only while this replica holds the Lease options.name: stands
 * by until it does, and after losing it (a stall: another replica took over) stops the controller
 * and stands by again. stop() ends it all and gives the Lease up.
 */
function whileLeader(
  options: LeaderOptions,
  make: (holds: () => boolean) => { start: () => void; stop: () => Promise<void> },
): { stop: () => Promise<void> } {
  const stopping = new AbortController();
  let elector: LeaderElector | undefined;
  let running: { stop: () => Promise<void> } | undefined;
  void (async () => {
    while (!stopping.signal.aborted) {
      const current = new LeaderElector(options);
      elector = current;
      try {
        await current.acquire(stopping.signal);
      } catch {
        return; // stopped while standing by
      }
      if (stopping.signal.aborted) return;
      const controller = make(() => current.holds());
      running = controller;
      controller.start();
      const lost = await new Promise<string | undefined>((resolve) => {
        current.keepRenewing(resolve);
        stopping.signal.addEventListener("abort", () => resolve(undefined), { once: true });
      });
      if (lost === undefined) return;
      options.logger.error({ lease: `${options.namespace}/${options.name}`, reason: lost }, "lease lost: standing by");
      running = undefined;
      await controller.stop();
    }
  })();
  return {
    stop: async () => {
      stopping.abort();
      await running?.stop();
      await elector?.release();
    },
  };
}
