import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { docBlocks, runBlock, runnableBlocks } from "../support/doc-blocks.ts";
import { repoRoot } from "../support/tools.ts";

const fence = "```";

describe("runnable doc blocks", () => {
  it("takes only shell blocks marked runnable, with the line of their fence", () => {
    const text = [
      "# Title",
      `${fence}sh`,
      "make demo",
      fence,
      `${fence}sh runnable`,
      "make help",
      "klutch-bind status",
      fence,
      `${fence}yaml`,
      "kind: X",
      fence,
      "````sh runnable",
      "echo ``` inside",
      "````",
    ].join("\n");
    assert.deepEqual(runnableBlocks("x.md", text), [
      { file: "x.md", line: 5, script: "make help\nklutch-bind status" },
      { file: "x.md", line: 12, script: "echo ``` inside" },
    ]);
  });

  it("refuses a runnable marker on a block that is not shell, and an unclosed fence", () => {
    assert.throws(
      () => runnableBlocks("x.md", `${fence}yaml runnable\na: 1\n${fence}\n`),
      /x\.md:1: a runnable block must be a shell block/,
    );
    assert.throws(
      () => runnableBlocks("x.md", `text\n${fence}sh runnable\nmake help\n`),
      /x\.md:2: a fenced block is never closed/,
    );
  });

  it("finds runnable blocks in the README and in docs/", () => {
    const files = new Set(docBlocks(repoRoot).map((b) => b.file));
    assert.ok(files.has("README.md"), [...files].join(", "));
  });

  it("fails a block when any of its commands fails, also inside a pipe", async () => {
    const options = { cwd: repoRoot, env: process.env, timeoutMs: 10_000 };
    const ok = await runBlock({ file: "x.md", line: 1, script: "true\necho fine" }, options);
    assert.equal(ok.code, 0);
    assert.equal(ok.output, "fine\n");
    const middle = await runBlock({ file: "x.md", line: 1, script: "true\nfalse\necho not reached" }, options);
    assert.notEqual(middle.code, 0);
    assert.doesNotMatch(middle.output, /not reached/);
    const piped = await runBlock({ file: "x.md", line: 1, script: "false | cat" }, options);
    assert.notEqual(piped.code, 0);
    const missing = await runBlock({ file: "x.md", line: 1, script: "no-such-command-here" }, options);
    assert.equal(missing.code, 127);
  });

  it("kills a block that runs past its time", async () => {
    const result = await runBlock(
      { file: "x.md", line: 1, script: "sleep 30" },
      { cwd: repoRoot, env: process.env, timeoutMs: 200 },
    );
    assert.equal(result.signal, "SIGKILL");
    assert.match(result.output, /killed after 200 ms/);
  });
});
