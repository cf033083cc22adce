// The sync program: control-plane client, shared informers, the binding controller, and the
// health and metrics endpoints around them.
import { createServer, type Server } from "node:http";
import type { Logger } from "pino";
import type { ClientOptions, KubeClient } from "../kube/client.ts";
import { listen } from "../listen.ts";
import { AutoExportController } from "./auto-export.ts";
import { parseBindingKey } from "./binding-spec.ts";
import { BindingController } from "./bindings.ts";
import { type HealthServer, serveHealth } from "./health.ts";
import { InformerRegistry } from "./informers.ts";
import type { KubeconfigSecretPolicy } from "./kubeconfig-secret.ts";
import { LeaderElector } from "./leader.ts";
import { SyncMetrics } from "./metrics.ts";
import { ShardCoordinator, type ShardOptions } from "./shards.ts";

export type SyncOptions = {
  control: KubeClient;
  logger: Logger;
  workers: number;
  namespace?: string;
  appClientOptions?: ClientOptions;
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
};

export type RunningSync = {
  controller: BindingController;
  metrics: SyncMetrics;
  shard?: ShardCoordinator;
  /** bound ports, by endpoint */
  ports: { metrics?: number; health?: number };
  stop: () => Promise<void>;
};

export async function startSync(options: SyncOptions): Promise<RunningSync> {
  const metrics = new SyncMetrics();
  const controlInformers = new InformerRegistry(options.control, options.logger.child({ cluster: "control" }));
  const shard = options.shards
    ? new ShardCoordinator({
        ...options.shards,
        client: options.leaseClient ?? options.control,
        logger: options.logger,
      })
    : undefined;
  const controller = new BindingController({
    control: options.control,
    controlInformers,
    logger: options.logger,
    metrics,
    workers: options.workers,
    ...(options.namespace ? { namespace: options.namespace } : {}),
    ...(options.appClientOptions ? { appClientOptions: options.appClientOptions } : {}),
    ...(options.resyncMs ? { resyncMs: options.resyncMs } : {}),
    ...(options.kubeconfigSecrets ? { kubeconfigSecrets: options.kubeconfigSecrets } : {}),
    ...(options.templateNamespaces ? { templateNamespaces: options.templateNamespaces } : {}),
    ...(options.appTokenRenewFraction ? { appTokenRenewFraction: options.appTokenRenewFraction } : {}),
    ...(options.appTokenSeconds ? { appTokenSeconds: options.appTokenSeconds } : {}),
    ...(shard ? { shard: { identity: shard.identity, serves: (uid: string) => shard.serves(uid) } } : {}),
  });
  controller.start();
  await shard?.start(controller);
  metrics.countRequests(() => ({ control: options.control.requests, app: controller.appRequests }));
  const autoExport = options.autoExport
    ? new AutoExportController(options.control, controlInformers, options.logger)
    : undefined;
  const electing = new AbortController();
  let autoExportLeader: LeaderElector | undefined;
  if (autoExport && options.shards) {
    // ServiceExports are written once for all replicas: by the one holding this Lease
    const shards = options.shards;
    const elector = new LeaderElector({
      client: options.leaseClient ?? options.control,
      namespace: shards.namespace,
      name: "klutch-bind-sync-auto-export",
      leaseDurationSeconds: shards.leaseDurationSeconds,
      logger: options.logger,
    });
    autoExportLeader = elector;
    elector.acquire(electing.signal).then(
      () => {
        if (electing.signal.aborted) return;
        autoExport.start();
        elector.keepRenewing((reason) => shards.onLost(`auto-export lease: ${reason}`));
      },
      () => undefined, // stopped while waiting
    );
  } else {
    autoExport?.start();
  }

  const servers: Server[] = [];
  const ports: RunningSync["ports"] = {};
  if (options.metricsAddress) {
    const server = createServer((req, res) => {
      if (req.url !== "/metrics") {
        res.writeHead(404).end();
        return;
      }
      // only the exports synced now: a stopped one's label set goes with it
      metrics.queueDepth.reset();
      metrics.served.reset();
      for (const key of shard?.serving.values() ?? []) {
        const { namespace, name } = parseBindingKey(key);
        metrics.served.set({ binding: `${namespace}/${name}`, replica: shard?.identity }, 1);
      }
      for (const sync of controller.exportSyncs) metrics.queueDepth.set(SyncMetrics.labels(sync.ctx), sync.queueDepth);
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { "content-type": metrics.registry.contentType }).end(text),
        (err: unknown) => res.writeHead(500).end(String(err)),
      );
    });
    servers.push(server);
    ports.metrics = await listen(server, options.metricsAddress);
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
      electing.abort();
      await shard?.stop();
      await autoExport?.stop();
      await autoExportLeader?.release();
      await controller.stop();
      await controlInformers.stopAll();
      await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
      await health?.stop();
      options.logger.info("sync stopped");
    },
  };
}
