// The context a binding hands the mirroring of one of its exports (../mirror/export-context.ts):
// its clients, fenced to this replica's share of the bindings and to the binding's own work; the
// provider namespaces and app namespace access it may make; its conflicts as Warning events; its
// tenant's control-plane watches.
import type { PermissionClaim } from "../../export/types.ts";
import type { KubeClient, ResourceRef } from "../../kube/client.ts";
import { bindingObject, type EventRecorder } from "../events.ts";
import type { ExportContext } from "../mirror/export-context.ts";
import { fenced, NotServedError } from "../replicas/fence.ts";
import { stageLog } from "../stages.ts";
import type { TenantLimits } from "../tenants/limits.ts";
import type { ProviderAccess } from "../tenants/provider-access.ts";
import type { BindingControllerOptions } from "./options.ts";
import type { BindingState } from "./state.ts";

export type MirrorContextDeps = {
  options: BindingControllerOptions;
  access: ProviderAccess;
  limits: TenantLimits;
  events: EventRecorder;
};

export function mirrorContext(
  deps: MirrorContextDeps,
  state: BindingState,
  ref: ResourceRef,
  claims: PermissionClaim[],
  claimsRole: string | undefined,
): ExportContext {
  const o = deps.options;
  const log = o.logger.child({
    binding: state.key,
    export: `${ref.resource}.${ref.group}`,
  });
  const id = `${ref.resource}.${ref.group}`;
  const namespaceAccess = state.namespaceAccess;
  const shard = o.shard;
  const mayWrite = () => shard === undefined || (shard.mayWrite(state.ref.uid) && !state.cancelled.signal.aborted);
  const client = (c: KubeClient) => (shard === undefined ? c : fenced(c, mayWrite, `binding ${state.key}`));
  // one tenant's requests wait their turn among its own (tenant-share.ts), not before everyone's
  const control = client(o.control.forTenant(state.ref.namespace));
  return {
    binding: state.ref,
    ref,
    claims,
    control,
    app: client(state.app as KubeClient),
    log,
    metrics: o.metrics,
    ensureProviderNamespace: async (appNs) => {
      if (!mayWrite()) throw new NotServedError(`binding ${state.key}`);
      const ns = await deps.access.ensureNamespace(state.ref, appNs, state.namespaces, control);
      if (claimsRole !== undefined && claims.length > 0) {
        await deps.access.ensureClaimsAccess(state.ref, ns, id, claimsRole, state.namespaces, control);
      }
      return ns;
    },
    ...(namespaceAccess && claims.length > 0
      ? {
          ensureAppNamespaceAccess: async (appNs: string) => {
            if (!mayWrite()) throw new NotServedError(`binding ${state.key}`);
            await namespaceAccess.ensure(appNs);
          },
        }
      : {}),
    reportConflict: (text) => void deps.events.warn(bindingObject(state.ref), "NameConflict", text, control),
    controlWatch: () => deps.limits.takeWatch(state.ref.namespace),
    stage: stageLog(log, state.seenAt),
  };
}
