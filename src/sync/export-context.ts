import type { Logger } from "pino";
import type { PermissionClaim } from "../export/types.ts";
import type { KubeClient, ResourceRef } from "../kube/client.ts";
import type { SyncMetrics } from "./metrics.ts";

export type BindingRef = { uid: string; name: string; namespace: string };

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
  /** a problem the user must act on: logged, and shown on the binding's status */
  reportConflict: (message: string) => void;
};
