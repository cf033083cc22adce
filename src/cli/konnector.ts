// `klutch-bind konnector`: the app cluster's side of pull bindings (src/konnector/), one replica
// serving at a time behind a Lease in its own namespace, with the sync's health and metrics endpoints.
import { parseArgs } from "node:util";
import type { AppAccount } from "../app-access/account.ts";
import { konnectorLeaseName } from "../app-bind/app-objects.ts";
import { Konnector } from "../konnector/controller.ts";
import { KubeClient } from "../kube/client.ts";
import { createLogger } from "../log.ts";
import { type HealthReport, serveHealth, standby } from "../sync/health.ts";
import { InformerRegistry } from "../sync/informers.ts";
import { SyncMetrics, serveMetrics } from "../sync/metrics.ts";
import { fenced } from "../sync/replicas/fence.ts";
import { LeaderElector } from "../sync/replicas/leader.ts";
import { buildInfo } from "../version.ts";
import {
  debugFlag,
  endpointFlags,
  leaseFlags,
  lifetimeShare,
  logStopping,
  logUnhandledRejections,
  podKubeconfig,
  podKubeconfigFlag,
  positive,
  rateFlags,
  stopSignals,
} from "./common.ts";
import type { CommandHelp, FlagDefinitions } from "./help.ts";
import { UsageError } from "./usage.ts";

export const konnectorFlags = {
  ...podKubeconfigFlag("the app cluster"),
  workers: { type: "string", default: "4", value: "N", description: "workers per bound export" },
  ...rateFlags({ qps: "50", burst: "100" }, "to the app cluster, and to each control plane"),
  "binding-selector": {
    type: "string",
    value: "SELECTOR",
    description:
      "serve only the APIServiceBindings matching this label selector (e.g. team=a), so that several konnectors " +
      "can share one app cluster",
    defaultText: "every APIServiceBinding",
  },
  "heartbeat-interval": {
    type: "string",
    default: "60",
    value: "SECONDS",
    description:
      "how often the heartbeat is written into each ClusterBinding's status (the control plane calls a binding " +
      "unhealthy after two intervals of silence)",
  },
  "token-renew-at": {
    type: "string",
    default: "0.8",
    value: "SHARE",
    description:
      "the control-plane token is renewed (TokenRequest for the binding's own account) at this share of its " +
      "lifetime and written back into its Secret",
  },
  "control-request-timeout": {
    type: "string",
    default: "30",
    value: "SECONDS",
    description: "the time allowed each request to a control plane",
  },
  ...leaseFlags({
    namespaceOf: "the Lease klutch-bind-konnector that one replica holds while it serves",
    durationOf: "the Lease",
    defaultNamespace: "klutch-bind",
  }),
  ...endpointFlags(" (ready once the app cluster's APIServiceBindings are listed; a standby is ready too)"),
  "app-account": {
    type: "string",
    value: "NAMESPACE/NAME",
    description:
      "the konnector's own service account in the app cluster, holding only what klutch-bind bind URL grants " +
      "(klutch-bind:app:NAME roles): claimed resources are reached per app namespace through a RoleBinding of " +
      "its claims role, never cluster-wide",
    defaultText: "none: the konnector's identity may reach claimed resources everywhere",
  },
  ...debugFlag,
} as const satisfies FlagDefinitions;

export const konnectorHelp: CommandHelp = {
  usage: "konnector [flags]",
  description:
    "Runs in an app cluster and serves its APIServiceBindings (klutch.anynines.com/v1alpha1) until SIGTERM or " +
    "SIGINT: with the control plane's kubeconfig each names (a Secret in the app cluster) it installs the bound " +
    "APIs, mirrors their objects up and their status and accepted claims down, asks the control plane for " +
    "provider namespaces, and writes a heartbeat. Preview: see docs/binding.md.",
  flags: konnectorFlags,
  examples: [
    "klutch-bind konnector   # in the app cluster's pod",
    "klutch-bind konnector --kubeconfig app.yaml --leader-election-namespace klutch-bind --heartbeat-interval 30",
  ],
};

function parseAccount(text: string): AppAccount {
  const [namespace = "", name = "", ...rest] = text.split("/");
  if (
    rest.length > 0 ||
    !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(namespace) ||
    !/^[a-z0-9]([-.a-z0-9]*[a-z0-9])?$/.test(name)
  ) {
    throw new UsageError(`--app-account must be NAMESPACE/NAME of a service account, got "${text}"`);
  }
  return { namespace, name };
}

export async function runKonnector(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: konnectorFlags, strict: true });
  const workers = positive("workers", values.workers);
  const qps = positive("qps", values.qps);
  const burst = positive("burst", values.burst);
  const heartbeatSeconds = positive("heartbeat-interval", values["heartbeat-interval"]);
  const timeoutMs = positive("control-request-timeout", values["control-request-timeout"]) * 1000;
  const leaseDurationSeconds = positive("lease-duration", values["lease-duration"]);
  const renewAt = lifetimeShare("token-renew-at", values["token-renew-at"]);
  const accountText = values["app-account"];
  const appAccount = accountText === undefined ? undefined : parseAccount(accountText);
  const leaseNamespace = values["leader-election-namespace"] ?? process.env.POD_NAMESPACE ?? "klutch-bind";
  const logger = createLogger("konnector", values.debug);
  const kubeconfig = podKubeconfig(values.kubeconfig);
  const app = KubeClient.fromConfig(kubeconfig, { qps, burst, userAgent: "klutch-bind-konnector" });
  const leases = KubeClient.fromConfig(kubeconfig, { qps, burst, userAgent: "klutch-bind-konnector-leases" });
  const metrics = new SyncMetrics();
  const controlClients = new Set<KubeClient>();
  metrics.countRequests(() => ({
    control: [...controlClients].reduce((n, c) => n + c.requests, 0),
    app: app.requests,
  }));
  app.observeRequests(metrics.apiRequests("app"));
  // the Lease's requests too: a refused renewal is one of the konnector's app cluster requests
  leases.observeRequests(metrics.apiRequests("app"));
  logUnhandledRejections(logger);

  let konnector: Konnector | undefined;
  const health: () => HealthReport = () =>
    konnector === undefined
      ? standby
      : konnector.ready()
        ? { live: true, ready: true, detail: "serving" }
        : { live: true, ready: false, detail: "listing the app cluster's APIServiceBindings" };
  const healthServer = values["health-address"] ? await serveHealth(values["health-address"], health) : undefined;
  const metricsServer = values["metrics-address"]
    ? await serveMetrics(values["metrics-address"], metrics, () => {
        metrics.queueDepth.reset();
        for (const sync of konnector?.exportSyncs ?? [])
          metrics.queueDepth.set(SyncMetrics.labels(sync.ctx), sync.queueDepth);
      })
    : undefined;

  const stop = stopSignals();
  const closeServers = async () => {
    await healthServer?.stop();
    await metricsServer?.stop();
  };

  const elector = new LeaderElector({
    client: leases,
    namespace: leaseNamespace,
    name: konnectorLeaseName,
    leaseDurationSeconds,
    logger,
    ...(process.env.POD_NAME ? { identity: `${process.env.POD_NAME}-${process.pid}` } : {}),
  });
  logger.info(
    { identity: elector.identity, lease: `${leaseNamespace}/${konnectorLeaseName}` },
    "waiting to become leader",
  );
  // acquire ends early only when stopped while standing by
  await elector.acquire(stop.signal).catch(() => undefined);
  if (stop.signal.aborted) {
    await closeServers();
    app.close();
    leases.close();
    return 0;
  }
  let lost: string | undefined;
  elector.keepRenewing((reason) => {
    lost = reason;
    stop.stop("lost leadership");
  });
  const holds = () => elector.holds();
  const what = "this konnector (no longer the leader)";
  const fencedApp = fenced(app, holds, what);
  konnector = new Konnector({
    app: fencedApp,
    appRegistry: new InformerRegistry(app, logger),
    logger,
    metrics,
    workers,
    heartbeatSeconds,
    tokenRenewFraction: renewAt,
    ...(values["binding-selector"] ? { bindingSelector: values["binding-selector"] } : {}),
    ...(appAccount ? { appAccount } : {}),
    version: buildInfo().version,
    controlClientOptions: { qps, burst, timeoutMs, userAgent: "klutch-bind-konnector" },
    controlClient: (text, options) => {
      const client = KubeClient.fromUntrustedKubeconfig(text, options);
      client.observeRequests(metrics.apiRequests("control"));
      controlClients.add(client);
      return {
        client: fenced(client, holds, what),
        close: () => {
          client.close();
          controlClients.delete(client);
        },
      };
    },
  });
  konnector.start();
  logger.info({ heartbeatSeconds, workers }, "konnector started");
  logStopping(logger, await stop.stopped, lost);
  await konnector.stop();
  await closeServers();
  if (!lost) await elector.release();
  app.close();
  leases.close();
  return lost ? 1 : 0;
}
