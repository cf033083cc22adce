// What an AppClusterBinding says, read strictly enough for the controller: its spec, its
// conditions, and the kubeconfig it names.
import type { Logger } from "pino";
import { InputError } from "../export/errors.ts";
import type { PermissionClaim } from "../export/types.ts";
import { type ClientOptions, KubeClient, type KubeObject } from "../kube/client.ts";
import { acceptAll, type Consent, consent, parseRecorded, type RecordedClaim } from "./consent.ts";
import { notMarkedFor } from "./kubeconfig-secret.ts";
import type { DeletionPolicy } from "./release.ts";
import { refs } from "./resources.ts";

export type Condition = {
  type: string;
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
  lastTransitionTime?: string;
};

export type BindingSpec = {
  kubeconfigSecretRef?: { name?: string; key?: string };
  exports?: Array<{ group?: string; resource?: string; permissionClaims?: unknown }>;
  deletionPolicy?: DeletionPolicy;
};

export function specOf(binding: KubeObject): BindingSpec {
  return (binding.spec ?? {}) as BindingSpec;
}

/** "namespace/name": the key of a binding in queues, logs and messages. */
export function bindingKey(binding: { metadata: { namespace?: string; name: string } }): string {
  return `${binding.metadata.namespace ?? ""}/${binding.metadata.name}`;
}

/** an app cluster answers each request within this, unless the options say otherwise */
export const defaultAppTimeoutMs = 10_000;

export type Kubeconfig =
  | { ok: true; secret: KubeObject; key: string; text: string }
  | { ok: false; secret: KubeObject | undefined; reason: string; message: string };

/**
 * The kubeconfig a binding names: from a Secret of the binding's own namespace that names the
 * binding itself (see kubeconfig-secret.ts), or why there is none to use.
 */
export async function readKubeconfig(control: KubeClient, binding: KubeObject): Promise<Kubeconfig> {
  const ref = specOf(binding).kubeconfigSecretRef;
  const name = ref?.name;
  const key = ref?.key ?? "kubeconfig";
  if (!name) {
    return {
      ok: false,
      secret: undefined,
      reason: "InvalidSpec",
      message: "spec.kubeconfigSecretRef.name is required",
    };
  }
  const secret = await control.get(refs.secrets, name, binding.metadata.namespace);
  const encoded = (secret?.data as Record<string, unknown> | undefined)?.[key];
  if (secret === undefined || typeof encoded !== "string") {
    const what = secret === undefined ? "does not exist" : `has no key "${key}"`;
    return {
      ok: false,
      secret,
      reason: "KubeconfigMissing",
      message: `secret ${binding.metadata.namespace}/${name} ${what}`,
    };
  }
  const unmarked = notMarkedFor(secret, binding.metadata.name);
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
  const index = exports.findIndex((e) => (e.group ?? "") === exportRef.group && e.resource === exportRef.resource);
  const entry = exports[index];
  if (entry === undefined) return consent(claims, []);
  let recorded: RecordedClaim[] | undefined;
  try {
    recorded = parseRecorded(entry.permissionClaims, `spec.exports[${index}].permissionClaims`);
  } catch (err) {
    if (err instanceof InputError) return err.message;
    throw err;
  }
  if (recorded !== undefined) return consent(claims, recorded);
  await control.update(refs.bindings, {
    ...binding,
    spec: {
      ...specOf(binding),
      exports: exports.map((e, i) => (i === index ? { ...e, permissionClaims: acceptAll(claims) } : e)),
    },
  });
  logger.info(
    { binding: bindingKey(binding), export: `${exportRef.resource}.${exportRef.group}` },
    "recorded the template's claims as accepted (the binding recorded none)",
  );
  return consent(claims, acceptAll(claims));
}
