// The shell blocks of the docs that tests run: fenced blocks whose info string is `sh runnable`
// (docs/development.md, "Commands in these docs"), taken from README.md and docs/*.md.
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

export type DocBlock = {
  /** The file, relative to the repository's root. */
  file: string;
  /** The line of the opening fence, counted from 1. */
  line: number;
  script: string;
};

const shells = new Set(["sh", "bash", "shell"]);

/** The fenced blocks of a Markdown text marked runnable; a marker on a block of another language is an error. */
export function runnableBlocks(file: string, text: string): DocBlock[] {
  const blocks: DocBlock[] = [];
  const lines = text.split("\n");
  let open: { fence: string; runnable: boolean; line: number; body: string[] } | undefined;
  for (const [index, line] of lines.entries()) {
    if (open === undefined) {
      const start = /^ {0,3}(`{3,}|~{3,})\s*(.*)$/.exec(line);
      if (start === null) continue;
      const [, fence = "", info = ""] = start;
      const words = info.trim().split(/\s+/);
      const runnable = words.includes("runnable");
      if (runnable && !shells.has(words[0] ?? "")) {
        throw new Error(
          `${file}:${index + 1}: a runnable block must be a shell block (sh runnable), got "${info.trim()}"`,
        );
      }
      open = { fence, runnable, line: index + 1, body: [] };
      continue;
    }
    const close = /^ {0,3}(`{3,}|~{3,})\s*$/.exec(line);
    if (close !== null && close[1]?.[0] === open.fence[0] && (close[1]?.length ?? 0) >= open.fence.length) {
      if (open.runnable) blocks.push({ file, line: open.line, script: open.body.join("\n") });
      open = undefined;
      continue;
    }
    open.body.push(line);
  }
  if (open !== undefined) throw new Error(`${file}:${open.line}: a fenced block is never closed`);
  return blocks;
}

/** Every runnable block of README.md and docs/*.md under root. */
export function docBlocks(root: string): DocBlock[] {
  const files = [
    "README.md",
    ...readdirSync(join(root, "docs"))
      .filter((name) => name.endsWith(".md"))
      .sort()
      .map((name) => `docs/${name}`),
  ];
  return files.flatMap((file) => runnableBlocks(file, readFileSync(join(root, file), "utf8")));
}

export type BlockResult = { code: number | null; signal: NodeJS.Signals | null; output: string };

/**
 * Runs a block as a script of bash -e -o pipefail, so that any command failing fails the block,
 * in cwd with env; killed (its whole process group) after timeoutMs.
 */
export function runBlock(
  block: DocBlock,
  options: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs: number },
): Promise<BlockResult> {
  const child = spawn("bash", ["-e", "-o", "pipefail", "-c", block.script], {
    cwd: options.cwd,
    env: options.env,
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  const timer = setTimeout(() => {
    output += `\n[killed after ${options.timeoutMs} ms]`;
    if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
  }, options.timeoutMs);
  return new Promise((resolve, reject) => {
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, output });
    });
  });
}
