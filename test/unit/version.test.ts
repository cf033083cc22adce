import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { it } from "node:test";
import { buildInfo } from "../../src/version.ts";

it("reports the package version and the running Node", () => {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
  const info = buildInfo();
  assert.equal(info.version, pkg.version);
  assert.equal(info.node, process.versions.node);
  assert.match(info.platform, /^linux\/x64$/);
});
