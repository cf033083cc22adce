// The benchmark's timeline of a new binding's first object, from the sync's stage lines.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { describeTimeline, firstObjectTimeline, stageLines } from "../../bench/first-object.ts";

const key = "bind.klutch.dev/bench-x/f0";
const other = "bind.klutch.dev/bench-x/b1";
/** the sync saw f0 at epoch 10,000 ms; the benchmark created it at 9,990 */
const seen = 10_000;
const line = (binding: string, stage: string, sinceSeenMs: number, fields: Record<string, unknown> = {}) =>
  JSON.stringify({
    level: 20,
    time: Math.round(seen + sinceSeenMs),
    pid: 1,
    component: "sync",
    binding,
    ...fields,
    stage,
    sinceSeenMs,
    msg: `binding start: ${stage}`,
  });

const log = [
  JSON.stringify({ level: 30, time: seen, msg: "sync started", metrics: 1234 }),
  "not json at all: binding start: nonsense",
  line(key, "finalizer added", 6.2),
  line(key, "first reconcile", 14),
  line(key, "secret read", 17.4, { ok: true }),
  line(key, "app client created", 18),
  line(other, "app client created", 20, { kubeconfigChanged: true }),
  line(other, "app objects listed", 90, { export: "widgets.h", objects: 200 }),
  // long before the create: not in the timeline
  line(other, "app client created", -6000, { kubeconfigChanged: true }),
  // logged after, but earlier in the binding's start (another export's line, say)
  line(key, "app objects listed", 150.6, { export: "widgets.g", side: "app", objects: 1, ms: 60, requestMs: 58.7 }),
  line(key, "provider namespaces listed", 72, { export: "widgets.g", side: "control", objects: 40, shared: true }),
  line(key, "first copy created", 380, { export: "widgets.g" }),
  line(key, "status written", 420),
  line(key, "app client created", 9000, { kubeconfigChanged: true }),
  JSON.stringify({ level: 20, time: seen, binding: key, msg: "reconcile failed; retrying", stage: "x" }),
].join("\n");

describe("bench: the first object's timeline", () => {
  it("reads only the stage lines", () => {
    const lines = stageLines(log);
    assert.equal(lines.length, 12);
    assert.deepEqual(lines[2], {
      binding: key,
      stage: "secret read",
      sinceSeenMs: 17.4,
      time: 10_017,
      fields: { ok: true },
    });
  });

  it("orders a binding's stages up to its first copy, and names the others restarted meanwhile", () => {
    const t = firstObjectTimeline(stageLines(log), key, seen - 10, seen + 395);
    assert.ok(t);
    assert.equal(t.binding, "f0");
    assert.equal(t.seenAfterCreateMs, 10);
    assert.equal(t.copySeenAfterCreateMs, 405);
    assert.deepEqual(
      t.stages.map((s) => [s.stage, s.ms]),
      [
        ["finalizer added", 6.2],
        ["first reconcile", 14],
        ["secret read", 17.4],
        ["app client created", 18],
        ["provider namespaces listed", 72],
        ["app objects listed", 150.6],
        ["first copy created", 380],
      ],
    );
    assert.deepEqual(t.othersRestarted, [{ binding: "b1", atMs: 30, relisted: 200, relistedAtMs: 100 }]);
    assert.equal(
      describeTimeline(t),
      "first object of binding f0: seen 10 ms after the create; since seen: finalizer added 6 ms, first reconcile 14 ms, secret read 17 ms, app client created 18 ms, provider namespaces listed 72 ms (listed before), app objects listed 151 ms (1 object, list request 59 ms), first copy created 380 ms; the benchmark saw the copy 405 ms after the create; other bindings restarted on a changed Secret: b1 at 30 ms (200 objects relisted by 100 ms)",
    );
  });

  it("without a first copy, stops where the benchmark saw the copy; undefined for a binding never logged", () => {
    const lines = stageLines(log).filter((l) => l.stage !== "first copy created");
    const t = firstObjectTimeline(lines, key, seen - 10, seen + 200);
    assert.deepEqual(
      t?.stages.map((s) => s.stage),
      [
        "finalizer added",
        "first reconcile",
        "secret read",
        "app client created",
        "provider namespaces listed",
        "app objects listed",
      ],
    );
    assert.equal(firstObjectTimeline(lines, "bind.klutch.dev/bench-x/none", 0), undefined);
  });
});
