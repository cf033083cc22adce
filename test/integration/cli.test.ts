// The klutch-bind command as users run it: from the sources and from the built dist/.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { describe, it } from "node:test";
import { promisify } from "node:util";
import { repoRoot } from "../support/tools.ts";

const run = promisify(execFile);

async function klutchBind(entry: string, ...args: string[]) {
  return run(process.execPath, [entry, ...args], { cwd: repoRoot }).then(
    (r) => ({ code: 0, ...r }),
    (err: { code: number; stdout: string; stderr: string }) => ({
      code: err.code,
      stdout: err.stdout,
      stderr: err.stderr,
    }),
  );
}

for (const entry of ["src/cli/main.ts", "dist/cli/main.js"]) {
  describe(`klutch-bind (${entry})`, () => {
    it("prints its version as text and as JSON", async () => {
      const text = await klutchBind(entry, "version");
      assert.equal(text.code, 0);
      assert.match(text.stdout, /^klutch-bind \d+\.\d+\.\d+ \(node 2[2-9]\.\d+\.\d+, linux\/x64\)\n$/);
      const json = await klutchBind(entry, "version", "-o", "json");
      assert.equal((JSON.parse(json.stdout) as { node: string }).node, process.versions.node);
    });

    it("rejects an unknown command and an unknown output format with exit code 2", async () => {
      const unknown = await klutchBind(entry, "frobnicate");
      assert.equal(unknown.code, 2);
      assert.match(unknown.stderr, /unknown command "frobnicate"/);
      const badFormat = await klutchBind(entry, "version", "-o", "yaml");
      assert.equal(badFormat.code, 2);
      assert.match(badFormat.stderr, /--output must be "text" or "json", got "yaml"/);
    });
  });
}

it("reports an unknown flag as a usage error, not a crash", async () => {
  const result = await klutchBind("src/cli/main.ts", "version", "--colour");
  assert.equal(result.code, 2);
  assert.match(result.stderr, /^klutch-bind: Unknown option '--colour'/);
});
