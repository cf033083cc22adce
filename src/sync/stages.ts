// The stages of a binding's start as debug lines, each with the ms since the binding controller
// first saw the binding (sinceSeenMs): where the time to a new binding's first object goes.
// bench/sync.ts reads them (bench/first-object.ts). Nothing of it exists while debug is off.
import type { Logger } from "pino";

/**
 * Logs stage once (once per export, when fields name one), or every time with each; fields are
 * small and never secret.
 */
export type StageLog = (stage: string, fields?: Record<string, unknown>, each?: boolean) => void;

/** The line of each stage says this in its msg, after "binding start: ". */
export const stageMessage = "binding start";

/** A StageLog counting from seenAt (performance.now()), or undefined while log says no debug lines. */
export function stageLog(log: Logger, seenAt: number, base?: Record<string, string>): StageLog | undefined {
  if (!log.isLevelEnabled("debug")) return undefined;
  const out = base === undefined ? log : log.child(base);
  const said = new Set<string>();
  return (stage, fields, each = false) => {
    const once = fields?.export === undefined ? stage : `${stage} ${String(fields.export)}`;
    if (!each && said.has(once)) return;
    said.add(once);
    const sinceSeenMs = Math.round((performance.now() - seenAt) * 10) / 10;
    out.debug({ stage, sinceSeenMs, ...fields }, `${stageMessage}: ${stage}`);
  };
}
