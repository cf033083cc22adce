// bench/fuzz-function: 100,000 random and mutated requests against the function server in its own
// process; every one must be answered, the server must stay up and its memory flat.
//   node bench/fuzz-function.ts [--cases 100000] [--out FILE]
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { Client, credentials } from "@grpc/grpc-js";
import { fuzzCase, runFunctionPath } from "../test/support/fuzz.ts";

const { values } = parseArgs({
  options: { cases: { type: "string", default: "100000" }, out: { type: "string" } },
});
const cases = Number(values.cases);
const server = spawn(
  process.execPath,
  [join(import.meta.dirname, "..", "src/cli/main.ts"), "--insecure", "--address", "127.0.0.1:0"],
  {
    stdio: ["ignore", "pipe", "inherit"],
  },
);
const port = await new Promise<number>((resolve) =>
  createInterface({ input: server.stdout }).on("line", (line) => {
    const entry = JSON.parse(line) as { port?: number };
    if (entry.port) resolve(entry.port);
  }),
);
const rssMiB = () => {
  const status = readFileSync(`/proc/${server.pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
};
const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure(), { "grpc.max_send_message_length": -1 });
const identity = (b: Buffer) => b;
const samples: Array<{ at: number; rssMiB: number }> = [];
let answered = 0;
let refused = 0;
const started = performance.now();
for (let seed = 1; seed <= cases; seed++) {
  const ok = await new Promise<boolean>((resolve) =>
    client.makeUnaryRequest(runFunctionPath, identity, identity, fuzzCase(seed), (err) => resolve(!err)),
  );
  if (ok) answered++;
  else refused++;
  if (seed % Math.max(1, Math.floor(cases / 10)) === 0) {
    samples.push({ at: seed, rssMiB: Math.round(rssMiB()) });
    console.error(
      `[fuzz] ${seed}/${cases}: ${answered} answered, ${refused} refused with a gRPC status, server RSS ${Math.round(rssMiB())} MiB`,
    );
  }
  if (server.exitCode !== null) throw new Error(`the server died at case ${seed}`);
}
client.close();
server.kill("SIGTERM");
const exit = await new Promise<number | null>((resolve) => server.on("exit", resolve));
const result = {
  cases,
  answered,
  refused,
  seconds: Math.round((performance.now() - started) / 1000),
  serverExit: exit,
  rss: samples,
};
if (values.out) writeFileSync(values.out, `${JSON.stringify(result, null, 2)}\n`);
else console.log(JSON.stringify(result));
