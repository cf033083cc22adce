// What a binding's status and Warning events say, computed from what one reconcile observed: the
// app cluster's answer to the probe, what its exports' syncs and reconciles found, and the spec's
// limits. Pure: the controller gathers the facts, status.ts writes the result.
import { type Condition, kindOf, specOf } from "../../api/binding-spec.ts";
import { refs } from "../../api/resources.ts";
import type { KubeObject } from "../../kube/client.ts";
import type { ExportStatus } from "./status.ts";

/** An export's message while the app cluster cannot be reached. */
export const unreachableMessage = "app cluster unreachable; syncing resumes when it returns";

/** What one reconcile of a binding observed. */
export type BindingFacts = {
  binding: KubeObject;
  /** the Connected condition of the look at the app cluster (its Secret, its client, its probe) */
  probed: Condition;
  /** what the running syncs' lists and watches of the app cluster fail with, as they were before the look */
  failing: string[];
  /** why no export is synced: the spec lists more than allowed */
  tooMany: string | undefined;
  /** entries of the spec's exports that repeat an earlier one's group and resource */
  repeated: number;
  /** per export, as its reconcile left it (appError and appUnreachable only in memory) */
  exports: ExportStatus[];
};

export type BindingOutcome = {
  conditions: Condition[];
  /** the Connected condition among them */
  connected: Condition;
  /** the exports as the status says them: an app cluster's trouble is their message */
  exports: ExportStatus[];
};

/** The binding's conditions and its exports' status from what the reconcile observed. */
export function bindingConditions(facts: BindingFacts): BindingOutcome {
  const { binding, tooMany, repeated } = facts;
  const field = kindOf(binding).exportsField;
  let connected = facts.probed;
  if (connected.status === "True" && facts.failing.length > 0) {
    // /version answers, but lists or watches of the bound objects do not: nothing is synced
    connected = { type: "Connected", status: "False", reason: "ListWatchFailing", message: facts.failing.join("; ") };
  }
  const lost = facts.exports.find((e) => e.appUnreachable !== undefined)?.appUnreachable;
  if (connected.status === "True" && lost !== undefined) connected = lost;
  const appErrors = facts.exports.flatMap((e) => (e.appError ? [`${e.resource}.${e.group}: ${e.appError}`] : []));
  if (connected.status === "True" && appErrors.length > 0) {
    connected = { type: "Connected", status: "False", reason: "AppClusterError", message: appErrors.join("; ") };
  }
  const exports = facts.exports.map((e) => {
    if (e.appUnreachable === undefined && e.appError === undefined) return e;
    const { appUnreachable: _unreachable, appError, ...rest } = e;
    return { ...rest, message: appError ?? unreachableMessage };
  });

  const conditions = [secretValid(connected), connected, claimFieldsActedOn(exports)];
  if (kindOf(binding).ref.group === refs.klutchBindings.group) conditions.push(konnectorDeployed(binding));
  const ready = tooMany === undefined && connected.status === "True" && exports.every((e) => e.message === undefined);
  const repeats =
    repeated > 0 ? `; spec.${field} lists ${repeated} more entries of the same group and resource, ignored` : "";
  conditions.push(
    ready
      ? {
          type: "Ready",
          status: "True",
          reason: "Synced",
          message: `${exports.length} export(s) bound and in sync${repeats}`,
        }
      : {
          type: "Ready",
          status: "False",
          reason: tooMany ? "TooManyExports" : connected.status === "True" ? "ExportsNotReady" : "Disconnected",
          message: `${
            tooMany ??
            (exports.flatMap((e) => (e.message ? [`${e.resource}.${e.group}: ${e.message}`] : [])).join("; ") ||
              connected.message)
          }${repeats}`,
        },
  );
  const pendingClaims = exports.flatMap((e) =>
    e.claimsPending ? [`${e.resource}.${e.group}: ${e.claimsPending}`] : [],
  );
  conditions.push(
    pendingClaims.length === 0
      ? {
          type: "ClaimsAccepted",
          status: "True",
          reason: "Accepted",
          message: "every claim of the templates is accepted",
        }
      : {
          type: "ClaimsAccepted",
          status: "False",
          reason: "ClaimsPending",
          message: `not synced until accepted (spec.${field}[].permissionClaims, or klutch-bind bind again): ${pendingClaims.join("; ")}`,
        },
  );
  return { conditions, connected, exports };
}

/** A Warning event on the binding. */
export type Warning = { reason: string; message: string };

/**
 * The Warning events an outcome calls for: a binding not connected, too many exports, and each
 * export not ready for a reason the user may act on (passing states, such as a first list under
 * way, show on the status only).
 */
export function bindingWarnings(
  outcome: Pick<BindingOutcome, "connected" | "exports">,
  tooMany: string | undefined,
  passing: ReadonlySet<string>,
): Warning[] {
  const { connected } = outcome;
  const warnings: Warning[] = [];
  if (connected.status !== "True") warnings.push({ reason: connected.reason, message: connected.message });
  if (tooMany !== undefined) warnings.push({ reason: "TooManyExports", message: tooMany });
  for (const e of outcome.exports) {
    if (e.message && !passing.has(e.message) && connected.status === "True" && tooMany === undefined)
      warnings.push({ reason: "ExportNotReady", message: `${e.resource}.${e.group}: ${e.message}` });
  }
  return warnings;
}

/** the reasons of a Connected=False that are the kubeconfig Secret's fault */
const secretReasons = new Set(["InvalidSpec", "KubeconfigMissing", "KubeconfigNotMarked", "InvalidKubeconfig"]);

/** klutch-bind's SecretValid: the kubeconfig Secret exists and holds a usable kubeconfig. */
export function secretValid(connected: Condition): Condition {
  return secretReasons.has(connected.reason)
    ? { type: "SecretValid", status: "False", reason: connected.reason, message: connected.message }
    : {
        type: "SecretValid",
        status: "True",
        reason: "Valid",
        message: "the kubeconfig Secret holds a usable kubeconfig",
      };
}

/** klutch-bind's KonnectorDeployed, answered honestly: this sync runs in its own process, never a konnector. */
export function konnectorDeployed(binding: KubeObject): Condition {
  const asked = specOf(binding).konnector?.deploy === true;
  return {
    type: "KonnectorDeployed",
    status: "False",
    reason: "SyncedInProcess",
    message: `${asked ? "spec.konnector.deploy is ignored: " : ""}this control plane syncs the binding in klutch-bind sync's own process; no konnector is deployed`,
  };
}

/** Whether the sync acts on every field of the claims it syncs; those it does not are named, never silently taken as done. */
export function claimFieldsActedOn(exports: ExportStatus[]): Condition {
  const ignored = exports.flatMap((e) =>
    e.claimsNotActedOn ? [`${e.resource}.${e.group}: ${e.claimsNotActedOn}`] : [],
  );
  return ignored.length === 0
    ? {
        type: "ClaimFieldsActedOn",
        status: "True",
        reason: "AllActedOn",
        message: "the sync acts on every field of the accepted claims",
      }
    : {
        type: "ClaimFieldsActedOn",
        status: "False",
        reason: "NotYetSupported",
        message: `the sync does not act on these claim fields yet (the rest of each claim is synced): ${ignored.join("; ")}`,
      };
}
