// bench/function: latency, throughput, CPU and memory of function servers, each in its own process
// as in production, under one load generator over loopback: ghz (built from Go modules by `make
// bench-tools`) when present, else our own Node client that sends pre-encoded requests and does not
// decode answers. Every server gets the same requests.
//   node bench/function.ts [--seconds 5] [--concurrency 1,8,64] [--sizes 2KiB,256KiB,3.5MiB]
//                          [--servers ours,ts-sdk,go] [--load ghz|node] [--out FILE]
// Before measuring, each server's answer must equal ours: the same template and RBAC.
import { execFile } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isDeepStrictEqual, parseArgs, promisify } from "node:util";
import { Client, credentials } from "@grpc/grpc-js";
import { composedKeys } from "../src/function/composed-keys.ts";
import { serviceDefinition } from "../src/function/proto.ts";
import type { RunFunctionResponse } from "../src/function/wire.ts";
import { seedClaims, xrd } from "../test/fixtures/xrds.ts";
import { desiredJson, request } from "../test/support/function-client.ts";
import {
  type CpuSample,
  cpuSample,
  type FunctionRow,
  ghzPath,
  ghzVersion,
  percentile,
  resetPeakRss,
  startFunctionServer,
} from "./support.ts";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "5" },
    concurrency: { type: "string", default: "1,8,64" },
    sizes: { type: "string", default: "2KiB,256KiB,3.5MiB" },
    // ts-sdk: the same function on @crossplane-org/function-sdk-typescript; go: on function-sdk-go
    // (make bench-tools installs both)
    servers: { type: "string", default: "ours" },
    load: { type: "string", default: existsSync(ghzPath) ? "ghz" : "node" },
    out: { type: "string" },
  },
});
const seconds = Number(values.seconds);
const concurrencies = values.concurrency.split(",").map(Number);
const root = join(import.meta.dirname, "..");

const xr = {
  apiVersion: "bind.klutch.dev/v1alpha1",
  kind: "ServiceExport",
  metadata: { name: "postgresqlinstances" },
  spec: { xrd: "postgresqlinstances.anynines.com", permissionClaims: seedClaims },
};
const runFunction = serviceDefinition("apiextensions.fn.proto.v1.FunctionRunnerService").RunFunction;
if (runFunction === undefined) throw new Error("no RunFunction method");
const method = runFunction;

/** A request of about `size` bytes: the export request plus ConfigMaps from earlier steps (16 KiB each, one smaller). */
function requestOfSize(size: string): Buffer {
  const target = Number.parseFloat(size) * (size.endsWith("MiB") ? 1024 * 1024 : 1024);
  const build = (fill: number) => {
    const sizes = [...Array.from({ length: Math.floor(fill / 16384) }, () => 16384), fill % 16384].filter((n) => n > 0);
    return method.requestSerialize(
      request({
        tag: "t",
        xr,
        required: { xrd: [xrd({})] },
        desired: Object.fromEntries(
          sizes.map((n, i) => [`earlier-${i}`, { apiVersion: "v1", kind: "ConfigMap", data: { v: "x".repeat(n) } }]),
        ),
      }),
    );
  };
  const base = build(0).length;
  if (base >= target) return build(0);
  // each ConfigMap costs about 120 bytes besides its data
  const overhead = 120 * Math.ceil((target - base) / 16384);
  return build(Math.max(0, target - base - overhead));
}

type Load = { calls: number; errors: number; seconds: number; latenciesMs: { p50: number; p90: number; p99: number } };

const identity = (b: Buffer) => b;
function call(client: Client, body: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(method.path, identity, identity, body, (err, rsp) =>
      err || !rsp ? reject(err) : resolve(rsp),
    ),
  );
}

async function nodeLoad(port: number, body: Buffer, concurrency: number, runSeconds: number): Promise<Load> {
  const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure(), {
    "grpc.max_send_message_length": -1,
    "grpc.max_receive_message_length": -1,
  });
  const latencies: number[] = [];
  let errors = 0;
  const deadline = performance.now() + runSeconds * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        const t = performance.now();
        try {
          await call(client, body);
          latencies.push(performance.now() - t);
        } catch {
          errors++;
        }
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  client.close();
  latencies.sort((a, b) => a - b);
  return {
    calls: latencies.length,
    errors,
    seconds: elapsed,
    latenciesMs: { p50: percentile(latencies, 50), p90: percentile(latencies, 90), p99: percentile(latencies, 99) },
  };
}

/** The exported objects a server answers with, as JSON. */
async function exportedObjects(port: number, body: Buffer): Promise<Record<string, unknown>> {
  const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure(), {
    "grpc.max_receive_message_length": -1,
    "grpc.max_send_message_length": -1,
  });
  try {
    const desired = desiredJson(method.responseDeserialize(await call(client, body)) as RunFunctionResponse);
    return Object.fromEntries(Object.values(composedKeys).map((key) => [key, desired[key]]));
  } finally {
    client.close();
  }
}

const dataDir = mkdtempSync(join(tmpdir(), "klb-bench-"));
async function ghzLoad(port: number, body: Buffer, concurrency: number, runSeconds: number): Promise<Load> {
  const file = join(dataDir, `req-${body.length}.bin`);
  if (!existsSync(file)) writeFileSync(file, body);
  const { stdout } = await promisify(execFile)(
    ghzPath,
    [
      "--insecure",
      "--proto",
      join(root, "proto/apiextensions/fn/proto/v1/run_function.proto"),
      "--import-paths",
      join(root, "proto"),
      "--call",
      "apiextensions.fn.proto.v1.FunctionRunnerService.RunFunction",
      "--binary-file",
      file,
      "--concurrency",
      String(concurrency),
      "--connections",
      "1",
      "--duration",
      `${runSeconds}s`,
      "--max-recv-message-size",
      "64MB",
      "--max-send-message-size",
      "64MB",
      "--format",
      "json",
      `127.0.0.1:${port}`,
    ],
    { maxBuffer: 64 * 1024 * 1024 },
  );
  type Report = {
    count: number;
    total: number;
    latencyDistribution?: Array<{ percentage: number; latency: number }> | null;
    statusCodeDistribution?: Record<string, number>;
    errorDistribution?: Record<string, number> | null;
  };
  const report = JSON.parse(stdout) as Report;
  const at = (p: number) => (report.latencyDistribution?.find((d) => d.percentage === p)?.latency ?? Number.NaN) / 1e6;
  const ok = report.statusCodeDistribution?.OK ?? 0;
  // calls still in flight when the duration ends are cut off by ghz closing its connection (or
  // cancelling them): not the server's errors
  const cut = Object.entries(report.errorDistribution ?? {})
    .filter(([message]) => /closed network connection|client connection is closing|context canceled/.test(message))
    .reduce((sum, [, n]) => sum + n, 0);
  return {
    calls: ok,
    errors: report.count - ok - cut,
    seconds: report.total / 1e9,
    latenciesMs: { p50: at(50), p90: at(90), p99: at(99) },
  };
}

const load = values.load === "ghz" ? ghzLoad : nodeLoad;
const loadGenerator = values.load === "ghz" ? `ghz ${ghzVersion}` : "node (@grpc/grpc-js client)";
const sizes = values.sizes.split(",");
const bodies = Object.fromEntries(sizes.map((s) => [s, requestOfSize(s)]));
console.error(`[bench] load generator: ${loadGenerator}`);

const rows: FunctionRow[] = [];
let reference: { server: string; objects: Record<string, unknown> } | undefined;
for (const serverName of values.servers.split(",")) {
  const server = await startFunctionServer(root, serverName);
  const objects = await exportedObjects(server.port, bodies[sizes[0] ?? "2KiB"] ?? requestOfSize("2KiB"));
  reference ??= { server: serverName, objects };
  if (!isDeepStrictEqual(objects, reference.objects)) {
    server.child.kill("SIGTERM");
    throw new Error(
      `${serverName} answers differently from ${reference.server}, so comparing them would not be fair:\n` +
        `${JSON.stringify(objects, null, 1)}\nagainst\n${JSON.stringify(reference.objects, null, 1)}`,
    );
  }
  for (const size of sizes) {
    const body = bodies[size] as Buffer;
    console.error(`[bench] ${serverName} ${size} (${(body.length / 1024).toFixed(0)} KiB per request)`);
    for (const concurrency of concurrencies) {
      await load(server.port, body, concurrency, Math.min(1, seconds)); // warm up
      resetPeakRss(server.pid);
      const before: CpuSample = cpuSample(server.pid);
      const result = await load(server.port, body, concurrency, seconds);
      const after = cpuSample(server.pid);
      rows.push({
        server: serverName,
        request: size,
        requestBytes: body.length,
        concurrency,
        calls: result.calls,
        errors: result.errors,
        callsPerSecond: Math.round(result.calls / result.seconds),
        p50ms: Number(result.latenciesMs.p50.toFixed(2)),
        p90ms: Number(result.latenciesMs.p90.toFixed(2)),
        p99ms: Number(result.latenciesMs.p99.toFixed(2)),
        cpuMsPerCall: Number((((after.cpuSeconds - before.cpuSeconds) * 1000) / Math.max(1, result.calls)).toFixed(3)),
        peakRssMiB: Math.round(after.peakRssKiB / 1024),
      });
      console.error(`[bench]   x${concurrency}: ${rows.at(-1)?.callsPerSecond} calls/s`);
    }
  }
  server.child.kill("SIGTERM");
  await once(server.child, "exit");
}
console.table(rows);
const output = { loadGenerator, seconds, rows };
if (values.out) writeFileSync(values.out, `${JSON.stringify(output, null, 2)}\n`);
else console.log(JSON.stringify(output));
