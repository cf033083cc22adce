import assert from "node:assert/strict";
import { it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { WorkQueue } from "../../src/sync/queue.ts";

/** Waits (up to 2 s, turning the event loop, so mocked timers too) until what is awaited happened. */
async function until(what: string, done: () => boolean): Promise<void> {
  const started = performance.now();
  while (!done()) {
    assert.ok(performance.now() - started < 2000, `still waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

it("de-duplicates queued keys and never runs one key twice at once", async () => {
  const running = new Set<string>();
  const runs: string[] = [];
  let overlap = false;
  // the first run of "a" lasts until the test lets it end: the key is added again while it runs,
  // whatever the machine's load (a 20 ms run could end before the test looked)
  let endFirstA = () => {};
  const firstA = new Promise<void>((resolve) => {
    endFirstA = resolve;
  });
  const queue = new WorkQueue({
    workers: 4,
    process: async (key) => {
      if (running.has(key)) overlap = true;
      running.add(key);
      runs.push(key);
      if (key === "a" && runs.filter((k) => k === "a").length === 1) await firstA;
      else await sleep(5);
      running.delete(key);
    },
  });
  for (let i = 0; i < 10; i++) queue.add("a");
  queue.add("b");
  queue.start();
  await until("a running", () => running.has("a"));
  queue.add("a"); // while "a" runs: once more afterwards
  queue.add("a");
  endFirstA();
  await until("three runs", () => runs.length === 3 && running.size === 0);
  await queue.stop();
  assert.equal(overlap, false);
  assert.deepEqual(runs.sort(), ["a", "a", "b"]);
});

it("retries a failing key with growing delays until it succeeds", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout", "Date"] });
  const attempts: number[] = [];
  const errors: number[] = [];
  const queue = new WorkQueue({
    workers: 1,
    baseDelayMs: 10,
    process: async () => {
      attempts.push(Date.now());
      if (attempts.length < 4) throw new Error("not yet");
    },
    onError: (_key, _err, retries) => errors.push(retries),
  });
  queue.start();
  queue.add("k");
  // the clock moves only here, a millisecond at a time: each gap is the delay the queue chose
  for (let ms = 0; attempts.length < 4 && ms < 1000; ms++) {
    await new Promise((resolve) => setImmediate(resolve));
    t.mock.timers.tick(1);
  }
  await queue.stop();
  assert.equal(attempts.length, 4);
  assert.deepEqual(errors, [1, 2, 3]);
  const gaps = attempts.slice(1).map((at, i) => at - (attempts[i] ?? at));
  // 10, 20, 40 ms, each within the ±20 % jitter (and the tick that fired it)
  for (const [i, gap] of gaps.entries()) {
    const base = 10 * 2 ** i;
    assert.ok(gap >= 0.8 * base && gap <= 1.2 * base + 1, `backoff ${i + 1}: ${gap} ms, not about ${base}`);
  }
});

it("does not run a key at once for a delay beyond what a timer holds, or NaN", async () => {
  // real timers: Node runs setTimeout(fn, 2 ** 31) and setTimeout(fn, NaN) after 1 ms
  const runs: string[] = [];
  const queue = new WorkQueue({ workers: 1, process: async (key) => void runs.push(key) });
  queue.start();
  queue.addAfter("year-9999", Date.parse("9999-01-01") - Date.now());
  queue.addAfter("nan", Number.NaN);
  queue.addAfter("soon", 20);
  await until("the key added for soon ran", () => runs.includes("soon"));
  await new Promise((resolve) => setTimeout(resolve, 50));
  await queue.stop();
  assert.deepEqual(runs, ["soon"]);
});

it("keeps the earlier time when a waiting key is added again after a shorter delay", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout", "Date"] });
  const runs: number[] = [];
  const queue = new WorkQueue({ workers: 1, process: async () => void runs.push(Date.now()) });
  queue.start();
  const started = Date.now();
  queue.addAfter("k", 10_000); // e.g. a long backoff
  queue.addAfter("k", 20); // then a reason to look again soon
  queue.addAfter("k", 5_000); // a later time changes nothing
  t.mock.timers.tick(19);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(runs.length, 0, "not before the short delay");
  t.mock.timers.tick(1);
  await until("the run after the short delay", () => runs.length === 1);
  assert.equal(runs[0], started + 20);
  t.mock.timers.tick(10_000);
  await new Promise((resolve) => setImmediate(resolve));
  await queue.stop();
  assert.equal(runs.length, 1, "the later times were dropped, not kept beside it");
});

it("reports how long a key waited since it was first added, re-adds keeping that time", async () => {
  const waited: number[] = [];
  const taken: string[] = [];
  const queue = new WorkQueue({
    workers: 1,
    process: async (key) => {
      taken.push(key);
      await sleep(30);
    },
    onTaken: (ms) => waited.push(ms),
  });
  queue.add("a", "backlog");
  await sleep(40);
  queue.add("a"); // moves to the live lane, still waiting since the first add
  queue.add("b");
  queue.start();
  await until("a running", () => taken.length === 1);
  queue.add("a"); // while "a" runs: waits for that run to end
  await until("three keys taken", () => waited.length === 3);
  await queue.stop();
  assert.equal(waited.length, 3);
  const [a, b, again] = waited as [number, number, number];
  assert.ok(a >= 35 && a < 1000, `a waited ${a} ms`);
  assert.ok(b >= 25 && b < 1000, `b waited ${b} ms: behind a's 30 ms run`);
  assert.ok(again >= 40, `a again waited ${again} ms: the rest of its run, then b's`);
});

it("runs at most maxPerGroup keys of one group at once, and the other groups' keys meanwhile", async () => {
  const running = new Map<string, number>();
  let most = 0;
  const done: string[] = [];
  let release: () => void = () => undefined;
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  const queue = new WorkQueue({
    workers: 4,
    groupOf: (key) => key.split(":")[0] ?? "",
    maxPerGroup: 2,
    process: async (key) => {
      const group = key.split(":")[0] ?? "";
      running.set(group, (running.get(group) ?? 0) + 1);
      most = Math.max(most, running.get("slow") ?? 0);
      if (group === "slow") await held;
      running.set(group, (running.get(group) ?? 0) - 1);
      done.push(key);
    },
  });
  for (let i = 0; i < 6; i++) queue.add(`slow:${i}`);
  queue.add("other:a");
  queue.add("other:b", "backlog");
  queue.start();
  // two workers hang on the slow group; the others served the other group
  await until("the other group served", () => done.length === 2);
  assert.deepEqual(done.sort(), ["other:a", "other:b"]);
  assert.equal(queue.depth, 4, "the slow group's other keys wait, still queued");
  queue.add("slow:4"); // waiting already: not twice
  queue.add("other:c");
  await until("other:c served", () => done.includes("other:c"));
  release();
  await until("the slow group done", () => done.length === 9);
  await queue.stop();
  assert.equal(most, 2);
  assert.deepEqual(
    done.filter((k) => k.startsWith("slow:")).sort(),
    [0, 1, 2, 3, 4, 5].map((i) => `slow:${i}`),
  );
});
