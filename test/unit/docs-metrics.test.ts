// docs/operations.md lists every metric the sync registers, and no metric it does not.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { it } from "node:test";
import { repoRoot } from "../support/tools.ts";

function sources(dir: string): string[] {
  return readdirSync(join(repoRoot, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith(".ts") ? [path] : [];
  });
}

it("the metrics table of docs/operations.md names every metric registered in src/", () => {
  const registered = new Set<string>();
  for (const file of sources("src")) {
    const text = readFileSync(join(repoRoot, file), "utf8");
    if (!text.includes('from "prom-client"')) continue;
    for (const m of text.matchAll(/\bname:\s*"([a-z_:][a-z0-9_:]*)"/g)) registered.add(m[1] ?? "");
  }
  assert.ok(registered.size >= 10, `found only ${[...registered].join(", ")}`);
  const docs = readFileSync(join(repoRoot, "docs/operations.md"), "utf8");
  const documented = new Set([...docs.matchAll(/^\| `([a-z_:][a-z0-9_:]*)` \|/gm)].map((m) => m[1] ?? ""));
  assert.deepEqual([...documented].sort(), [...registered].sort());
});
