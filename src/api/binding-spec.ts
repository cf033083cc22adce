// What an AppClusterBinding says, read strictly enough for the controller: its spec, its
// conditions, and the kubeconfig it names.
import type { Logger } from "pino";
import { InputError } from "../export/errors.ts";
import type { PermissionClaim } from "../export/types.ts";
import { type ClientOptions, KubeClient, type KubeObject, type ResourceRef } from "../kube/client.ts";
import type { DeletionPolicy } from "../sync/binding/release.ts";
import { acceptAll, type Consent, consent, parseRecorded, type RecordedClaim } from "./consent.ts";
import { type KubeconfigSecretPolicy, type MarkedBinding, notMarkedFor } from "./kubeconfig-secret.ts";
import { refs } from "./resources.ts";

export type Condition = {
  type: string;
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
  lastTransitionTime?: string;
};

/** A binding's spec, the same for both kinds (klutch-bind's apiExports read as exports). */
export type BindingSpec = {
  kubeconfigSecretRef?: { name?: string; namespace?: string; key?: string };
  exports?: Array<{ group?: string; resource?: string; permissionClaims?: unknown }>;
  deletionPolicy?: DeletionPolicy;
  konnector?: { deploy?: boolean };
};

/**
 * The two binding APIs the sync serves alike: ours (bind.klutch.dev) and klutch-bind's own
 * (klutch.anynines.com), whose list of exports is called apiExports.
 */
export type BindingKind = { ref: ResourceRef; exportsField: "exports" | "apiExports" };
export const bindingKinds: readonly BindingKind[] = [
  { ref: refs.bindings, exportsField: "exports" },
  { ref: refs.klutchBindings, exportsField: "apiExports" },
];

export function kindOf(binding: { apiVersion?: string }): BindingKind {
  const group = (binding.apiVersion ?? "").split("/")[0];
  return bindingKinds.find((k) => k.ref.group === group) ?? (bindingKinds[0] as BindingKind);
}

export function specOf(binding: KubeObject): BindingSpec {
  const raw = (binding.spec ?? {}) as Record<string, unknown>;
  return { ...raw, exports: raw[kindOf(binding).exportsField] as BindingSpec["exports"] } as BindingSpec;
}

/**
 * A binding's exports, each group and resource once (as its first entry has it): a binding that
 * lists one export many times costs one sync, not one per entry. repeated: the entries left out.
 */
export function distinctExports(binding: KubeObject): {
  exports: Array<{ group: string; resource: string }>;
  repeated: number;
} {
  const listed = specOf(binding).exports;
  const entries = Array.isArray(listed) ? listed : [];
  const distinct = new Map<string, { group: string; resource: string }>();
  for (const e of entries) {
    const entry = { group: e?.group ?? "", resource: e?.resource ?? "" };
    const id = `${entry.resource}.${entry.group}`;
    if (!distinct.has(id)) distinct.set(id, entry);
  }
  return { exports: [...distinct.values()], repeated: entries.length - distinct.size };
}

/** "group/namespace/name": unique across both kinds; the key of a binding in queues and logs. */
export function bindingKey(binding: { apiVersion?: string; metadata: { namespace?: string; name: string } }): string {
  return `${kindOf(binding).ref.group}/${binding.metadata.namespace ?? ""}/${binding.metadata.name}`;
}

/** The binding as a kubeconfig Secret's mark names it: its kind's group, namespace and name. */
export function markedBinding(binding: {
  apiVersion?: string;
  metadata: { namespace?: string; name: string };
}): MarkedBinding {
  return { group: kindOf(binding).ref.group, namespace: binding.metadata.namespace ?? "", name: binding.metadata.name };
}

/** The kind, namespace and name of a bindingKey. */
export function parseBindingKey(key: string): { kind: BindingKind; namespace: string; name: string } {
  const [group = "", namespace = "", name = ""] = key.split("/");
  return { kind: kindOf({ apiVersion: `${group}/v1alpha1` }), namespace, name };
}

/** How a binding is named in messages: "AppClusterBinding namespace/name", and the group when it is klutch-bind's. */
export function describeBinding(key: string): string {
  const { kind, namespace, name } = parseBindingKey(key);
  const group = kind.ref.group === refs.bindings.group ? "" : ` (${kind.ref.group})`;
  return `AppClusterBinding ${namespace}/${name}${group}`;
}

/** an app cluster answers each request within this, unless the options say otherwise */
export const defaultAppTimeoutMs = 10_000;

export type Kubeconfig =
  | { ok: true; secret: KubeObject; key: string; text: string }
  | { ok: false; secret: KubeObject | undefined; reason: string; message: string };

/**
 * The kubeconfig a binding names: from a Secret that names the binding itself, or with policy
 * same-namespace any Secret of the binding's namespace (see kubeconfig-secret.ts), or why there is
 * none to use.
 */
export async function readKubeconfig(
  control: KubeClient,
  binding: KubeObject,
  policy: KubeconfigSecretPolicy = "marked",
): Promise<Kubeconfig> {
  const ref = specOf(binding).kubeconfigSecretRef;
  const name = ref?.name;
  const key = ref?.key ?? "kubeconfig";
  // klutch-bind's binding may name a Secret of another namespace: the Secret must then name the
  // binding with its namespace (see kubeconfig-secret.ts)
  const namespace = ref?.namespace || binding.metadata.namespace;
  if (!name) {
    return {
      ok: false,
      secret: undefined,
      reason: "InvalidSpec",
      message: "spec.kubeconfigSecretRef.name is required",
    };
  }
  const secret = await control.get(refs.secrets, name, namespace);
  const encoded = (secret?.data as Record<string, unknown> | undefined)?.[key];
  if (secret === undefined || typeof encoded !== "string") {
    const what = secret === undefined ? "does not exist" : `has no key "${key}"`;
    return {
      ok: false,
      secret,
      reason: "KubeconfigMissing",
      message: `secret ${namespace}/${name} ${what}`,
    };
  }
  const unmarked = notMarkedFor(secret, markedBinding(binding), policy);
  if (unmarked !== undefined) return { ok: false, secret, reason: "KubeconfigNotMarked", message: unmarked };
  return { ok: true, secret, key, text: Buffer.from(encoded, "base64").toString("utf8") };
}

/** A client for the app cluster behind a kubeconfig someone else wrote; throws saying what is wrong with it. */
export function appClient(kubeconfig: Extract<Kubeconfig, { ok: true }>, options: ClientOptions = {}): KubeClient {
  try {
    return KubeClient.fromUntrustedKubeconfig(kubeconfig.text, { timeoutMs: defaultAppTimeoutMs, ...options });
  } catch (err) {
    const { namespace, name } = kubeconfig.secret.metadata;
    const why = err instanceof Error ? err.message : String(err);
    throw new Error(`secret ${namespace}/${name} key "${kubeconfig.key}": ${why}`);
  }
}

/**
 * The claims binding accepted of an export's template claims (or a message why there are none to
 * go by). A binding made before consent was recorded accepts the template's claims of now, once,
 * and records them in its spec, so that later additions wait for consent.
 */
export async function recordedConsent(
  control: KubeClient,
  logger: Logger,
  binding: KubeObject,
  exportRef: { group: string; resource: string },
  claims: PermissionClaim[],
): Promise<Consent | string> {
  const exports = specOf(binding).exports ?? [];
  const field = kindOf(binding).exportsField;
  const index = exports.findIndex((e) => (e.group ?? "") === exportRef.group && e.resource === exportRef.resource);
  const entry = exports[index];
  if (entry === undefined) return consent(claims, []);
  let recorded: RecordedClaim[] | undefined;
  try {
    recorded = parseRecorded(entry.permissionClaims, `spec.${field}[${index}].permissionClaims`);
  } catch (err) {
    if (err instanceof InputError) return err.message;
    throw err;
  }
  if (recorded !== undefined) return consent(claims, recorded);
  await control.update(kindOf(binding).ref, {
    ...binding,
    spec: {
      ...(binding.spec as Record<string, unknown>),
      [field]: exports.map((e, i) => (i === index ? { ...e, permissionClaims: acceptAll(claims) } : e)),
    },
  });
  logger.info(
    { binding: bindingKey(binding), export: `${exportRef.resource}.${exportRef.group}` },
    "recorded the template's claims as accepted (the binding recorded none)",
  );
  return consent(claims, acceptAll(claims));
}
