// Letting go of one bound export, the part the push sync (../binding/release.ts, an AppClusterBinding
// deleted or an export leaving it) and the konnector (../../konnector, an APIServiceBinding deleted)
// share: the app objects lose our finalizer and binding label, the API's CRD in the app cluster its
// holder's mark, and with policy Delete the provider copies are deleted. A copy is deleted only when
// it carries this binding's label (the proof it is ours); the konnector, allowed nothing cluster-wide
// on the control plane, lists them per provider namespace.
import { annotations, finalizer, labels } from "../../api/naming.ts";
import { refs } from "../../api/resources.ts";
import { KubeApiError, type KubeClient, type KubeObject, type ResourceRef } from "../../kube/client.ts";

/** Our finalizer, for this binding (its label) or for no binding in particular (no label). */
function heldByUs(obj: KubeObject, bindingUid: string): boolean {
  const owner = obj.metadata.labels?.[labels.binding];
  return obj.metadata.finalizers?.includes(finalizer) === true && (owner === undefined || owner === bindingUid);
}

/**
 * The app objects of ref held by the binding bindingUid lose our finalizer and binding label; then
 * the API's CRD (named exportId) its mark, where the mark is this binding's. How many were released.
 */
export async function releaseAppObjects(
  app: KubeClient,
  ref: ResourceRef,
  exportId: string,
  bindingUid: string,
): Promise<number> {
  let released = 0;
  // the API was never installed there: nothing of ours to release
  const listed = await app.list(ref).catch(notInstalled);
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
    released++;
  }
  await unmarkApi(app, exportId, bindingUid);
  return released;
}

/**
 * Deletes the provider copies of ref that carry the label of binding bindingUid: listed across the
 * cluster (the sync's rights), or in each of namespaces when given (the konnector's). Copies being
 * deleted already are left alone. How many deletions were asked for.
 */
export async function deleteProviderCopies(
  control: KubeClient,
  ref: ResourceRef,
  bindingUid: string,
  namespaces?: readonly string[],
): Promise<number> {
  const ours = `${labels.binding}=${bindingUid}`;
  const listed =
    namespaces === undefined
      ? (await control.list(ref, { labelSelector: ours }).catch(notInstalled)).items
      : (
          await Promise.all(
            namespaces.map(
              async (namespace) =>
                (
                  await control.list(ref, { namespace, labelSelector: ours }).catch(notInstalled)
                ).items,
            ),
          )
        ).flat();
  let deleted = 0;
  for (const copy of listed) {
    // the selector said so; the object says so too, or it is not deleted
    if (copy.metadata.labels?.[labels.binding] !== bindingUid || copy.metadata.deletionTimestamp !== undefined)
      continue;
    await control.delete(ref, copy.metadata.name, copy.metadata.namespace, {
      propagationPolicy: "Background",
      uid: copy.metadata.uid,
    });
    deleted++;
  }
  return deleted;
}

/** Takes the binding ownerUid's mark off the API's CRD in the app cluster, where it is there. */
export async function unmarkApi(app: KubeClient, exportId: string, ownerUid: string): Promise<void> {
  const crd = await app.get(refs.crds, exportId);
  if (crd === undefined || crd.metadata.labels?.[labels.binding] !== ownerUid) return;
  const patch = {
    metadata: {
      resourceVersion: crd.metadata.resourceVersion,
      labels: { [labels.binding]: null },
      annotations: { [annotations.boundBy]: null },
    },
  };
  await app.mergePatch(refs.crds, exportId, undefined, patch);
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
