// The docs cannot rot: every shell block of README.md and docs/*.md marked `sh runnable` runs here
// against the test clusters (KUBECONFIG the control cluster's), with kubectl from .dev/bin and
// klutch-bind from the sources, and fails its test when any of its commands fails.
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { testClusters } from "../support/clusters.ts";
import { docBlocks, runBlock } from "../support/doc-blocks.ts";
import { repoRoot, tool } from "../support/tools.ts";

const blocks = docBlocks(repoRoot);

describe("the docs' runnable commands", () => {
  const bin = mkdtempSync(join(tmpdir(), "klb-docs-"));
  let env: NodeJS.ProcessEnv = {};
  before(async () => {
    const { control } = await testClusters();
    const klutchBind = join(bin, "klutch-bind");
    writeFileSync(klutchBind, `#!/bin/sh\nexec '${process.execPath}' '${join(repoRoot, "src/cli/main.ts")}' "$@"\n`);
    chmodSync(klutchBind, 0o755);
    env = {
      ...process.env,
      KUBECONFIG: control.kubeconfigPath,
      PATH: [bin, dirname(tool("kubectl")), dirname(process.execPath), process.env.PATH ?? ""].join(":"),
    };
  });
  after(() => rmSync(bin, { recursive: true, force: true }));

  it("has blocks to run in the README and in docs/", () => {
    assert.ok(
      blocks.some((b) => b.file === "README.md") && blocks.some((b) => b.file.startsWith("docs/")),
      `runnable blocks found: ${blocks.map((b) => `${b.file}:${b.line}`).join(", ")}`,
    );
  });

  for (const block of blocks) {
    it(`${block.file}:${block.line} runs`, { timeout: 180_000 }, async () => {
      // kubectl's discovery cache of its own per block: one filled before a block applied CRDs
      // would hide their kinds (and categories such as kube-bindings) from the blocks after it
      const cache = mkdtempSync(join(bin, "kube-cache-"));
      const result = await runBlock(block, { cwd: repoRoot, env: { ...env, KUBECACHEDIR: cache }, timeoutMs: 150_000 });
      assert.equal(
        result.code,
        0,
        `${block.file}:${block.line} failed:\n${block.script}\n--- output\n${result.output}`,
      );
    });
  }
});
