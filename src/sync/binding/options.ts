// What a binding controller is told: its clients, its limits per tenant, its share of the bindings
// (shards, leader), and their defaults.
import type { Logger } from "pino";
import type { KubeconfigSecretPolicy } from "../../api/kubeconfig-secret.ts";
import type { CacheLimits } from "../../kube/cache-budget.ts";
import type { ClientOptions, KubeClient } from "../../kube/client.ts";
import type { InformerRegistry } from "../informers.ts";
import type { SyncMetrics } from "../metrics.ts";
import type { TenantLimitValues } from "../tenants/limits.ts";

export type BindingControllerOptions = {
  control: KubeClient;
  controlInformers: InformerRegistry;
  logger: Logger;
  metrics: SyncMetrics;
  workers: number;
  /** serve the bindings of this namespace only; all when undefined */
  namespace?: string;
  appClientOptions?: ClientOptions;
  /** which Secrets may hold a binding's kubeconfig (see api/kubeconfig-secret.ts); default marked */
  kubeconfigSecrets?: KubeconfigSecretPolicy;
  /** renew a binding's service account token at this share of its lifetime (default 0.8) */
  appTokenRenewFraction?: number;
  /** the lifetime of renewed tokens, in seconds; default the current token's */
  appTokenSeconds?: number;
  /** how often the status of each binding is refreshed */
  resyncMs?: number;
  /**
   * where templates are read (never cluster-wide: whoever may write a template elsewhere must not
   * decide what bindings sync); default crossplane-system and the bindings' namespace
   */
  templateNamespaces?: string[];
  /**
   * bindings reconciled at once: each waits mostly on its own app cluster, so a hanging one holds
   * one worker and no more (default 32)
   */
  bindingWorkers?: number;
  /**
   * bindings of one namespace (one tenant's) reconciled at once at most, so one tenant's hanging app
   * clusters cannot hold every worker (default a quarter of bindingWorkers)
   */
  bindingWorkersPerNamespace?: number;
  /**
   * one replica of several (replicas/shards.ts): it serves the bindings serves() says, and names itself in
   * their status; a binding's syncs write only while mayWrite() says yes (replicas/fence.ts)
   */
  shard?: { identity: string; serves: (uid: string) => boolean; mayWrite: (uid: string) => boolean };
  /** --leader-elect: app cluster writes go out only while this says yes (replicas/fence.ts) */
  writeGate?: () => boolean;
  /**
   * what the app cluster caches of one namespace's bindings (one tenant's) hold together at most
   * (default appCacheDefaults): a cluster that sends endless objects fills its tenant's share only
   */
  appCacheLimits?: CacheLimits;
  /**
   * what the lists being read from app clusters hold together at most, every namespace's (default
   * defaultListCeilingBytes(): a sixteenth of the heap limit); one namespace's hold half of it at most
   */
  appListBytesInFlight?: number;
  /** what one namespace's bindings (one tenant's) make on the control plane at most (default tenantLimitDefaults) */
  tenantLimits?: TenantLimitValues;
  /**
   * how long a hand-over (or stop) waits for a binding's reconcile under way before it cancels it
   * (default 1 s): a tenant's cluster that never answers must not hold the Lease's list
   */
  handOverWaitMs?: number;
  /** a binding listing more exports syncs none of them (default 50; --max-exports-per-binding) */
  maxExportsPerBinding?: number;
  /** exports of one namespace's bindings (one tenant's) reconciled at once at most (default 16) */
  exportsPerNamespace?: number;
};

export const appCacheDefaults: CacheLimits = { maxObjects: 50_000, maxBytes: 256 * 1024 * 1024 };
export const defaultMaxExportsPerBinding = 50;

/** The template namespaces a controller watches: as configured, else crossplane-system and the bindings' namespace. */
export function templateNamespacesOf(options: { templateNamespaces?: string[]; namespace?: string }): string[] {
  const configured = options.templateNamespaces?.filter((n) => n !== "");
  if (configured !== undefined && configured.length > 0) return [...new Set(configured)];
  return [...new Set(["crossplane-system", ...(options.namespace ? [options.namespace] : [])])];
}
