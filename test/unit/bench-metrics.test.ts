// The benchmark's readings of the sync's Prometheus histograms: what a phase is judged by.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  bucketsFromMetrics,
  describeRequests,
  quantilesBetween,
  requestHistograms,
  requestsBetween,
} from "../../bench/sync-phases.ts";

/** a scrape of klutch_bind_api_request_seconds with buckets 0.01, 1, +Inf per label set */
function scrape(sets: Array<{ cluster: string; method: string; code: string; counts: [number, number, number] }>) {
  return sets
    .flatMap(({ cluster, method, code, counts }) =>
      ["0.01", "1", "+Inf"].map(
        (le, i) =>
          `klutch_bind_api_request_seconds_bucket{cluster="${cluster}",method="${method}",code="${code}",le="${le}"} ${counts[i]}`,
      ),
    )
    .join("\n");
}

describe("bench: the sync's histograms", () => {
  it("sums only the label sets asked for", () => {
    const text = scrape([
      { cluster: "app", method: "PATCH", code: "200", counts: [1, 2, 2] },
      { cluster: "control", method: "PATCH", code: "200", counts: [5, 5, 5] },
    ]);
    const name = "klutch_bind_api_request_seconds";
    assert.equal(bucketsFromMetrics(text, name).get(Number.POSITIVE_INFINITY), 7);
    assert.equal(bucketsFromMetrics(text, name, { cluster: "app" }).get(Number.POSITIVE_INFINITY), 2);
    assert.equal(bucketsFromMetrics(text, name, { cluster: "app", method: "GET" }).size, 0);
  });

  it("breaks a phase's requests down by cluster and method, counting the failed codes", () => {
    const before = requestHistograms(scrape([{ cluster: "app", method: "PATCH", code: "200", counts: [10, 10, 10] }]));
    const after = requestHistograms(
      scrape([
        { cluster: "app", method: "PATCH", code: "200", counts: [10, 110, 110] },
        { cluster: "app", method: "PATCH", code: "409", counts: [0, 4, 4] },
        { cluster: "control", method: "POST", code: "201", counts: [50, 50, 50] },
      ]),
    );
    const phase = requestsBetween(before, after);
    assert.deepEqual(Object.keys(phase).sort(), ["app PATCH", "control POST"]);
    const patches = phase["app PATCH"];
    assert.equal(patches?.n, 104);
    assert.deepEqual(patches?.failed, { "409": 4 });
    // all 104 fell between 10 ms and 1 s
    assert.ok((patches?.p50ms ?? 0) > 10 && (patches?.p99ms ?? 0) <= 1000);
    assert.deepEqual(phase["control POST"]?.failed, {});
    assert.equal(
      describeRequests(phase),
      `app PATCH: 104, p50 ${patches?.p50ms} / p99 ${patches?.p99ms} ms (409: 4); control POST: 50, p50 5 / p99 9.9 ms`,
    );
    assert.equal(describeRequests({}), "-");
  });

  it("interpolates quantiles within buckets, and has none when nothing was observed", () => {
    const none = new Map<number, number>();
    const some = new Map([
      [0.1, 50],
      [1, 100],
      [Number.POSITIVE_INFINITY, 100],
    ]);
    assert.deepEqual(quantilesBetween(none, some), { n: 100, p50ms: 100, p99ms: 982 });
    assert.equal(quantilesBetween(some, some), undefined);
  });
});
