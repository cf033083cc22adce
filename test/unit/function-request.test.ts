import assert from "node:assert/strict";
import { it } from "node:test";
import { xrdWithoutSchemas } from "../../src/function/request.ts";
import { jsonToStruct } from "../../src/function/struct.ts";
import { xrd } from "../fixtures/xrds.ts";

it("reads an XRD without its versions' schemas, and everything else as it is", () => {
  const full = xrd({});
  const { spec, ...rest } = full as { spec: { versions: Array<Record<string, unknown>> } & Record<string, unknown> };
  assert.ok(
    spec.versions.some((v) => v.schema !== undefined),
    "the fixture has schemas",
  );
  const expected = {
    ...rest,
    spec: { ...spec, versions: spec.versions.map(({ schema: _, ...v }) => v) },
  };
  assert.deepEqual(xrdWithoutSchemas(jsonToStruct(full)), expected);
});
