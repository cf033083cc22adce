// The answer fuzzer end to end: a proxy in front of a real app API server changes every list answer
// of the bound resource (cut, flipped bytes, HTML, other kinds, and mostly valid lists with items
// left out or none at all) and expires every watch while the sync runs; GETs of one object pass unchanged, as a real cluster would answer
// them. Property: no provider copy is deleted unless its consumer object was really deleted, the
// process keeps running, once the answers are true again, the binding converges, and no log line
// the sync writes meanwhile is over 16 KiB, though every tenth list answer is a Status with a short
// message and a megabyte beside it.
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import { providerNamespace } from "../../src/api/naming.ts";
import { refs } from "../../src/api/resources.ts";
import { createLogger } from "../../src/log.ts";
import { lyingList, mutators } from "../support/answer-mutations.ts";
import { onFileDone, uniqueSuffix } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";
import { random } from "../support/fuzz.ts";
import { startAuthProxy } from "../support/hostile-cluster.ts";
import { syncEnv } from "../support/sync-env.ts";

const fuzzMs = Number(process.env.KLB_FUZZ_SYNC_MS ?? 20_000);
const expired = {
  kind: "Status",
  apiVersion: "v1",
  status: "Failure",
  code: 410,
  reason: "Expired",
  message: "too old resource version",
};

const maxLogLine = 16 * 1024;
const message48 = "etcdserver: request timed out, please retry soon";
/** a failure with a short message and a megabyte of details beside it */
const bloatedStatus = JSON.stringify({
  kind: "Status",
  apiVersion: "v1",
  status: "Failure",
  code: 500,
  reason: "InternalError",
  message: message48,
  details: { causes: Array.from({ length: 64 }, (_, i) => ({ field: `f${i}`, message: "x".repeat(16 * 1024) })) },
});

/** Every line the sync logs (at debug level, through the factory the CLI uses): their count and the largest. */
function measuredLogger() {
  const seen = { lines: 0, largest: 0, largestStart: "", withMessage48: 0 };
  const sink = new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      const bytes = Buffer.byteLength(chunk);
      seen.lines++;
      if (bytes > seen.largest) {
        seen.largest = bytes;
        seen.largestStart = String(chunk).slice(0, 300);
      }
      if (String(chunk).includes(message48)) seen.withMessage48++;
      if (process.env.KLB_TEST_LOG) process.stderr.write(chunk);
      done();
    },
  });
  return { seen, logger: createLogger("sync", true, sink) };
}

describe("the sync under mutated answers", () => {
  it("deletes no provider copy whose consumer object lives, converges afterwards, and keeps log lines short", async () => {
    const measured = measuredLogger();
    const env = await syncEnv({ resyncMs: 200, logger: measured.logger });
    const proxy = await startAuthProxy(env.app);
    onFileDone(() => proxy.stop());
    const binding = await env.bindWith("fuzzed", proxy.kubeconfig);
    await env.ready("fuzzed");
    const ns = `fuzzed-${uniqueSuffix()}`;
    const names = Array.from({ length: 8 }, (_, i) => `db-${i}`);
    for (const name of names) await env.appObject(ns, name);
    const pns = providerNamespace(binding.metadata.uid ?? "", ns);
    const copies = async () =>
      (await env.controlClient.list(env.ref, { namespace: pns })).items
        .map((o) => `${o.metadata.name}=${o.metadata.uid}`)
        .sort();
    await eventually("eight copies", async () => assert.equal((await copies()).length, 8));
    const before = await copies();

    let seed = 1;
    const collection = `/${env.ref.resource}`;
    proxy.mutate = {
      // lists and watches of the bound resource (cluster-wide or in one namespace), never a GET of one object
      when: (url) => url.pathname.endsWith(collection),
      // a watch that lived a second is told it expired: the informer relists at once. Sooner, a
      // second 410 in a row is a failing server and is backed off (informer.ts)
      watchWaitMs: 1100,
      change: (body, watch) => {
        const rng = random(seed++);
        const text = body.toString("utf8");
        // a watch is told its resourceVersion expired (410 Gone, as a real server says after a
        // compaction), so the informer lists again at once: a list a second, each changed
        if (watch)
          return {
            body: Buffer.from(`${JSON.stringify({ type: "ERROR", object: expired })}\n`),
            contentType: "application/json",
          };
        if (text === "") return rng.pick(mutators.slice(0, 5))(rng, text);
        if (seed % 10 === 2) return { body: Buffer.from(bloatedStatus), contentType: "application/json" };
        // most lists lie (valid, with items left out): the answers that would cost copies; broken ones
        // (a few here) make the informer back off, and have thousands of cases in kube-answer-fuzz
        return rng.next() < 0.97 ? lyingList(rng, text) : rng.pick(mutators)(rng, text);
      },
    };
    const unhandled: unknown[] = [];
    const onUnhandled = (err: unknown) => unhandled.push(err);
    process.on("unhandledRejection", onUnhandled);
    onFileDone(async () => void process.off("unhandledRejection", onUnhandled));
    proxy.setMode("mutate");
    // one consumer object really goes meanwhile: its copy may (and in the end must) go
    await env.appClient.delete(env.ref, "db-7", ns);
    const until = Date.now() + fuzzMs;
    while (Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const now = await copies();
      for (const kept of before.filter((c) => !c.startsWith("db-7="))) {
        assert.ok(now.includes(kept), `copy ${kept} deleted under mutated answers (${proxy.mutated} so far)`);
      }
    }
    process.stderr.write(
      `[answer fuzz] through the sync: ${proxy.mutated} mutated list and watch answers in ${fuzzMs} ms\n`,
    );
    // broken answers make the informer back off (valid lying lists do not), which bounds the
    // rate here; the decoder itself takes thousands of cases in kube-answer-fuzz.test.ts
    assert.ok(proxy.mutated >= (fuzzMs / 1000) * 1.2, `only ${proxy.mutated} answers were mutated`);
    assert.deepEqual(unhandled, []);

    proxy.setMode("pass");
    await env.ready("fuzzed");
    await eventually("converged: seven copies, the same objects; db-7's gone", async () => {
      assert.deepEqual(
        await copies(),
        before.filter((c) => !c.startsWith("db-7=")),
      );
    });
    const status = await env.controlClient.get(refs.bindings, "fuzzed", env.bindingNamespace);
    assert.ok(status);
    const { seen } = measured;
    process.stderr.write(`[answer fuzz] ${seen.lines} log lines, the largest ${seen.largest} bytes\n`);
    assert.ok(seen.withMessage48 > 0, "no bloated Status reached the log: the fuzzer no longer sends it");
    assert.ok(seen.largest < maxLogLine, `a log line of ${seen.largest} bytes: ${seen.largestStart}…`);
  });
});
