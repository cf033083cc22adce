// The sync's auto-export waits for Crossplane's XRD API and the ServiceExport API: only a 404 is
// "not served yet" (info); a 403 (missing RBAC) or a network failure is a warning and an Event.
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import { pino } from "pino";
import { KubeApiError, type KubeClient, type KubeObject } from "../../src/kube/client.ts";
import { AutoExportController } from "../../src/sync/auto-export.ts";
import type { InformerRegistry } from "../../src/sync/informers.ts";
import { eventually } from "../support/eventually.ts";

type Line = { level: number; msg: string; err?: string };

/**
 * A control plane answering every probe with fail(path), recording events; the log lines and
 * events it caused, once it has said as many lines and made as many events as expected.
 */
async function probed(fail: (path: string) => Error, expected: { lines: number; events: number }) {
  const lines: Line[] = [];
  const events: KubeObject[] = [];
  const paths: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      lines.push(JSON.parse(String(chunk)) as Line);
      done();
    },
  });
  const control = {
    request: async (_method: string, path: string) => {
      paths.push(path);
      throw fail(path);
    },
    create: async (_ref: unknown, obj: KubeObject) => {
      events.push(obj);
      return obj;
    },
  } as unknown as KubeClient;
  const controller = new AutoExportController(control, {} as InformerRegistry, pino({ level: "info" }, sink));
  controller.start();
  await eventually("both APIs probed and the outcome said", async () => {
    assert.equal(paths.length, 2);
    assert.equal(lines.length, expected.lines);
    assert.equal(events.length, expected.events);
  });
  await controller.stop();
  return { lines, events, paths };
}

const forbidden = (path: string) =>
  new KubeApiError("GET", path, 403, {
    kind: "Status",
    code: 403,
    reason: "Forbidden",
    message: "compositeresourcedefinitions is forbidden: User cannot list",
  });

describe("auto-export waiting for its APIs", () => {
  it("says a 404 of an API at info level, with no event: it is not served yet", async () => {
    const { lines, events } = await probed((path) => new KubeApiError("GET", path, 404, "404 page not found"), {
      lines: 1,
      events: 0,
    });
    assert.deepEqual(
      lines.map((l) => [l.level, l.msg]),
      [[30, "Crossplane XRDs or ServiceExports are not served yet; auto-export waits"]],
    );
    assert.deepEqual(events, []);
  });

  it("makes a missing permission visible: a warning and an Event on each API's CRD", async () => {
    const { lines, events, paths } = await probed(forbidden, { lines: 2, events: 2 });
    assert.deepEqual(paths.sort(), [
      "/apis/apiextensions.crossplane.io/v2/compositeresourcedefinitions?limit=1",
      "/apis/bind.klutch.dev/v1alpha1/serviceexports?limit=1",
    ]);
    const warnings = lines.filter((l) => l.level === 40);
    assert.equal(warnings.length, 2);
    for (const w of warnings) assert.match(String(w.err), /403 Forbidden/);
    assert.ok(!lines.some((l) => /not served yet/.test(l.msg)), JSON.stringify(lines));
    assert.deepEqual(events.map((e) => [e.reason, (e.involvedObject as { name?: string }).name]).sort(), [
      ["AutoExportBlocked", "compositeresourcedefinitions.apiextensions.crossplane.io"],
      ["AutoExportBlocked", "serviceexports.bind.klutch.dev"],
    ]);
    for (const e of events) assert.match(String(e.message), /^cannot list .*403 Forbidden: .*tries again in 30 s$/);
  });

  it("says a network failure at warn level too", async () => {
    const { lines, events } = await probed(() => new Error("connect ECONNREFUSED 10.0.0.1:6443"), {
      lines: 2,
      events: 2,
    });
    assert.equal(lines.filter((l) => l.level === 40 && /ECONNREFUSED/.test(String(l.err))).length, 2);
    assert.equal(events.length, 2);
  });
});
