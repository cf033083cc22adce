// bench/function: latency and throughput of the function server, in its own process as in
// production, driven by a real gRPC client over loopback. The client sends pre-encoded requests
// and does not decode answers, so the figures are the server's, not the load generator's.
//   node bench/function.ts [--seconds 5] [--concurrency 1,8,64]
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { type AddressInfo, connect, createServer } from "node:net";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Client, credentials } from "@grpc/grpc-js";
import { serviceDefinition } from "../src/function/proto.ts";
import { seedClaims, xrd } from "../test/fixtures/xrds.ts";
import { request } from "../test/support/function-client.ts";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "5" },
    concurrency: { type: "string", default: "1,8,64" },
    // ts-sdk: the same function on @crossplane-org/function-sdk-typescript (cd bench/peers/ts-sdk && npm ci)
    servers: { type: "string", default: "ours" },
  },
});
const seconds = Number(values.seconds);
const concurrencies = values.concurrency.split(",").map(Number);

const xr = {
  apiVersion: "bind.klutch.dev/v1alpha1",
  kind: "ServiceExport",
  metadata: { name: "postgresqlinstances" },
  spec: { xrd: "postgresqlinstances.anynines.com", permissionClaims: seedClaims },
};
const runFunction = serviceDefinition("apiextensions.fn.proto.v1.FunctionRunnerService").RunFunction;
if (runFunction === undefined) throw new Error("no RunFunction method");
const method = runFunction;
const encode = (req: ReturnType<typeof request>) => method.requestSerialize(req);
const requests = {
  typical: encode(request({ tag: "t", xr, required: { xrd: [xrd({})] } })),
  "1MiB": encode(
    request({
      tag: "t",
      xr,
      required: { xrd: [xrd({})] },
      desired: Object.fromEntries(
        Array.from({ length: 64 }, (_, i) => [
          `earlier-${i}`,
          { apiVersion: "v1", kind: "ConfigMap", data: { v: "x".repeat(16 * 1024) } },
        ]),
      ),
    }),
  ),
};
const identity = (b: Buffer) => b;
function call(client: Client, body: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(method.path, identity, identity, body, (err, rsp) =>
      err || !rsp ? reject(err) : resolve(rsp),
    ),
  );
}

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/** Starts one server under test in its own process; resolves with its port once it accepts calls. */
async function startServer(name: string): Promise<{ port: number; process: ChildProcess }> {
  const port = await freePort();
  const root = join(import.meta.dirname, "..");
  const entry = name === "ours" ? join(root, "src/cli/main.ts") : join(root, "bench/peers", name, "main.ts");
  const args =
    name === "ours"
      ? ["--insecure", "--address", `127.0.0.1:${port}`, "--max-recv-message-size", "8"]
      : ["--insecure", "--address", `127.0.0.1:${port}`];
  const child = spawn(process.execPath, [entry, ...args], { stdio: ["ignore", "ignore", "inherit"] });
  for (let i = 0; i < 100; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: "127.0.0.1", port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.on("error", () => resolve(false));
    });
    if (up) return { port, process: child };
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${name} did not listen on ${port}`);
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

const rows: Array<Record<string, string | number>> = [];
for (const serverName of values.servers.split(",")) {
  const { port, process: server } = await startServer(serverName);
  for (const [name, req] of Object.entries(requests)) {
    console.error(`[bench] ${name}: ${(req.length / 1024).toFixed(0)} KiB per request`);
    for (const concurrency of concurrencies) {
      const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure(), {
        "grpc.max_send_message_length": -1,
      });
      for (let i = 0; i < 50; i++) await call(client, req); // warm up
      const latencies: number[] = [];
      const deadline = performance.now() + seconds * 1000;
      const started = performance.now();
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (performance.now() < deadline) {
            const t = performance.now();
            await call(client, req);
            latencies.push(performance.now() - t);
          }
        }),
      );
      const elapsed = (performance.now() - started) / 1000;
      client.close();
      latencies.sort((a, b) => a - b);
      rows.push({
        server: serverName,
        request: name,
        concurrency,
        calls: latencies.length,
        "calls/s": Math.round(latencies.length / elapsed),
        "p50 ms": Number(percentile(latencies, 50).toFixed(2)),
        "p99 ms": Number(percentile(latencies, 99).toFixed(2)),
      });
      console.error(`[bench] ${serverName} ${name} x${concurrency}: done`);
    }
  }
  server.kill("SIGTERM");
  await once(server, "exit");
}
console.table(rows);
console.log(JSON.stringify({ node: process.versions.node, seconds, rows }));
