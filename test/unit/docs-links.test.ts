// Every relative link of README.md, BENCHMARKS.md and docs/*.md reaches a file, and a heading when
// it names one (GitHub's anchors), so moving a section cannot leave a link behind.
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, normalize } from "node:path";
import { it } from "node:test";
import { repoRoot } from "../support/tools.ts";

const pages = [
  "README.md",
  "BENCHMARKS.md",
  ...readdirSync(join(repoRoot, "docs"))
    .filter((n) => n.endsWith(".md"))
    .map((n) => `docs/${n}`),
];

/** Text outside fenced blocks, where links are links. */
function prose(text: string): string {
  return text.replace(/^(`{3,}|~{3,})[^\n]*\n[\s\S]*?^\1\s*$/gm, "");
}

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");
}

function anchors(file: string): Set<string> {
  const text = prose(readFileSync(join(repoRoot, file), "utf8"));
  return new Set([...text.matchAll(/^#{1,6}\s+(.+)$/gm)].map((m) => slug(m[1] ?? "")));
}

it("links between the docs reach their file and heading", () => {
  const broken: string[] = [];
  for (const page of pages) {
    const text = prose(readFileSync(join(repoRoot, page), "utf8"));
    for (const [, target = ""] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/.test(target)) continue;
      const [path = "", anchor] = target.split("#");
      const file = path === "" ? page : normalize(join(dirname(page), path));
      if (!existsSync(join(repoRoot, file))) {
        broken.push(`${page}: ${target} (no file ${file})`);
        continue;
      }
      if (anchor !== undefined && file.endsWith(".md") && !anchors(file).has(anchor)) {
        broken.push(`${page}: ${target} (no heading #${anchor} in ${file})`);
      }
    }
  }
  assert.deepEqual(broken, []);
});

it("the README stays a short start: at most about 300 lines", () => {
  const lines = readFileSync(join(repoRoot, "README.md"), "utf8").split("\n").length;
  assert.ok(lines <= 320, `README.md has ${lines} lines; move detail into docs/`);
});
