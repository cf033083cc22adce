// Per-claim consent when binding: each permission claim of each chosen export is accepted or
// rejected by the user, as klutch-bind's accept/reject. The CLI asks claim by claim on a terminal
// or takes --accept-claims; the web page has a checkbox per claim. What is decided becomes the
// binding's record (spec.exports[].permissionClaims, state Accepted or Rejected).
import { createHash } from "node:crypto";
import { createInterface } from "node:readline";
import type { ClaimState } from "../api/consent.ts";
import { describeClaim } from "../export/describe.ts";
import type { PermissionClaim } from "../export/types.ts";
import type { BindableApi } from "./bindable.ts";

/** Per export id, the decision for each of its permissionClaims, in their order. */
export type Decisions = ReadonlyMap<string, readonly ClaimState[]>;

/** One claim of one export, as the user is shown it. */
export type ClaimChoice = {
  api: BindableApi;
  /** its position in api.permissionClaims */
  index: number;
  claim: PermissionClaim;
  /** RESOURCE.GROUP/OWNER, the core group as "core": what --accept-claims names */
  name: string;
  /** what it means, from the app cluster's point of view */
  words: string;
  /** a digest of the claim exactly as it is: the web form's checkbox value, so a changed claim is never taken as accepted */
  key: string;
};

/** RESOURCE.GROUP/OWNER, e.g. secrets.core/Provider. */
export function claimName(claim: PermissionClaim): string {
  const name = `${claim.resource}.${claim.group || "core"}`;
  return claim.selector.owner === undefined ? name : `${name}/${claim.selector.owner}`;
}

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>)
        .filter(([, v]) => v !== undefined)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([k, v]) => [k, canonical(v)]),
    );
  }
  return value;
}

/** A short digest of the claim's full content (group, resource, version, selector). */
export function claimKey(claim: PermissionClaim): string {
  return createHash("sha256")
    .update(JSON.stringify(canonical(claim)))
    .digest("hex")
    .slice(0, 16);
}

/** klutch-bind's required claims: the sync stops the export while one is not accepted. */
const requiredNote = "; required: the API is not synced while this claim is rejected";

/** Every claim of the exports, in order. */
export function choicesOf(exports: readonly BindableApi[]): ClaimChoice[] {
  return exports.flatMap((api) =>
    (api.permissionClaims ?? []).map((claim, index) => ({
      api,
      index,
      claim,
      name: claimName(claim),
      words: `${describeClaim(claim)}${claim.required === true ? requiredNote : ""}`,
      key: claimKey(claim),
    })),
  );
}

/** The decisions when accepted(choice) says which claims are accepted; every other claim is rejected. */
export function decide(exports: readonly BindableApi[], accepted: (choice: ClaimChoice) => boolean): Decisions {
  const decisions = new Map<string, ClaimState[]>();
  for (const api of exports) decisions.set(api.id, []);
  for (const choice of choicesOf(exports)) {
    decisions.get(choice.api.id)?.push(accepted(choice) ? "Accepted" : "Rejected");
  }
  return decisions;
}

export function stateOf(decisions: Decisions, choice: ClaimChoice): ClaimState {
  return decisions.get(choice.api.id)?.[choice.index] ?? "Rejected";
}

/** A --accept-claims value that cannot be used as given. */
export class ClaimSelectionError extends Error {
  override name = "ClaimSelectionError";
}

type Entry = { text: string; exportId?: string; resource: string; group: string; owner?: string };

function parseEntry(text: string): Entry {
  const colon = text.lastIndexOf(":");
  const exportId = colon >= 0 ? text.slice(0, colon) : undefined;
  const rest = colon >= 0 ? text.slice(colon + 1) : text;
  const slash = rest.indexOf("/");
  const qualified = slash >= 0 ? rest.slice(0, slash) : rest;
  const ownerText = slash >= 0 ? rest.slice(slash + 1) : undefined;
  const dot = qualified.indexOf(".");
  const resource = dot >= 0 ? qualified.slice(0, dot) : qualified;
  const group = dot >= 0 ? qualified.slice(dot + 1) : "";
  const owner =
    ownerText === undefined
      ? undefined
      : ["Provider", "Consumer"].find((o) => o.toLowerCase() === ownerText.toLowerCase());
  if (
    resource === "" ||
    (exportId !== undefined && exportId === "") ||
    (ownerText !== undefined && owner === undefined)
  ) {
    throw new ClaimSelectionError(
      `--accept-claims: "${text}" is not [EXPORT:]RESOURCE[.GROUP][/Provider|/Consumer] (e.g. secrets.core/Provider)`,
    );
  }
  return {
    text,
    ...(exportId !== undefined ? { exportId } : {}),
    resource,
    group: group === "core" ? "" : group,
    ...(owner !== undefined ? { owner } : {}),
  };
}

function matches(entry: Entry, choice: ClaimChoice): boolean {
  return (
    (entry.exportId === undefined || entry.exportId === choice.api.id) &&
    entry.resource === choice.claim.resource &&
    entry.group === choice.claim.group &&
    (entry.owner === undefined || entry.owner === choice.claim.selector.owner)
  );
}

/**
 * The decisions of --accept-claims: its values (repeatable, each comma-separated) are "all"
 * (the flag without a value), "none", or entries [EXPORT:]RESOURCE[.GROUP][/OWNER] (the core
 * group as "core" or left out); an entry accepts every claim it matches, all others are rejected.
 * An entry that matches no claim is refused, so a typo does not silently reject.
 */
export function selectClaims(exports: readonly BindableApi[], values: readonly string[]): Decisions {
  const texts = values
    .flatMap((v) => v.split(","))
    .map((t) => t.trim())
    .filter((t) => t !== "");
  if (texts.length === 0) throw new ClaimSelectionError("--accept-claims: name the claims to accept, or all, or none");
  if (texts.includes("all") || texts.includes("none")) {
    if (texts.length > 1) throw new ClaimSelectionError("--accept-claims: all and none stand alone");
    return decide(exports, () => texts[0] === "all");
  }
  const entries = texts.map(parseEntry);
  const choices = choicesOf(exports);
  for (const entry of entries) {
    if (entry.exportId !== undefined && !exports.some((a) => a.id === entry.exportId)) {
      throw new ClaimSelectionError(
        `--accept-claims: "${entry.text}" names export ${entry.exportId}, which is not bound here (--export ${exports.map((a) => a.id).join(", ")})`,
      );
    }
    if (!choices.some((c) => matches(entry, c))) {
      const known = [...new Set(choices.map((c) => c.name))].join(", ") || "none";
      throw new ClaimSelectionError(`--accept-claims: "${entry.text}" matches no claim; the claims are: ${known}`);
    }
  }
  return decide(exports, (choice) => entries.some((e) => matches(e, choice)));
}

/**
 * Asks for each claim, accept or reject, one line per answer read from input (a terminal, or any
 * stream): y or yes accepts, n, no or an empty line rejects (the default), anything else asks
 * again. Throws when input ends before every claim is answered.
 */
export async function askClaims(
  exports: readonly BindableApi[],
  input: NodeJS.ReadableStream,
  output: NodeJS.WritableStream,
): Promise<Decisions> {
  const choices = choicesOf(exports);
  const accepted = new Set<string>();
  const at = (choice: ClaimChoice) => `${choice.api.id}#${choice.index}`;
  if (choices.length === 0) return decide(exports, () => false);
  const rl = createInterface({ input, terminal: false });
  const lines = rl[Symbol.asyncIterator]();
  try {
    for (const [i, choice] of choices.entries()) {
      output.write(`\n${choice.api.id}, claim ${i + 1} of ${choices.length} (${choice.name}):\n  it ${choice.words}\n`);
      for (;;) {
        output.write("  accept? [y/N] ");
        const line = await lines.next();
        if (line.done) {
          output.write("\n");
          throw new Error(`no answer for claim ${choice.name} of ${choice.api.id}: nothing was bound`);
        }
        const answer = String(line.value).trim().toLowerCase();
        if (answer === "y" || answer === "yes") {
          accepted.add(at(choice));
          break;
        }
        if (answer === "" || answer === "n" || answer === "no") break;
        output.write("  answer y (accept) or n (reject)\n");
      }
    }
  } finally {
    rl.close();
  }
  return decide(exports, (choice) => accepted.has(at(choice)));
}

/** One line per claim: what was decided, and what it means. */
export function summary(exports: readonly BindableApi[], decisions: Decisions): string[] {
  return choicesOf(exports).map((choice) =>
    stateOf(decisions, choice) === "Accepted"
      ? `✓ accepted claim ${choice.name} of ${choice.api.id}: it ${choice.words}`
      : `✗ rejected claim ${choice.name} of ${choice.api.id}: it will not ${rejectedWords(choice.claim)}`,
  );
}

function rejectedWords(claim: PermissionClaim): string {
  const what = claim.group === "" ? claim.resource : `${claim.resource}.${claim.group}`;
  return claim.selector.owner === "Provider"
    ? `write ${what} into your namespaces`
    : claim.selector.owner === "Consumer"
      ? `read ${what} from your namespaces`
      : `write ${what} into your namespaces or read yours`;
}
