import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { setFlagsFromString } from "node:v8";
import { isKubeconfigSecretPolicy, kubeconfigSecretPolicies } from "../api/kubeconfig-secret.ts";
import { minTokenSeconds } from "../app-access/account.ts";
import { KubeClient } from "../kube/client.ts";
import { defaultServiceNetworks, type Network, parseNetwork } from "../kube/server-addresses.ts";
import { createLogger } from "../log.ts";
import { appCacheDefaults, defaultMaxExportsPerBinding } from "../sync/binding/options.ts";
import { type HealthReport, type HealthServer, serveHealth, standby } from "../sync/health.ts";
import { startSync } from "../sync/manager.ts";
import { fenced } from "../sync/replicas/fence.ts";
import { LeaderElector } from "../sync/replicas/leader.ts";
import { tenantLimitDefaults } from "../sync/tenants/limits.ts";
import { checkOidcSettings, type OidcSettings } from "../web/oidc.ts";
import { type RunningWeb, startWebServer, webClient } from "../web/server.ts";
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

export const syncFlags = {
  ...podKubeconfigFlag("the control plane"),
  namespace: {
    type: "string",
    short: "n",
    value: "NAMESPACE",
    description:
      "serve only the bindings of this namespace (such a sync cannot see other namespaces' bindings, so it " +
      "respects their marks on app clusters)",
    defaultText: "every namespace",
  },
  workers: { type: "string", default: "8", value: "N", description: "workers per export" },
  "binding-workers": { type: "string", default: "32", value: "N", description: "bindings reconciled at once" },
  "binding-workers-per-namespace": {
    type: "string",
    value: "N",
    description:
      "bindings of one namespace (one tenant's) reconciled at once, so that one tenant's hanging app clusters " +
      "cannot stall other tenants' bindings",
    defaultText: "a quarter of --binding-workers",
  },
  ...rateFlags({ qps: "500", burst: "1000" }, "to the control plane, and to each app cluster"),
  "status-interval": {
    type: "string",
    default: "15",
    value: "SECONDS",
    description: "how often every binding is reconciled again, its status brought up to date",
  },
  "leader-elect": {
    type: "boolean",
    default: false,
    description: "one replica serves, holding a Lease (klutch-bind-sync); the others stand by",
  },
  shards: {
    type: "string",
    default: "",
    value: "auto",
    description:
      '"auto": every replica serves a share of the bindings, each share held by a Lease; replicas come and go ' +
      "freely (excludes --leader-elect)",
    defaultText: "off",
  },
  "auto-export": {
    type: "boolean",
    default: true,
    description: 'keep one ServiceExport per XRD labelled bind.klutch.dev/export: "true"',
  },
  "no-auto-export": { type: "boolean", default: false, description: "turn --auto-export off" },
  "pull-bindings": {
    type: "boolean",
    default: false,
    description:
      "serve pull bindings (klutch-bind's ClusterBinding, APIServiceExportRequest, APIServiceNamespace in cluster " +
      "namespaces); their CRDs must be installed. App clusters connect with klutch-bind konnector (preview)",
  },
  "pull-binding-selector": {
    type: "string",
    value: "LABELS",
    description:
      "with --pull-bindings: serve only the cluster namespaces that also carry these labels (key=value,...), " +
      "e.g. to split tenants between syncs",
  },
  ...leaseFlags({
    namespaceOf: "the Leases of --leader-elect and --shards",
    durationOf: "a Lease of --leader-elect or --shards",
    defaultNamespace: "crossplane-system",
  }),
  ...endpointFlags(
    "; they judge the process (the control plane's caches listed, the work queue running), never an app " +
      "cluster, and answer from the start, also while waiting for leadership",
  ),
  "app-request-timeout": {
    type: "string",
    default: "10",
    value: "SECONDS",
    description: "the time allowed each request to an app cluster",
  },
  "allow-loopback-app-servers": {
    type: "boolean",
    default: false,
    description:
      "allow app cluster servers on this host (127.0.0.1, ::1), for development and tests only; link-local " +
      "addresses are always refused",
  },
  "service-cidr": {
    type: "string",
    multiple: true,
    value: "CIDR,...",
    description:
      'the control plane\'s service network, refused for app cluster servers; comma-separated too; "none" for no network',
    defaultText: "the /12 (IPv6: /108) holding KUBERNETES_SERVICE_HOST; outside a cluster none",
  },
  "kubeconfig-secrets": {
    type: "string",
    default: "marked",
    value: "POLICY",
    description:
      'which Secrets may hold a binding\'s kubeconfig: "marked" ones only, or "same-namespace": any Secret ' +
      'of the binding\'s own namespace too (README, "Security model")',
  },
  "template-namespace": {
    type: "string",
    multiple: true,
    value: "NAMESPACE",
    description: "a namespace whose APIServiceExportTemplates are followed; templates come from these only",
    defaultText: "the sync's own namespace (POD_NAMESPACE, else crossplane-system) and --namespace",
  },
  "app-token-renew-at": {
    type: "string",
    default: "0.8",
    value: "SHARE",
    description: "a binding's app cluster service account token is renewed at this share of its lifetime",
  },
  "app-token-seconds": {
    type: "string",
    value: "SECONDS",
    description: `the lifetime of renewed app cluster tokens, at least ${minTokenSeconds}`,
    defaultText: "that of the token bind issued",
  },
  "max-response-mib": {
    type: "string",
    default: "64",
    value: "MIB",
    description: "the largest response accepted from an app cluster, in MiB",
  },
  "max-watch-event-mib": {
    type: "string",
    default: "16",
    value: "MIB",
    description: "the largest watch event accepted from an app cluster, in MiB",
  },
  "app-cache-objects-per-namespace": {
    type: "string",
    default: String(appCacheDefaults.maxObjects),
    value: "N",
    description:
      "the objects the app cluster caches of one namespace's bindings (one tenant's) hold together at most; past " +
      "it a binding says Connected=False, ListWatchFailing naming this flag, and what is beyond is not synced",
  },
  "app-cache-mib-per-namespace": {
    type: "string",
    default: String(appCacheDefaults.maxBytes / 1024 / 1024),
    value: "MIB",
    description:
      "the MiB the app cluster caches of one namespace's bindings (one tenant's) hold together at most; past it " +
      "a binding says Connected=False, ListWatchFailing naming this flag, and what is beyond is not synced",
  },
  "app-lists-mib-in-flight": {
    type: "string",
    value: "MIB",
    description: "the MiB that lists still being read from app clusters hold together at most",
    defaultText: "a sixteenth of the heap limit",
  },
  "provider-namespaces-per-namespace": {
    type: "string",
    default: String(tenantLimitDefaults.providerNamespaces),
    value: "N",
    description: "the provider namespaces one namespace's bindings (one tenant's) make on the control plane at most",
  },
  "control-watches-per-namespace": {
    type: "string",
    default: String(tenantLimitDefaults.controlWatches),
    value: "N",
    description: "the control plane watches one namespace's bindings (one tenant's) hold at most, per replica",
  },
  "control-requests-per-namespace": {
    type: "string",
    default: "16",
    value: "N",
    description: "the control plane requests one namespace's bindings (one tenant's) have in flight at once",
  },
  "max-exports-per-binding": {
    type: "string",
    default: String(defaultMaxExportsPerBinding),
    value: "N",
    description: "a binding listing more exports syncs none of them (a condition names this flag)",
  },
  "web-address": {
    type: "string",
    default: "",
    value: "HOST:PORT",
    description: "serve the web page for binding here (every replica serves it, leader or not)",
    defaultText: "off",
  },
  "web-tls-cert": {
    type: "string",
    value: "FILE",
    description: "the web page's TLS certificate (PEM), with --web-tls-key; without both it serves plain HTTP",
  },
  "web-tls-key": { type: "string", value: "FILE", description: "the web page's TLS key (PEM), with --web-tls-cert" },
  "web-namespace": {
    type: "string",
    value: "NAMESPACE",
    description: "the namespace the web page shows and binds into when its address names none",
    defaultText: "--namespace, else POD_NAMESPACE, else crossplane-system",
  },
  "web-kubeconfig": {
    type: "string",
    value: "FILE",
    description:
      "the web page's own identity on the control plane (klutch-bind-web, deploy/control-plane/web-rbac.yaml)",
    defaultText: "the sync's",
  },
  "oidc-issuer-url": {
    type: "string",
    value: "URL",
    description:
      "let people sign in to the web page with this OpenID Connect issuer (https), which the control plane's API " +
      "server must trust with the same client ID (kube-apiserver --oidc-issuer-url, --oidc-client-id)",
    env: "OIDC_ISSUER_URL",
    defaultText: "off",
  },
  "oidc-client-id": {
    type: "string",
    value: "ID",
    description: "the web page's client ID at the OpenID Connect issuer: the audience of the ID tokens",
    env: "OIDC_CLIENT_ID",
  },
  "oidc-client-secret-file": {
    type: "string",
    value: "FILE",
    description:
      "a file holding the client secret (a confidential client); else the secret is read from the environment " +
      "variable OIDC_CLIENT_SECRET; without either the page is a public client (PKCE only)",
  },
  "oidc-ca-file": {
    type: "string",
    value: "FILE",
    description: "the CA certificates (PEM) that signed the issuer's certificate",
    env: "OIDC_CA_FILE",
    defaultText: "Node.js's public CAs",
  },
  "oidc-redirect-url": {
    type: "string",
    value: "URL",
    description:
      "where the issuer sends people back, as registered there: the page's external URL + /oidc/callback " +
      "(behind a proxy or ingress)",
    env: "OIDC_REDIRECT_URL",
    defaultText: "the page's own address + /oidc/callback",
  },
  "oidc-scopes": {
    type: "string",
    default: "openid",
    value: "SCOPES",
    description:
      "the scopes asked for, comma-separated, openid among them: add those that put the API server's username " +
      "and groups claims in the ID token (e.g. openid,email,groups)",
  },
  "web-oidc-only": {
    type: "boolean",
    default: false,
    description: "sign people in to the web page with OpenID Connect only: no bearer token form",
  },
  "heap-growth": {
    type: "string",
    default: "25",
    value: "PERCENT",
    description:
      "V8 grows its heap by this percent after each full collection (smaller peaks for a little more CPU); " +
      "0 leaves V8's own growth",
  },
  ...debugFlag,
} as const satisfies FlagDefinitions;

export const syncHelp: CommandHelp = {
  usage: "sync [flags]",
  description:
    "Mirrors every AppClusterBinding's exports until SIGTERM or SIGINT: the app cluster's objects of the bound " +
    "APIs to the control plane, their status and the objects of accepted permission claims back. It keeps " +
    "ServiceExports of labelled XRDs (--auto-export) and can serve the web page for binding (--web-address).",
  flags: syncFlags,
  examples: [
    "klutch-bind sync --kubeconfig control.yaml --allow-loopback-app-servers --web-address 127.0.0.1:8090",
    "klutch-bind sync --shards auto --kubeconfig-secrets=marked   # in the control plane's pod",
  ],
};

function readPem(flag: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new UsageError(`--${flag} ${path}: ${(err as Error).message}`);
  }
}

type OidcFlags = {
  "oidc-issuer-url"?: string | undefined;
  "oidc-client-id"?: string | undefined;
  "oidc-client-secret-file"?: string | undefined;
  "oidc-ca-file"?: string | undefined;
  "oidc-redirect-url"?: string | undefined;
  "oidc-scopes"?: string | undefined;
};

/** The web page's OpenID Connect settings from the --oidc-* flags and their environment variables. */
function oidcSettings(values: OidcFlags): OidcSettings | undefined {
  const env = (name: string) => process.env[name] || undefined;
  const issuerUrl = values["oidc-issuer-url"] ?? env("OIDC_ISSUER_URL");
  if (issuerUrl === undefined) return undefined;
  const clientId = values["oidc-client-id"] ?? env("OIDC_CLIENT_ID");
  if (clientId === undefined) throw new UsageError("--oidc-issuer-url needs --oidc-client-id");
  const secretFile = values["oidc-client-secret-file"];
  const clientSecret = secretFile
    ? readPem("oidc-client-secret-file", secretFile).toString("utf8").trim()
    : env("OIDC_CLIENT_SECRET");
  const caFile = values["oidc-ca-file"] ?? env("OIDC_CA_FILE");
  const redirectUrl = values["oidc-redirect-url"] ?? env("OIDC_REDIRECT_URL");
  const scopes = (values["oidc-scopes"] ?? "openid").split(/[\s,]+/).filter((scope) => scope !== "");
  const settings: OidcSettings = {
    issuerUrl,
    clientId,
    ...(clientSecret ? { clientSecret } : {}),
    ...(caFile ? { ca: readPem("oidc-ca-file", caFile) } : {}),
    ...(redirectUrl ? { redirectUrl } : {}),
    scopes,
  };
  try {
    checkOidcSettings(settings);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  return settings;
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

/** `klutch-bind sync`: mirror every AppClusterBinding's exports until SIGTERM or SIGINT. */
export async function runSync(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: syncFlags, strict: true });
  const kubeconfigSecrets = values["kubeconfig-secrets"];
  if (!isKubeconfigSecretPolicy(kubeconfigSecrets)) {
    throw new UsageError(
      `--kubeconfig-secrets must be one of ${kubeconfigSecretPolicies.join(", ")}, got "${kubeconfigSecrets}"`,
    );
  }
  const renewAt = lifetimeShare("app-token-renew-at", values["app-token-renew-at"]);
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
  // checked here, before anything starts: a usage error later would leave clients and servers running
  const oidc = oidcSettings(values);
  const pullBindingSelector = labelEqualities("pull-binding-selector", values["pull-binding-selector"]);
  if (values["web-oidc-only"] && oidc === undefined) throw new UsageError("--web-oidc-only needs --oidc-issuer-url");
  if ((values["web-tls-cert"] === undefined) !== (values["web-tls-key"] === undefined)) {
    throw new UsageError("--web-tls-cert and --web-tls-key go together");
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
  const kubeconfig = podKubeconfig(values.kubeconfig);
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
  logUnhandledRejections(logger);
  // health first, so that a standby waiting for leadership answers its probes
  let health: () => HealthReport = () => standby;
  let healthServer: HealthServer | undefined;
  if (values["health-address"]) {
    healthServer = await serveHealth(values["health-address"], () => health());
  }
  const stop = stopSignals();

  // the web page works without leadership (it only reads and creates bindings), so every replica serves it
  let web: RunningWeb | undefined;
  if (values["web-address"]) {
    const cert = values["web-tls-cert"];
    const key = values["web-tls-key"];
    const webKubeconfig = values["web-kubeconfig"];
    web = await startWebServer({
      ...(webKubeconfig ? { control: webClient(webKubeconfig), closeControl: true } : { control }),
      logger: createLogger("web", values.debug),
      address: values["web-address"],
      defaultNamespace: values["web-namespace"] ?? values.namespace ?? process.env.POD_NAMESPACE ?? "crossplane-system",
      allowLoopbackAppServers: serverAddresses.allowLoopback,
      serviceNetworks: serverAddresses.serviceNetworks,
      ...(cert && key ? { tls: { cert: readPem("web-tls-cert", cert), key: readPem("web-tls-key", key) } } : {}),
      ...(oidc ? { oidc, tokenSignIn: !values["web-oidc-only"] } : {}),
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
      await elector.acquire(stop.signal);
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
    stop.stop("lost leadership");
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
    pullBindings: values["pull-bindings"],
    ...(pullBindingSelector ? { pullBindingSelector } : {}),
    leaseClient: leases,
    ...(sharded ? { shards: { namespace: leaseNamespace, leaseDurationSeconds } } : {}),
  });
  health = () => sync.controller.health();
  logStopping(logger, await stop.stopped, lost);
  await web?.stop();
  await sync.stop();
  await healthServer?.stop();
  if (!lost) await elector?.release();
  control.close();
  leases.close();
  return lost ? 1 : 0;
}

/** A selector of label equalities (key=value,...), checked here rather than by every list the API server refuses. */
function labelEqualities(flag: string, value: string | undefined): string | undefined {
  if (value === undefined || value === "") return undefined;
  const pair =
    /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?=([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;
  for (const part of value.split(",")) {
    if (!pair.test(part)) throw new UsageError(`--${flag}: "${part}" is not a label key=value`);
  }
  return value;
}
