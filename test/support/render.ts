// The real `crossplane` CLI against our function served on a free loopback port.
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { KubernetesObject } from "@kubernetes/client-node";
import { pino } from "pino";
import { parseAllDocuments } from "yaml";
import { runExportFunction } from "../../src/function/export-function.ts";
import { type RunningFunctionServer, startFunctionServer } from "../../src/function/server.ts";
import { repoRoot, tool } from "./tools.ts";

export type Doc = KubernetesObject & Record<string, unknown>;
export type CrossplaneRun = { code: number; stdout: string; stderr: string; docs: Doc[] };

export type RenderSetup = {
  /** a scratch folder for the test's own files */
  work: string;
  /** examples/export/functions.yaml pointed at the running function */
  functionsFile: string;
  crossplane: (...args: string[]) => Promise<CrossplaneRun>;
  stop: () => Promise<void>;
};

export async function renderSetup(): Promise<RenderSetup> {
  const server: RunningFunctionServer = await startFunctionServer(runExportFunction, {
    address: "127.0.0.1:0",
    insecure: true,
    maxRecvMessageBytes: 4 * 1024 * 1024,
    logger: pino({ level: "silent" }),
  });
  const work = mkdtempSync(join(tmpdir(), "klb-render-"));
  const functionsFile = join(work, "functions.yaml");
  const functions = readFileSync(join(repoRoot, "examples", "export", "functions.yaml"), "utf8");
  writeFileSync(functionsFile, functions.replace("127.0.0.1:9443", `127.0.0.1:${server.port}`));
  const crossplane = async (...args: string[]): Promise<CrossplaneRun> => {
    const result = await promisify(execFile)(tool("crossplane"), args).then(
      (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
      (err: { code: number; stdout: string; stderr: string }) => err,
    );
    const docs = parseAllDocuments(result.stdout)
      .map((d) => d.toJS() as Doc | null)
      .filter((d): d is Doc => d !== null);
    return { ...result, docs };
  };
  return { work, functionsFile, crossplane, stop: () => server.shutdown() };
}
