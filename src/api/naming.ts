// Where a bound object lives on the control plane, and the marks the sync leaves on what it writes.
import { createHash } from "node:crypto";

/** the prefix of every label, annotation and finalizer the sync sets: its own marks, never a tenant's */
export const ownDomain = "bind.klutch.dev/";

export const fieldManager = "klutch-bind-sync";
export const finalizer = "bind.klutch.dev/sync";

export const labels = {
  /** uid of the AppClusterBinding an object or namespace belongs to */
  binding: "bind.klutch.dev/binding",
  /** on a provider namespace: the app namespace it mirrors */
  consumerNamespace: "bind.klutch.dev/consumer-namespace",
  /** on a claimed copy: the side that owns the original, "provider" or "consumer" */
  copyOf: "bind.klutch.dev/copy-of",
  managedBy: "app.kubernetes.io/managed-by",
} as const;

export const annotations = {
  /** on a provider copy: uid of the consumer object it mirrors */
  consumerUid: "bind.klutch.dev/consumer-uid",
  /** on a provider copy: name of the consumer object it mirrors (its own name may be shortened) */
  consumerName: "bind.klutch.dev/consumer-name",
  /** on a provider copy of a namespaced object: the consumer object's namespace */
  consumerNamespace: "bind.klutch.dev/consumer-namespace",
  /** on a claimed copy: uid of the original */
  sourceUid: "bind.klutch.dev/source-uid",
  bindingName: "bind.klutch.dev/binding-name",
  /** on a provider-owned original whose claim deletes it with its copy: uid of the copy made of it */
  copiedTo: "bind.klutch.dev/copied-to",
  /** on an original the sync made by adoption or donation: uid of the object it was made from */
  transferredFrom: "bind.klutch.dev/transferred-from",
  /**
   * on a provider object the sync is donating, set before the consumer's new original is made: the
   * proof, out of the app cluster's reach, that lets a donation cut short be finished
   */
  transferringTo: "bind.klutch.dev/transferring-to",
  /** on a bound API's CRD in the app cluster, beside its binding label: the binding holding it, for messages */
  boundBy: "bind.klutch.dev/bound-by",
} as const;

export const managedByValue = "klutch-bind-sync";

function hash(text: string, length: number): string {
  return createHash("sha256").update(text).digest("hex").slice(0, length);
}

const prefixes = new Map<string, string>();

/** A short, stable prefix per binding: two bindings never share one. */
export function bindingPrefix(bindingUid: string): string {
  // asked for every event and reconcile (a sha256 each: 3% of the sync's CPU at 50 objects/s)
  let prefix = prefixes.get(bindingUid);
  if (prefix === undefined) {
    prefix = `klb-${hash(bindingUid, 10)}`;
    if (prefixes.size >= 10_000) prefixes.clear();
    prefixes.set(bindingUid, prefix);
  }
  return prefix;
}

/** A provider namespace that is not this app namespace's of this binding: nothing is written there for it. */
export class ProviderNamespaceConflict extends Error {}

/** The provider namespace mirroring one app namespace of one binding. */
export function providerNamespace(bindingUid: string, consumerNamespace: string): string {
  return mappedName(bindingPrefix(bindingUid), consumerNamespace, 63);
}

/** The provider name of a cluster-scoped bound object. */
export function providerClusterScopedName(bindingUid: string, name: string): string {
  return mappedName(bindingPrefix(bindingUid), name, 253);
}

/**
 * prefix-name, or, over limit, prefix--head-hash: no Kubernetes name starts with a hyphen, so a
 * shortened name never equals one that is not (an app namespace may be named like a shortened one).
 */
function mappedName(prefix: string, name: string, limit: number): string {
  const whole = `${prefix}-${name}`;
  if (whole.length <= limit) return whole;
  const digest = hash(whole, 20);
  const head = name.slice(0, limit - prefix.length - digest.length - 3).replace(/[-.]+$/, "");
  return `${prefix}--${head}-${digest}`;
}

/**
 * What providerNamespace was before shortened names got their double hyphen: a provider namespace
 * of that name must not be taken for gone (its objects would be made a second time).
 */
export function earlierProviderNamespace(bindingUid: string, consumerNamespace: string): string {
  const whole = `${bindingPrefix(bindingUid)}-${consumerNamespace}`;
  if (whole.length <= 63) return whole;
  return `${whole.slice(0, 52).replace(/[-.:]+$/, "")}-${hash(whole, 10)}`;
}
