import assert from "node:assert/strict";
import { it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { WorkQueue } from "../../src/sync/queue.ts";

it("de-duplicates queued keys and never runs one key twice at once", async () => {
  const running = new Set<string>();
  const runs: string[] = [];
  let overlap = false;
  const queue = new WorkQueue({
    workers: 4,
    process: async (key) => {
      if (running.has(key)) overlap = true;
      running.add(key);
      runs.push(key);
      await sleep(20);
      running.delete(key);
    },
  });
  for (let i = 0; i < 10; i++) queue.add("a");
  queue.add("b");
  queue.start();
  await sleep(5);
  queue.add("a"); // while "a" runs: once more afterwards
  await sleep(80);
  await queue.stop();
  assert.equal(overlap, false);
  assert.deepEqual(runs.sort(), ["a", "a", "b"]);
});

it("retries a failing key with growing delays until it succeeds", async () => {
  const attempts: number[] = [];
  const errors: number[] = [];
  const queue = new WorkQueue({
    workers: 1,
    baseDelayMs: 10,
    process: async () => {
      attempts.push(performance.now());
      if (attempts.length < 4) throw new Error("not yet");
    },
    onError: (_key, _err, retries) => errors.push(retries),
  });
  queue.start();
  queue.add("k");
  const started = performance.now();
  while (attempts.length < 4 && performance.now() - started < 2000) await sleep(5);
  await queue.stop();
  assert.equal(attempts.length, 4);
  assert.deepEqual(errors, [1, 2, 3]);
  const gaps = attempts.slice(1).map((t, i) => t - (attempts[i] ?? t));
  assert.ok((gaps[2] ?? 0) > (gaps[0] ?? 0), `backoff grows: ${gaps.map((g) => g.toFixed(0)).join(", ")} ms`);
});

it("keeps the earlier time when a waiting key is added again after a shorter delay", async () => {
  const runs: number[] = [];
  const queue = new WorkQueue({ workers: 1, process: async () => void runs.push(performance.now()) });
  queue.start();
  const started = performance.now();
  queue.addAfter("k", 10_000); // e.g. a long backoff
  queue.addAfter("k", 20); // then a reason to look again soon
  queue.addAfter("k", 5_000); // a later time changes nothing
  while (runs.length === 0 && performance.now() - started < 2000) await sleep(5);
  await queue.stop();
  assert.equal(runs.length, 1);
  assert.ok((runs[0] ?? Number.POSITIVE_INFINITY) - started < 1000, "ran after the short delay, not the long one");
});

it("reports how long a key waited since it was first added, re-adds keeping that time", async () => {
  const waited: number[] = [];
  const queue = new WorkQueue({ workers: 1, process: async () => sleep(30), onTaken: (ms) => waited.push(ms) });
  queue.add("a", "backlog");
  await sleep(40);
  queue.add("a"); // moves to the live lane, still waiting since the first add
  queue.add("b");
  queue.start();
  await sleep(10);
  queue.add("a"); // while "a" runs: waits for that run to end
  const started = performance.now();
  while (waited.length < 3 && performance.now() - started < 2000) await sleep(5);
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
  await sleep(30);
  // two workers hang on the slow group; the others served the other group
  assert.deepEqual(done.sort(), ["other:a", "other:b"]);
  assert.equal(queue.depth, 4, "the slow group's other keys wait, still queued");
  queue.add("slow:4"); // waiting already: not twice
  queue.add("other:c");
  await sleep(30);
  assert.ok(done.includes("other:c"));
  release();
  await sleep(50);
  await queue.stop();
  assert.equal(most, 2);
  assert.deepEqual(
    done.filter((k) => k.startsWith("slow:")).sort(),
    [0, 1, 2, 3, 4, 5].map((i) => `slow:${i}`),
  );
});
