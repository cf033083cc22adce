// What the sync's caches keep of an object: everything but the bookkeeping of other writers.
// managedFields are most of an object's bytes (half or more of a small custom resource) and the
// sync never reads them; an update sent without them keeps the server's (the API server copies
// them from the live object). kubectl's last-applied annotation is a second copy of the object:
// stripped only from caches whose objects the sync never writes back whole (it would be lost).
import type { KubeObject } from "./client.ts";

export const lastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration";

/** obj without metadata.managedFields (a shallow copy; obj itself is not changed). */
export function withoutManagedFields(obj: KubeObject): KubeObject {
  if (obj.metadata?.managedFields === undefined) return obj;
  const { managedFields: _dropped, ...metadata } = obj.metadata;
  return { ...obj, metadata };
}

/** obj without managedFields and without kubectl's last-applied annotation. */
export function leanObject(obj: KubeObject): KubeObject {
  const trimmed = withoutManagedFields(obj);
  const annotations = trimmed.metadata?.annotations;
  if (annotations === undefined || !(lastAppliedAnnotation in annotations)) return trimmed;
  const { [lastAppliedAnnotation]: _dropped, ...rest } = annotations;
  const metadata = { ...trimmed.metadata };
  if (Object.keys(rest).length === 0) delete metadata.annotations;
  else metadata.annotations = rest;
  return { ...trimmed, metadata };
}
