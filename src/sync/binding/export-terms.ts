// On what terms a binding syncs one export: the template it follows (template-choice.ts), the
// template's claims as the binding accepted them (recorded-consent.ts), and why it syncs none when
// a template conflict or a required claim stands in the way.
import type { Logger } from "pino";
import { exportTemplate } from "../../api/template-choice.ts";
import { clusterScopedNotSynced, isClusterScopedClaim, notActedOn } from "../../export/claim-behaviour.ts";
import { parseClaims } from "../../export/claims.ts";
import { InputError } from "../../export/errors.ts";
import type { PermissionClaim } from "../../export/types.ts";
import type { KubeClient, KubeObject } from "../../kube/client.ts";
import type { StageLog } from "../stages.ts";
import { recordedConsent } from "./recorded-consent.ts";
import type { ExportStatus } from "./status.ts";

export type ExportTerms =
  | {
      /** why the export is not synced; stop: its running sync stops too */
      refused: ExportStatus;
      stop: boolean;
    }
  | {
      template: KubeObject;
      /** the version the template's selector names, if it does */
      version: string | undefined;
      /** the claims to sync: accepted, and not cluster-scoped */
      claims: PermissionClaim[];
      /** the export's status so far: claims pending, claim fields not acted on */
      base: ExportStatus;
    };

export async function exportTerms(
  control: KubeClient,
  logger: Logger,
  templates: readonly KubeObject[],
  binding: KubeObject,
  group: string,
  resource: string,
  stage: StageLog | undefined,
): Promise<ExportTerms> {
  const id = `${resource}.${group}`;
  const base: ExportStatus = { group, resource };
  const chosen = exportTemplate(templates, group, resource, binding.metadata.namespace ?? "");
  if ("message" in chosen) {
    // two templates of one API: which claims apply would depend on cache order; neither does
    return { refused: { ...base, message: chosen.message }, stop: chosen.conflict };
  }
  const template = chosen.template;
  const templateSpec = template.spec as { APIServiceSelector: { version?: string }; permissionClaims?: unknown };
  let claims: PermissionClaim[];
  try {
    claims = parseClaims(
      templateSpec.permissionClaims,
      `template ${template.metadata.namespace}/${template.metadata.name} spec.permissionClaims`,
    );
  } catch (err) {
    if (err instanceof InputError) return { refused: { ...base, message: err.message }, stop: false };
    throw err;
  }
  const consented = await recordedConsent(control, logger, binding, { group, resource }, claims);
  stage?.("claims consent read", { export: id });
  if (typeof consented === "string") return { refused: { ...base, message: consented }, stop: false };
  claims = consented.accepted;
  const named = (c: PermissionClaim) =>
    `${c.resource}.${c.group || "core"} (owner ${c.selector.owner ?? "either side"})`;
  const pending = consented.pending.map(named);
  if (pending.length > 0) base.claimsPending = pending.join(", ");
  const blocking = [...consented.pending, ...consented.rejected].filter((c) => c.required === true);
  if (blocking.length > 0) {
    // klutch-bind's required: the export does not work without it
    return {
      refused: { ...base, message: `required claims not accepted: ${blocking.map(named).join(", ")}` },
      stop: true,
    };
  }
  const unsynced = claims.filter((c) => c.required === true && isClusterScopedClaim(c));
  if (unsynced.length > 0) {
    return {
      refused: { ...base, message: `required claims ${unsynced.map(named).join(", ")}: ${clusterScopedNotSynced}` },
      stop: true,
    };
  }
  const ignored = claims.flatMap((c) => notActedOn(c).map((f) => `${named(c)} ${f}`));
  if (ignored.length > 0) base.claimsNotActedOn = ignored.join("; ");
  claims = claims.filter((c) => !isClusterScopedClaim(c));
  return { template, version: templateSpec.APIServiceSelector.version, claims, base };
}
