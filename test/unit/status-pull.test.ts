// The pull bindings' table of `klutch-bind status` (src/cli/status-pull.ts), from views as
// pull-binding-view.ts reads them: ages, the Healthy condition with its reason, and what is shown
// when the heartbeat or the exports could not be read.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { PullBindingView } from "../../src/bind/pull-binding-view.ts";
import { duration, pullStatus } from "../../src/cli/status-pull.ts";

const now = Date.parse("2026-05-04T10:00:00Z");

function view(over: Partial<PullBindingView>): PullBindingView {
  return {
    namespace: "cluster-abc",
    heartbeat: { lastHeartbeatTime: "2026-05-04T09:56:48Z", heartbeatInterval: "5m0s", konnectorVersion: "v0.4.0" },
    healthy: { type: "Healthy", status: "True", reason: "HeartbeatReceived", message: "fine" },
    deleting: false,
    exports: {
      state: "shown",
      items: [{ name: "x", api: "postgresqlinstances.anynines.com", ready: undefined }],
      more: 0,
    },
    ...over,
  };
}

describe("klutch-bind status: pull bindings", () => {
  it("writes durations as kubectl does", () => {
    assert.deepEqual([0, 45_000, 192_000, 7_500_000, 2 * 86_400_000 + 3_600_000].map(duration), [
      "0s",
      "45s",
      "3m12s",
      "2h5m",
      "2d1h",
    ]);
  });

  it("a healthy binding: one row, no message", () => {
    assert.equal(
      pullStatus([view({})], 0, now),
      "PULL BINDING   HEALTHY                  LAST HEARTBEAT   KONNECTOR   EXPORTS\n" +
        "cluster-abc    True HeartbeatReceived   3m12s ago        v0.4.0      postgresqlinstances.anynines.com\n",
    );
  });

  it("a silent konnector: False with its reason, and why below the table", () => {
    const out = pullStatus(
      [
        view({
          healthy: { type: "Healthy", status: "False", reason: "HeartbeatTimeout", message: "no heartbeat since then" },
        }),
      ],
      0,
      now,
    );
    assert.match(
      out,
      /^cluster-abc\s+False HeartbeatTimeout\s+3m12s ago\s+v0\.4\.0\s+postgresqlinstances\.anynines\.com$/m,
    );
    assert.match(out, /\ncluster-abc \(pull\): no heartbeat since then\n$/);
  });

  it("no heartbeat yet, an invalid one, exports not readable, more namespaces than shown", () => {
    const out = pullStatus(
      [
        view({
          namespace: "a",
          heartbeat: {},
          healthy: undefined,
          exports: { state: "refused", what: "the APIServiceExports" },
        }),
        view({
          namespace: "b",
          heartbeat: { invalid: "status.lastHeartbeatTime: must be a string" },
          healthy: undefined,
        }),
      ],
      3,
      now,
    );
    assert.match(out, /^a\s+Unknown\s+never\s+-\s+\(not readable\)$/m);
    assert.match(out, /^b\s+Unknown\s+invalid\s+-\s+postgresqlinstances\.anynines\.com$/m);
    assert.match(out, /^\(3 more cluster namespaces not shown\)$/m);
    assert.match(out, /^b \(pull\): status\.lastHeartbeatTime: must be a string$/m);
  });
});
