// Where the time to a new binding's first object goes: the sync's debug lines of a binding's start
// (src/sync/stages.ts), read from its log (BENCH_SYNC_LOG) into one timeline per binding.
import { stageMessage } from "../src/sync/stages.ts";

/** One stage line of the sync's log. time: epoch ms (pino's). */
export type StageLine = {
  binding: string;
  stage: string;
  sinceSeenMs: number;
  time: number;
  fields: Record<string, unknown>;
};

export type TimelineStage = { stage: string; ms: number; fields?: Record<string, unknown> };

export type FirstObjectTimeline = {
  /** the binding's name */
  binding: string;
  /** from the benchmark's create to the sync first seeing the binding (two processes' clocks, ms) */
  seenAfterCreateMs?: number;
  /** from the create to the copy in the benchmark's watch */
  copySeenAfterCreateMs?: number;
  /** ms since the sync first saw the binding, in order, up to the first copy created */
  stages: TimelineStage[];
  /**
   * other bindings whose app client was made anew (a changed Secret: their informers relist) from 5 s
   * before the create to the copy: when, in ms after the create, and how many objects they relisted
   * by when (their reconciles of every object follow)
   */
  othersRestarted: Restart[];
};

export type Restart = { binding: string; atMs: number; relisted?: number; relistedAtMs?: number };

/** a restart this long before the create may still be relisting and reconciling when it comes */
const restartsBeforeMs = 5000;

/** what every pino line carries, or what a stage line says otherwise */
const plain = new Set(["level", "time", "pid", "hostname", "component", "binding", "stage", "sinceSeenMs", "msg"]);

/** The stage lines of a log (one JSON object a line; anything else is skipped). */
export function stageLines(text: string): StageLine[] {
  const out: StageLine[] = [];
  for (const line of text.split("\n")) {
    if (!line.includes(stageMessage)) continue;
    let entry: Record<string, unknown>;
    try {
      entry = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue;
    }
    const { binding, stage, sinceSeenMs, time, msg } = entry;
    if (typeof msg !== "string" || !msg.startsWith(`${stageMessage}: `)) continue;
    if (typeof binding !== "string" || typeof stage !== "string") continue;
    if (typeof sinceSeenMs !== "number" || typeof time !== "number") continue;
    const fields = Object.fromEntries(Object.entries(entry).filter(([k]) => !plain.has(k)));
    out.push({ binding, stage, sinceSeenMs, time, fields });
  }
  return out;
}

const lastPart = (key: string) => key.slice(key.lastIndexOf("/") + 1);

/**
 * The start of binding key (bindingKey) from the log's stage lines; createdAt and copySeenAt are the
 * benchmark's create and its watch's arrival of the copy, in epoch ms. Undefined without a line of it.
 */
export function firstObjectTimeline(
  lines: StageLine[],
  key: string,
  createdAt: number,
  copySeenAt?: number,
): FirstObjectTimeline | undefined {
  const own = lines.filter((l) => l.binding === key);
  const first = own[0];
  if (first === undefined) return undefined;
  const seenAt = first.time - first.sinceSeenMs;
  const copied = own.find((l) => l.stage === "first copy created");
  const cutoff = copied?.sinceSeenMs ?? (copySeenAt === undefined ? Number.POSITIVE_INFINITY : copySeenAt - seenAt);
  const stages = own
    .filter((l) => l.sinceSeenMs <= cutoff)
    .sort((a, b) => a.sinceSeenMs - b.sinceSeenMs)
    .map((l) => ({
      stage: l.stage,
      ms: l.sinceSeenMs,
      ...(Object.keys(l.fields).length > 0 ? { fields: l.fields } : {}),
    }));
  const until = copySeenAt ?? seenAt + cutoff;
  const othersRestarted = lines.flatMap((l, i): Restart[] => {
    if (l.binding === key || l.stage !== "app client created" || l.fields.kubeconfigChanged !== true) return [];
    if (l.time < createdAt - restartsBeforeMs || l.time > until) return [];
    // the app objects of its export syncs started anew, up to its next restart
    let relisted: number | undefined;
    let relistedAt = 0;
    for (const next of lines.slice(i + 1)) {
      if (next.binding !== l.binding) continue;
      if (next.stage === "app client created") break;
      if (next.stage === "app objects listed" && typeof next.fields.objects === "number") {
        relisted = (relisted ?? 0) + next.fields.objects;
        relistedAt = Math.max(relistedAt, next.time);
      }
    }
    return [
      {
        binding: lastPart(l.binding),
        atMs: Math.round(l.time - createdAt),
        ...(relisted === undefined ? {} : { relisted, relistedAtMs: Math.round(relistedAt - createdAt) }),
      },
    ];
  });
  return {
    binding: lastPart(key),
    seenAfterCreateMs: Math.round(seenAt - createdAt),
    ...(copySeenAt === undefined ? {} : { copySeenAfterCreateMs: Math.round(copySeenAt - createdAt) }),
    stages,
    othersRestarted,
  };
}

/** What a stage's fields add, briefly: objects listed, a shared cache, a failure. */
function detail(s: TimelineStage): string {
  const f = s.fields ?? {};
  // a shared cache's figures are of its own first list, long before
  if (f.shared === true) return " (listed before)";
  const parts: string[] = [];
  if (typeof f.objects === "number") parts.push(`${f.objects} object${f.objects === 1 ? "" : "s"}`);
  if (typeof f.requestMs === "number") parts.push(`list request ${Math.round(f.requestMs)} ms`);
  if (f.kubeconfigChanged === true) parts.push("kubeconfig changed");
  if (f.ok === false) parts.push("not ok");
  if (typeof f.connected === "string" && f.connected !== "True") parts.push(`connected ${f.connected}`);
  return parts.length ? ` (${parts.join(", ")})` : "";
}

/** "b2 at -2100 ms (200 objects relisted by -1800 ms), ..." (ms after the create) */
export function restartsText(t: FirstObjectTimeline): string {
  return t.othersRestarted
    .map(
      (r) =>
        `${r.binding} at ${r.atMs} ms${r.relisted === undefined ? "" : ` (${r.relisted} object${r.relisted === 1 ? "" : "s"} relisted by ${r.relistedAtMs} ms)`}`,
    )
    .join(", ");
}

/** "finalizer added 6 ms, first reconcile 14 ms, ..." */
export function stagesText(t: FirstObjectTimeline): string {
  return t.stages.map((s) => `${s.stage} ${Math.round(s.ms)} ms${detail(s)}`).join(", ");
}

/** "first object of binding f0: seen 9 ms after the create; since seen: finalizer added 5 ms, ..." */
export function describeTimeline(t: FirstObjectTimeline): string {
  const stages = stagesText(t);
  const seen = t.seenAfterCreateMs === undefined ? "" : `seen ${t.seenAfterCreateMs} ms after the create; `;
  const copy =
    t.copySeenAfterCreateMs === undefined
      ? ""
      : `; the benchmark saw the copy ${t.copySeenAfterCreateMs} ms after the create`;
  const others = t.othersRestarted.length ? `; other bindings restarted on a changed Secret: ${restartsText(t)}` : "";
  return `first object of binding ${t.binding}: ${seen}since seen: ${stages || "no stages logged"}${copy}${others}`;
}
