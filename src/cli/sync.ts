import { readFileSync } from "node:fs";
import { delimiter } from "node:path";
import { parseArgs } from "node:util";
import { setFlagsFromString } from "node:v8";
import { KubeClient } from "../kube/client.ts";
import { inClusterKubeconfig, readKubeconfigFile, readKubeconfigFiles } from "../kube/kubeconfig.ts";
import { defaultServiceNetworks, type Network, parseNetwork } from "../kube/server-addresses.ts";
import { createLogger } from "../log.ts";
import { minTokenSeconds } from "../sync/app-account.ts";
import { appCacheDefaults, defaultMaxExportsPerBinding } from "../sync/bindings.ts";
import { fenced } from "../sync/fence.ts";
import { type HealthReport, type HealthServer, serveHealth, standby } from "../sync/health.ts";
import { isKubeconfigSecretPolicy, kubeconfigSecretPolicies } from "../sync/kubeconfig-secret.ts";
import { LeaderElector } from "../sync/leader.ts";
import { startSync } from "../sync/manager.ts";
import { tenantLimitDefaults } from "../sync/tenant-limits.ts";
import { type RunningWeb, startWebServer, webClient } from "../web/server.ts";
import { UsageError } from "./usage.ts";

const flags = {
  kubeconfig: { type: "string" },
  namespace: { type: "string", short: "n" },
  workers: { type: "string", default: "8" },
  // bindings reconciled at once, and at most per namespace (one tenant's hanging app clusters hold no more)
  "binding-workers": { type: "string", default: "32" },
  // default a quarter of --binding-workers
  "binding-workers-per-namespace": { type: "string" },
  qps: { type: "string", default: "500" },
  burst: { type: "string", default: "1000" },
  "status-interval": { type: "string", default: "15" },
  "leader-elect": { type: "boolean", default: false },
  // "auto": replicas share the bindings, each holding a Lease (src/sync/shards.ts)
  shards: { type: "string", default: "" },
  "auto-export": { type: "boolean", default: true },
  "no-auto-export": { type: "boolean", default: false },
  "leader-election-namespace": { type: "string" },
  "lease-duration": { type: "string", default: "15" },
  "metrics-address": { type: "string", default: ":8080" },
  "health-address": { type: "string", default: ":8081" },
  "app-request-timeout": { type: "string", default: "10" },
  // app cluster servers on this host (127.0.0.1, ::1): for development and tests only
  "allow-loopback-app-servers": { type: "boolean", default: false },
  // the control plane's service network, refused for app cluster servers (default: from KUBERNETES_SERVICE_HOST)
  "service-cidr": { type: "string", multiple: true },
  // which Secrets may hold a binding's kubeconfig: marked ones (default) or any of the binding's namespace too
  "kubeconfig-secrets": { type: "string", default: "marked" },
  "template-namespace": { type: "string", multiple: true },
  // a binding's app cluster service account token is renewed at this share of its lifetime
  "app-token-renew-at": { type: "string", default: "0.8" },
  // the lifetime of renewed tokens (default: that of the token bind issued)
  "app-token-seconds": { type: "string" },
  "max-response-mib": { type: "string", default: "64" },
  "max-watch-event-mib": { type: "string", default: "16" },
  // what the app cluster caches of one namespace's bindings (one tenant's) hold together at most
  "app-cache-objects-per-namespace": { type: "string", default: String(appCacheDefaults.maxObjects) },
  "app-cache-mib-per-namespace": { type: "string", default: String(appCacheDefaults.maxBytes / 1024 / 1024) },
  // what the app cluster lists being read hold together (default a sixteenth of the heap limit)
  "app-lists-mib-in-flight": { type: "string" },
  // what one namespace's bindings (one tenant's) make on the control plane, and its requests in flight there
  "provider-namespaces-per-namespace": { type: "string", default: String(tenantLimitDefaults.providerNamespaces) },
  "control-watches-per-namespace": { type: "string", default: String(tenantLimitDefaults.controlWatches) },
  "control-requests-per-namespace": { type: "string", default: "16" },
  // a binding listing more exports syncs none of them (a condition names this flag)
  "max-exports-per-binding": { type: "string", default: String(defaultMaxExportsPerBinding) },
  "web-address": { type: "string", default: "" },
  "web-tls-cert": { type: "string" },
  "web-tls-key": { type: "string" },
  "web-namespace": { type: "string" },
  // the page's own identity (klutch-bind-web, deploy/control-plane/web-rbac.yaml); else the sync's
  "web-kubeconfig": { type: "string" },
  // V8 grows its heap by this percent after each full collection; 0 leaves V8's own growth
  "heap-growth": { type: "string", default: "25" },
  debug: { type: "boolean", short: "d", default: false },
} as const;

function readPem(flag: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new UsageError(`--${flag} ${path}: ${(err as Error).message}`);
  }
}

/** --service-cidr, repeated or comma-separated; "none" refuses no service network. */
function serviceNetworks(given: string[] | undefined): Network[] {
  if (given === undefined) return defaultServiceNetworks();
  const items = given.flatMap((v) => v.split(",")).map((v) => v.trim());
  if (items.length === 1 && items[0] === "none") return [];
  return items.map((item) => {
    try {
      return parseNetwork(item, "--service-cidr");
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  });
}

function positive(name: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new UsageError(`--${name} must be a positive whole number, got "${value}"`);
  return n;
}

/** `klutch-bind sync`: mirror every AppClusterBinding's exports until SIGTERM or SIGINT. */
export async function runSync(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: flags, strict: true });
  const kubeconfigSecrets = values["kubeconfig-secrets"];
  if (!isKubeconfigSecretPolicy(kubeconfigSecrets)) {
    throw new UsageError(
      `--kubeconfig-secrets must be one of ${kubeconfigSecretPolicies.join(", ")}, got "${kubeconfigSecrets}"`,
    );
  }
  const renewAt = Number(values["app-token-renew-at"]);
  if (!(renewAt > 0 && renewAt < 1)) {
    throw new UsageError(
      `--app-token-renew-at must be a share of the token's lifetime between 0 and 1, got "${values["app-token-renew-at"]}"`,
    );
  }
  const appTokenSeconds = values["app-token-seconds"]
    ? positive("app-token-seconds", values["app-token-seconds"])
    : undefined;
  if (appTokenSeconds !== undefined && appTokenSeconds < minTokenSeconds) {
    throw new UsageError(`--app-token-seconds must be at least ${minTokenSeconds} (TokenRequest's minimum)`);
  }
  if (values.shards !== "" && values.shards !== "auto") {
    throw new UsageError(`--shards takes "auto" (replicas share the bindings by their Leases), got "${values.shards}"`);
  }
  const sharded = values.shards === "auto";
  if (sharded && values["leader-elect"]) {
    throw new UsageError("--shards and --leader-elect exclude each other: with --shards every replica serves a share");
  }
  const heapGrowth = Number(values["heap-growth"]);
  if (!Number.isInteger(heapGrowth) || heapGrowth < 0 || heapGrowth > 1000) {
    throw new UsageError(`--heap-growth must be a whole percent from 0 to 1000, got "${values["heap-growth"]}"`);
  }
  // Measured (bench/sync, 10,000 objects, 20 bindings, cold start): V8's own growth let the heap
  // reach 127 MiB around 40 MiB of live objects, a peak RSS of 241 MiB; growing by 25% kept it at
  // 155 MiB for 3 s more CPU (16.6 s against 13.6 s). NODE_OPTIONS does not take this V8 flag;
  // V8 reads it whenever it sets a new heap limit, so setting it at start is in time.
  if (heapGrowth > 0) setFlagsFromString(`--heap-growing-percent=${heapGrowth}`);
  const serverAddresses = {
    allowLoopback: values["allow-loopback-app-servers"],
    serviceNetworks: serviceNetworks(values["service-cidr"]),
  };
  const leaseDurationSeconds = positive("lease-duration", values["lease-duration"]);
  const leaseNamespace = values["leader-election-namespace"] ?? process.env.POD_NAMESPACE ?? "crossplane-system";
  const logger = createLogger("sync", values.debug);
  logger.info(
    {
      loopback: serverAddresses.allowLoopback ? "allowed" : "refused",
      serviceNetworks: serverAddresses.serviceNetworks.map((n) => n.text),
    },
    "app cluster servers refused on link-local addresses, these service networks and, unless allowed, loopback",
  );
  // --kubeconfig, else KUBECONFIG's files, else the pod's service account (never ~/.kube/config)
  const kubeconfig = values.kubeconfig
    ? readKubeconfigFile(values.kubeconfig)
    : process.env.KUBECONFIG
      ? readKubeconfigFiles(process.env.KUBECONFIG.split(delimiter))
      : inClusterKubeconfig();
  const clientOptions = {
    qps: positive("qps", values.qps),
    burst: positive("burst", values.burst),
    userAgent: "klutch-bind-sync",
  };
  const control = KubeClient.fromConfig(kubeconfig, {
    ...clientOptions,
    maxRequestsPerTenant: positive("control-requests-per-namespace", values["control-requests-per-namespace"]),
  });
  // Leases get a client of their own: with 3 replicas cold-starting 10,000 objects on 2 cores, shard
  // renewals queued behind the bulk requests missed their deadline and the replicas stopped (bench)
  const leases = KubeClient.fromConfig(kubeconfig, { ...clientOptions, userAgent: "klutch-bind-sync-leases" });
  const appClientOptions = {
    ...clientOptions,
    timeoutMs: positive("app-request-timeout", values["app-request-timeout"]) * 1000,
    maxResponseBytes: positive("max-response-mib", values["max-response-mib"]) * 1024 * 1024,
    maxWatchEventBytes: positive("max-watch-event-mib", values["max-watch-event-mib"]) * 1024 * 1024,
  };
  // A promise nobody awaited failed: a bug, logged loudly, but not a reason to stop syncing every
  // other tenant (each reconcile already handles its own errors).
  process.on("unhandledRejection", (err) => {
    logger.error(
      { err: err instanceof Error ? err.message : String(err) },
      "unhandled rejection (a bug; please report it)",
    );
  });
  // health first, so that a standby waiting for leadership answers its probes
  let health: () => HealthReport = () => standby;
  let healthServer: HealthServer | undefined;
  if (values["health-address"]) {
    healthServer = await serveHealth(values["health-address"], () => health());
  }
  const stopping = new AbortController();
  let stopRequested: (signal: string) => void = () => undefined;
  const stopped = new Promise<string>((resolve) => {
    stopRequested = resolve;
  });
  process.once("SIGTERM", () => stopRequested("SIGTERM"));
  process.once("SIGINT", () => stopRequested("SIGINT"));
  void stopped.then(() => stopping.abort());

  // the web page works without leadership (it only reads and creates bindings), so every replica serves it
  let web: RunningWeb | undefined;
  if (values["web-address"]) {
    const cert = values["web-tls-cert"];
    const key = values["web-tls-key"];
    if ((cert === undefined) !== (key === undefined)) {
      throw new UsageError("--web-tls-cert and --web-tls-key go together");
    }
    const webKubeconfig = values["web-kubeconfig"];
    web = await startWebServer({
      ...(webKubeconfig ? { control: webClient(webKubeconfig), closeControl: true } : { control }),
      logger: createLogger("web", values.debug),
      address: values["web-address"],
      defaultNamespace: values["web-namespace"] ?? values.namespace ?? process.env.POD_NAMESPACE ?? "crossplane-system",
      allowLoopbackAppServers: serverAddresses.allowLoopback,
      serviceNetworks: serverAddresses.serviceNetworks,
      ...(cert && key ? { tls: { cert: readPem("web-tls-cert", cert), key: readPem("web-tls-key", key) } } : {}),
    });
  }

  let elector: LeaderElector | undefined;
  if (values["leader-elect"]) {
    elector = new LeaderElector({
      client: leases,
      namespace: leaseNamespace,
      name: "klutch-bind-sync",
      leaseDurationSeconds,
      logger,
    });
    logger.info({ identity: elector.identity }, "waiting to become leader");
    try {
      await elector.acquire(stopping.signal);
    } catch {
      await web?.stop();
      await healthServer?.stop();
      control.close();
      leases.close();
      return 0; // stopped while standing by
    }
  }

  // --leader-elect: lost leadership ends the process (a replica of --shards joins again by itself: shards.ts)
  let lost: string | undefined;
  const onLost = (reason: string) => {
    lost = reason;
    stopRequested("lost leadership");
  };
  // renewing from the start: startSync lists the control plane first, which may outlast the lease
  elector?.keepRenewing(onLost);
  // a leader writes only while its lease holds, judged at each write (a freeze outlasting the lease
  // would otherwise let it write beside the replica that took over)
  const leader = elector;
  const writeGate = leader ? () => leader.holds() : undefined;
  const sync = await startSync({
    control: writeGate ? fenced(control, writeGate, "this replica (no longer the leader)") : control,
    ...(writeGate ? { writeGate } : {}),
    logger,
    workers: positive("workers", values.workers),
    bindingWorkers: positive("binding-workers", values["binding-workers"]),
    ...(values["binding-workers-per-namespace"] === undefined
      ? {}
      : {
          bindingWorkersPerNamespace: positive(
            "binding-workers-per-namespace",
            values["binding-workers-per-namespace"],
          ),
        }),
    ...(values.namespace ? { namespace: values.namespace } : {}),
    appCacheLimits: {
      maxObjects: positive("app-cache-objects-per-namespace", values["app-cache-objects-per-namespace"]),
      maxBytes: positive("app-cache-mib-per-namespace", values["app-cache-mib-per-namespace"]) * 1024 * 1024,
    },
    ...(values["app-lists-mib-in-flight"] === undefined
      ? {}
      : { appListBytesInFlight: positive("app-lists-mib-in-flight", values["app-lists-mib-in-flight"]) * 1024 * 1024 }),
    tenantLimits: {
      providerNamespaces: positive("provider-namespaces-per-namespace", values["provider-namespaces-per-namespace"]),
      controlWatches: positive("control-watches-per-namespace", values["control-watches-per-namespace"]),
    },
    maxExportsPerBinding: positive("max-exports-per-binding", values["max-exports-per-binding"]),
    appClientOptions,
    allowLoopbackAppServers: serverAddresses.allowLoopback,
    serviceNetworks: serverAddresses.serviceNetworks,
    kubeconfigSecrets,
    appTokenRenewFraction: renewAt,
    ...(appTokenSeconds ? { appTokenSeconds } : {}),
    ...(values["metrics-address"] ? { metricsAddress: values["metrics-address"] } : {}),
    resyncMs: positive("status-interval", values["status-interval"]) * 1000,
    // templates come from here only: by default the sync's own namespace and the bindings'
    templateNamespaces: values["template-namespace"] ?? [
      process.env.POD_NAMESPACE ?? "crossplane-system",
      ...(values.namespace ? [values.namespace] : []),
    ],
    autoExport: values["auto-export"] && !values["no-auto-export"],
    leaseClient: leases,
    ...(sharded ? { shards: { namespace: leaseNamespace, leaseDurationSeconds } } : {}),
  });
  health = () => sync.controller.health();
  const signal = await stopped;
  logger[lost ? "error" : "info"](
    { signal, reason: lost },
    lost ? "lost leadership: stopping at once" : "shutting down",
  );
  await web?.stop();
  await sync.stop();
  await healthServer?.stop();
  if (!lost) await elector?.release();
  control.close();
  leases.close();
  return lost ? 1 : 0;
}
