import type { Logger } from "pino";
import type { PermissionClaim } from "../../export/types.ts";
import type { KubeClient, ResourceRef } from "../../kube/client.ts";
import type { SyncMetrics } from "../metrics.ts";
import type { StageLog } from "../stages.ts";
import type { TenantLimitReached } from "../tenants/limits.ts";
import type { ControlScope } from "./control-scope.ts";

/** apiVersion: the binding's kind (ours when absent) */
export type BindingRef = { uid: string; name: string; namespace: string; apiVersion?: string };

/** What the reconcilers of one bound export of one binding work with. */
export type ExportContext = {
  binding: BindingRef;
  /** the exported resource, the same on both sides */
  ref: ResourceRef;
  claims: PermissionClaim[];
  control: KubeClient;
  app: KubeClient;
  log: Logger;
  metrics: SyncMetrics;
  /** creates (once) the provider namespace mirroring an app namespace; returns its name */
  ensureProviderNamespace: (appNamespace: string) => Promise<string>;
  /**
   * makes the claimed resources of app namespace appNamespace reachable for the app client (a
   * binding's service account: its claims role bound there); absent when the client reaches them
   * anyway
   */
  ensureAppNamespaceAccess?: (appNamespace: string) => Promise<void>;
  /** a name conflict the user must act on: a Warning event on the binding (the export's status shows it while it lasts) */
  reportConflict: (message: string) => void;
  /**
   * one more control-plane watch for the binding's namespace (tenants/limits.ts): its release, or
   * why not; every watch is allowed when absent
   */
  controlWatch?: () => (() => void) | TenantLimitReached;
  /** the stages of the export's start, with debug lines only (stages.ts) */
  stage?: StageLog;
  /**
   * where to look on the control plane for the provider namespaces and copies (control-scope.ts);
   * absent: across the cluster, by label (the sync's rights)
   */
  controlScope?: ControlScope;
};
