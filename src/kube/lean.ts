// What the sync's caches keep of an object: everything but the bookkeeping of other writers, and
// one copy of the strings many objects repeat.
// managedFields are most of an object's bytes (half or more of a small custom resource) and the
// sync never reads them; an update sent without them keeps the server's (the API server copies
// them from the live object). kubectl's last-applied annotation is a second copy of the object:
// stripped only from caches whose objects the sync never writes back whole (it would be lost).
// JSON.parse makes a new string for every value, so 10,000 cached copies held 10,000 copies of
// their apiVersion, namespace, binding label and finalizer: 16 MiB of 23 MiB of short strings in a
// heap snapshot of the bench (10,000 objects, 20 bindings) were such repeats.
import type { KubeObject, ObjectMeta } from "./client.ts";

export const lastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration";

/** bounded: values seen once (uids, names) come and go; the table starts anew when full */
const maxInterned = 8192;
const maxInternedLength = 128;
const interned = new Map<string, string>();

/** The one copy of value kept for the caches (value itself when it is long or new). */
export function intern(value: string): string {
  if (value.length > maxInternedLength) return value;
  const known = interned.get(value);
  if (known !== undefined) return known;
  if (interned.size >= maxInterned) interned.clear();
  interned.set(value, value);
  return value;
}

function internValues(record: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(record)) out[key] = typeof value === "string" ? intern(value) : value;
  return out;
}

/** metadata with its repeated strings interned (a copy), without managedFields */
function compactMetadata(metadata: ObjectMeta): ObjectMeta {
  const { managedFields: _dropped, ...rest } = metadata;
  const out: ObjectMeta = { ...rest };
  if (typeof rest.namespace === "string") out.namespace = intern(rest.namespace);
  if (rest.labels) out.labels = internValues(rest.labels);
  if (rest.annotations) out.annotations = internValues(rest.annotations);
  if (Array.isArray(rest.finalizers))
    out.finalizers = rest.finalizers.map((f) => (typeof f === "string" ? intern(f) : f));
  return out;
}

function compact(obj: KubeObject, metadata: ObjectMeta): KubeObject {
  const out: KubeObject = { ...obj, metadata };
  if (typeof obj.apiVersion === "string") out.apiVersion = intern(obj.apiVersion);
  if (typeof obj.kind === "string") out.kind = intern(obj.kind);
  return out;
}

/** obj without metadata.managedFields (a shallow copy; obj itself is not changed). */
export function withoutManagedFields(obj: KubeObject): KubeObject {
  if (obj.metadata === undefined) return obj;
  return compact(obj, compactMetadata(obj.metadata));
}

/** obj without managedFields and without kubectl's last-applied annotation. */
export function leanObject(obj: KubeObject): KubeObject {
  if (obj.metadata === undefined) return obj;
  const metadata = compactMetadata(obj.metadata);
  if (metadata.annotations !== undefined && lastAppliedAnnotation in metadata.annotations) {
    const { [lastAppliedAnnotation]: _dropped, ...rest } = metadata.annotations;
    if (Object.keys(rest).length === 0) delete metadata.annotations;
    else metadata.annotations = rest;
  }
  return compact(obj, metadata);
}
