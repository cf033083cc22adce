// Letting go of a binding, or of one export of it: what `klutch-bind unbind` does, done by the sync
// itself when the binding is deleted (kubectl, GitOps) or an export leaves its spec. App objects
// lose our finalizer; provider copies stay (deletionPolicy Orphan, the default: nothing is lost) or
// are deleted (Delete); the sync's own access to the provider namespaces goes either way.
import type { Logger } from "pino";
import { KubeApiError, type KubeClient, type KubeObject, type ResourceRef } from "../kube/client.ts";
import { finalizer, labels } from "./naming.ts";
import { refs } from "./resources.ts";

export type DeletionPolicy = "Orphan" | "Delete";

export type ReleaseTarget = {
  control: KubeClient;
  /** undefined when the binding has no usable kubeconfig: app objects cannot be released then */
  app: KubeClient | undefined;
  bindingUid: string;
  policy: DeletionPolicy;
  log: Logger;
};

/** Counts of what a release did, for the log and the tests. */
export type Released = { appObjects: number; providerCopies: number; accessRemoved: number };

/** Objects of ref in the app cluster that carry our finalizer for this binding (or for no binding in particular). */
function heldByUs(obj: KubeObject, bindingUid: string): boolean {
  const owner = obj.metadata.labels?.[labels.binding];
  return obj.metadata.finalizers?.includes(finalizer) === true && (owner === undefined || owner === bindingUid);
}

/** Releases one export of a binding: ref is the exported resource, exportId its "resource.group". */
export async function releaseExport(target: ReleaseTarget, ref: ResourceRef, exportId: string): Promise<Released> {
  const done: Released = { appObjects: 0, providerCopies: 0, accessRemoved: 0 };
  const { control, app, bindingUid, policy } = target;
  if (app !== undefined) {
    const listed = await app.list(ref).catch((err: unknown) => {
      // the API was never installed there: nothing of ours to release
      if (err instanceof KubeApiError && err.code === 404) return { items: [] };
      throw err;
    });
    for (const obj of listed.items) {
      if (!heldByUs(obj, bindingUid)) continue;
      const { [labels.binding]: _ours, ...otherLabels } = obj.metadata.labels ?? {};
      await ignoreGone(
        app.update(ref, {
          ...obj,
          metadata: {
            ...obj.metadata,
            labels: otherLabels,
            finalizers: (obj.metadata.finalizers ?? []).filter((f) => f !== finalizer),
          },
        }),
      );
      done.appObjects++;
    }
  }
  const ours = { labelSelector: `${labels.binding}=${bindingUid}` };
  if (policy === "Delete") {
    const copies = await control.list(ref, ours).catch(notInstalled);
    for (const copy of copies.items) {
      if (copy.metadata.deletionTimestamp !== undefined) continue;
      await control.delete(ref, copy.metadata.name, copy.metadata.namespace, {
        propagationPolicy: "Background",
        uid: copy.metadata.uid,
      });
      done.providerCopies++;
    }
  }
  const access = await control.list(refs.roleBindings, ours);
  for (const rb of access.items) {
    if (rb.metadata.name !== claimsAccessName(exportId)) continue;
    await control.delete(refs.roleBindings, rb.metadata.name, rb.metadata.namespace);
    done.accessRemoved++;
  }
  target.log.info({ export: exportId, policy, ...done }, "released export");
  return done;
}

/** After every export is released: with Delete, the binding's provider namespaces go too. */
export async function releaseNamespaces(target: ReleaseTarget): Promise<number> {
  if (target.policy !== "Delete") return 0;
  const namespaces = await target.control.list(refs.namespaces, {
    labelSelector: `${labels.binding}=${target.bindingUid}`,
  });
  for (const ns of namespaces.items) {
    if (ns.metadata.deletionTimestamp === undefined) await target.control.delete(refs.namespaces, ns.metadata.name);
  }
  return namespaces.items.length;
}

/** The RoleBinding that gives the sync an export's claimed resources in one provider namespace. */
export function claimsAccessName(exportId: string): string {
  return `klutch-bind:claims:${exportId}`.slice(0, 253);
}

function notInstalled(err: unknown): { items: KubeObject[] } {
  if (err instanceof KubeApiError && err.code === 404) return { items: [] };
  throw err;
}

async function ignoreGone(write: Promise<unknown>): Promise<void> {
  try {
    await write;
  } catch (err) {
    if (err instanceof KubeApiError && err.isNotFound) return;
    throw err;
  }
}
