// The consent a binding recorded for one export's claims (api/consent.ts), recorded on first sight
// for a binding made before consent was.
import type { Logger } from "pino";
import { bindingKey, kindOf, specOf } from "../../api/binding-spec.ts";
import { acceptAll, type Consent, consent, parseRecorded, type RecordedClaim } from "../../api/consent.ts";
import { InputError } from "../../export/errors.ts";
import type { PermissionClaim } from "../../export/types.ts";
import type { KubeClient, KubeObject } from "../../kube/client.ts";

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
