// Per-claim consent: a binding syncs a template's claim only as the binding accepted it. The
// accepted claims are recorded on the binding (spec.exports[].permissionClaims, each with state
// Accepted or Rejected); a template whose claims grow or widen later does not extend the binding
// until the claim is accepted again.
import { isDeepStrictEqual } from "node:util";
import { parseClaims } from "../export/claims.ts";
import { InputError } from "../export/errors.ts";
import type { PermissionClaim } from "../export/types.ts";

export type ClaimState = "Accepted" | "Rejected";
export type RecordedClaim = PermissionClaim & { state: ClaimState };

export type Consent = {
  /** what the binding may sync: the template's claims exactly as accepted */
  accepted: PermissionClaim[];
  /** the template's claims the binding has not accepted as they are now */
  pending: PermissionClaim[];
  rejected: PermissionClaim[];
};

/** Decodes a binding's recorded claims; undefined when the binding records none (made before consent was recorded). */
export function parseRecorded(value: unknown, field: string): RecordedClaim[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value)) throw new InputError(field, "must be a list");
  const states = value.map((entry, i) => {
    const state = (entry as { state?: unknown } | null)?.state;
    if (state !== "Accepted" && state !== "Rejected") {
      throw new InputError(`${field}[${i}].state`, 'must be "Accepted" or "Rejected"', String(state));
    }
    return state;
  });
  const claims = parseClaims(
    value.map((entry) => {
      const { state: _state, ...claim } = entry as Record<string, unknown>;
      return claim;
    }),
    field,
  );
  return claims.map((claim, i) => ({ ...claim, state: states[i] as ClaimState }));
}

/** Splits the template's claims by what the binding recorded. */
export function consent(template: PermissionClaim[], recorded: RecordedClaim[]): Consent {
  const result: Consent = { accepted: [], pending: [], rejected: [] };
  for (const claim of template) {
    const same = recorded.find((r) => {
      const { state: _state, ...asRecorded } = r;
      return isDeepStrictEqual(asRecorded, claim);
    });
    if (same === undefined) result.pending.push(claim);
    else if (same.state === "Accepted") result.accepted.push(claim);
    else result.rejected.push(claim);
  }
  return result;
}

/** The record of accepting every claim: what bind writes, and what a binding made before consent is given on first sight. */
export function acceptAll(claims: PermissionClaim[]): RecordedClaim[] {
  return claims.map((claim) => ({ ...claim, state: "Accepted" }));
}
