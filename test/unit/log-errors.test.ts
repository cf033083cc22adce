// Errors are logged by type, message (cut) and code only: a hostile cluster's Status with a short
// message and megabytes beside it must not become a megabyte log line (issue 24, point 6).
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import { type Logger, pino } from "pino";
import { KubeApiError } from "../../src/kube/errors.ts";
import { createLogger, maxLoggedErrorChars, withSafeErrors } from "../../src/log.ts";

const maxLine = 16 * 1024;
const message48 = "admission webhook denied the request: try again";
const bulk = "x".repeat(8 * 1024 * 1024);
const hostileStatus = {
  kind: "Status",
  apiVersion: "v1",
  status: "Failure",
  code: 500,
  reason: "InternalError",
  message: message48,
  details: { retryAfterSeconds: 3, causes: [{ message: bulk, field: bulk }], name: bulk },
  metadata: { selfLink: bulk },
  extra: bulk,
};

function sink(): { lines: string[]; stream: Writable } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return { lines, stream };
}

function logged(make: (stream: Writable) => Logger, fields: Record<string, unknown>): Record<string, unknown> {
  const { lines, stream } = sink();
  make(stream).warn(fields, "watch failed");
  assert.equal(lines.length, 1);
  const line = lines[0] ?? "";
  assert.ok(Buffer.byteLength(line) < maxLine, `a log line of ${Buffer.byteLength(line)} bytes`);
  return JSON.parse(line) as Record<string, unknown>;
}

describe("KubeApiError", () => {
  it("keeps of a Status its code, reason, message and retry hint only", () => {
    const err = new KubeApiError("GET", "/api/v1/configmaps", 500, hostileStatus, "application/json");
    assert.equal(err.message, `GET /api/v1/configmaps: 500 InternalError: ${message48}`);
    assert.deepEqual(err.status, {
      kind: "Status",
      code: 500,
      reason: "InternalError",
      message: message48,
      details: { retryAfterSeconds: 3 },
    });
    assert.equal(err.retryAfterSeconds, 3);
    assert.ok(JSON.stringify(err).length < 1000);
  });

  it("keeps no reason that is not a word, and a message of at most 1000 characters", () => {
    const err = new KubeApiError("GET", "/api/v1/pods", 404, {
      kind: "Status",
      code: 404,
      reason: bulk,
      message: bulk,
    });
    assert.equal(err.reason, "NotFound");
    assert.equal(err.status?.reason, undefined);
    assert.equal(err.isNotFound, false);
    assert.ok(err.message.length < 1200);
  });
});

describe("errors in log lines", () => {
  const makers: Array<[string, (stream: Writable) => Logger]> = [
    ["the logger factory's", (stream) => createLogger("sync", true, stream)],
    ["any logger made safe", (stream) => withSafeErrors(pino(stream))],
  ];
  for (const [which, make] of makers) {
    it(`${which}: a KubeApiError of a hostile Status is its type, message and code`, () => {
      const err = new KubeApiError("GET", "/api/v1/configmaps", 500, hostileStatus, "application/json");
      const line = logged(make, { err, resource: "configmaps/v1" });
      assert.deepEqual(line.err, {
        type: "KubeApiError",
        message: `GET /api/v1/configmaps: 500 InternalError: ${message48}`,
        code: 500,
      });
    });

    it(`${which}: fields and causes of other errors stay out, long messages are cut`, () => {
      const err = Object.assign(new Error(bulk, { cause: new Error(bulk) }), { body: bulk, code: "ECONNRESET" });
      const line = logged(make, { err });
      const out = line.err as { type: string; message: string; code: string };
      assert.deepEqual(Object.keys(out).sort(), ["code", "message", "type"]);
      assert.equal(out.code, "ECONNRESET");
      assert.ok(out.message.length < maxLoggedErrorChars + 100);
      assert.match(out.message, /… \(8388608 characters\)$/);
    });

    it(`${which}: an error logged as a string, or under "error", is cut too`, () => {
      const line = logged(make, { err: bulk, error: new Error(bulk) });
      assert.ok(String(line.err).length < maxLoggedErrorChars + 100);
      assert.ok(String((line.error as { message: string }).message).length < maxLoggedErrorChars + 100);
    });
  }
});
