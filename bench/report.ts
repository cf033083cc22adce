// BENCHMARKS.md and its charts, from one results file of bench/run.ts.
//   node bench/report.ts bench/results/DATE.json   (re-renders the published report)
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { lineCharts, type RangePanel, rangeCharts } from "./charts.ts";
import { type Scale, type SyncResult, syncSection } from "./report-sync.ts";
import type { FunctionRow } from "./support.ts";

export type Results = {
  date: string;
  mode: string;
  machine: Record<string, string | number>;
  function: unknown;
  fuzz?: unknown;
  sync: unknown;
  scale?: unknown;
  notRun: Record<string, string>;
};

const names: Record<string, string> = {
  ours: "function-klutch-bind",
  "ts-sdk": "function-sdk-typescript",
  go: "function-sdk-go",
};
const label = (server: string) => names[server] ?? server;
const num = (n: number, digits = 0) =>
  n.toLocaleString("en", { maximumFractionDigits: digits, minimumFractionDigits: digits });
const ratio = (a: number, b: number) => (a > 0 && b > 0 ? `${(a / b).toFixed(2)}×` : "-");
/** a latency, or "-" when the cell completed no call (JSON turns NaN into null) */
const ms = (v: number | null) => (v === null || Number.isNaN(v) ? "-" : String(v));

/** The Kubernetes client comparison: its own command (bench/kube-client.ts), its section kept in a file. */
function kubeClientSection(): string {
  const file = join(import.meta.dirname, "results", "kube-client.md");
  return existsSync(file) ? `${readFileSync(file, "utf8").trim()}\n` : "";
}

export function renderReport(results: Results, dir: string, chartsDir: string, source: string): void {
  const fn = results.function as { loadGenerator: string; seconds: number; rows: FunctionRow[] };
  const sync = results.sync as SyncResult;
  type Fuzz = {
    cases: number;
    answered: number;
    refused: number;
    seconds: number;
    serverExit: number | null;
    rss: Array<{ at: number; rssMiB: number }>;
  };
  const fuzz = results.fuzz as Fuzz | undefined;
  const fuzzSection = fuzz
    ? `### Fuzz

${num(fuzz.cases)} random and mutated requests (random bytes; valid requests with bytes flipped, cut or
spliced; the right shape with wrong types in the XR or XRD; nesting up to 470 deep; names up to 500,000
characters), one after another, to one server process: ${num(fuzz.answered)} answered
with a response, ${num(fuzz.refused)} refused with a gRPC status (bytes that do not decode), in
${num(fuzz.seconds)} s. The server ${fuzz.serverExit === 0 ? "never died and exited 0 on SIGTERM" : `exited with ${fuzz.serverExit}`}.
Server RSS at each tenth: ${fuzz.rss.map((r) => `${num(r.rssMiB)}`).join(", ")} MiB.
`
    : "";
  const rows = fn.rows;
  const servers = [...new Set(rows.map((r) => r.server))];
  const sizes = [...new Set(rows.map((r) => r.request))];
  const concurrencies = [...new Set(rows.map((r) => r.concurrency))];
  const row = (server: string, size: string, c: number) =>
    rows.find((r) => r.server === server && r.request === size && r.concurrency === c);

  mkdirSync(join(dir, chartsDir), { recursive: true });
  writeFileSync(
    join(dir, chartsDir, "function-throughput.svg"),
    lineCharts(
      "Function: calls per second against concurrency",
      "calls per second",
      "concurrent calls",
      sizes.map((size) => ({
        title: `request ${size}`,
        categories: concurrencies.map(String),
        series: servers.map((s) => ({
          name: label(s),
          values: concurrencies.map((c) => row(s, size, c)?.callsPerSecond),
        })),
      })),
    ),
  );
  const latencyPanels: RangePanel[] = sizes.map((size) => ({
    title: `request ${size}`,
    categories: concurrencies.map(String),
    ranges: concurrencies.map((c) =>
      servers.flatMap((s) => {
        const r = row(s, size, c);
        return r && r.calls > 0 ? [{ name: label(s), low: r.p50ms, mid: r.p90ms, high: r.p99ms }] : [];
      }),
    ),
  }));
  writeFileSync(
    join(dir, chartsDir, "function-latency.svg"),
    rangeCharts("Function: latency, p50 to p99 (bar), p90 (line)", "milliseconds", "concurrent calls", latencyPanels),
  );

  // the largest gap: where ours is furthest behind the best peer in calls per second
  let gap = { ratio: Number.POSITIVE_INFINITY, text: "" };
  const peers = servers.filter((s) => s !== "ours");
  const table = [
    "| request | concurrency | system | calls/s | ratio ours/peer | p50 ms | p90 ms | p99 ms | CPU ms per call | peak RSS MiB | errors |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
  ];
  for (const size of sizes) {
    for (const c of concurrencies) {
      const ours = row("ours", size, c);
      for (const s of servers) {
        const r = row(s, size, c);
        if (!r) continue;
        const vs = s === "ours" || !ours ? "" : ratio(ours.callsPerSecond, r.callsPerSecond);
        if (s !== "ours" && ours && r.callsPerSecond > 0 && ours.callsPerSecond / r.callsPerSecond < gap.ratio) {
          gap = {
            ratio: ours.callsPerSecond / r.callsPerSecond,
            text: `${size} requests at concurrency ${c}: ${num(ours.callsPerSecond)} calls/s against ${num(r.callsPerSecond)} for ${label(s)}`,
          };
        }
        table.push(
          `| ${size} | ${c} | ${label(s)} | ${num(r.callsPerSecond)} | ${vs} | ${ms(r.p50ms)} | ${ms(r.p90ms)} | ${ms(r.p99ms)} | ${r.cpuMsPerCall} | ${r.peakRssMiB} | ${r.errors} |`,
        );
      }
    }
  }
  const m = results.machine;
  const md = `# Benchmarks

Generated by \`make bench\` (${results.mode} mode) on ${results.date.slice(0, 10)} from [\`${source}\`](${source}).
Regenerate with \`make bench\` (about an hour); \`BENCH=quick make bench\` is a check of about 5 minutes, written to
\`bench/results/tmp/\`. Figures from one shared machine: read the ratios, not the absolute numbers.

## Machine

| | |
|---|---|
| CPU | ${m.cpu}, ${m.cores} cores |
| memory | ${m.memoryGiB} GiB |
| kernel | ${m.kernel} |
| Node.js | ${m.node} |
| Go | ${m.go} |
| Kubernetes (API servers) | ${m.kubernetes} |
| load generator | ${fn.loadGenerator} |
| peer: @crossplane-org/function-sdk-typescript | ${m.tsSdk} |
| peer: github.com/crossplane/function-sdk-go | ${m.goSdk ?? "not run"} |

## The composition function

Method: each server runs in its own process, as in production, serving the same export on
plaintext gRPC over loopback: ours and the TypeScript SDK's peer run the same pure core
(\`src/export\`) in Node.js; the Go peer (\`bench/peers/go\`, on function-sdk-go, built with Go
${String(m.go).replace(/^go version /, "")}) builds the same template and RBAC in Go. Before a server is
measured, its answer must equal ours object for object. One load generator,
${fn.loadGenerator}, sends the same serialized \`RunFunctionRequest\` to each over one connection
for ${fn.seconds} s per cell after a warm-up: 2 KiB is a typical export request; the larger ones
carry desired resources of earlier pipeline steps (16 KiB ConfigMaps), which the function must pass
through. Calls still in flight when a cell's time ends are cut off by ghz and counted neither as calls nor as errors. CPU time per call is the server process's user+system time over the run divided by the
calls; peak RSS is the server's high-water mark during the cell (/proc). The load generator shares
the ${m.cores} cores with the server.

![throughput](${chartsDir}/function-throughput.svg)

![latency](${chartsDir}/function-latency.svg)

${table.join("\n")}

${peers.length ? `**Largest gap:** ${gap.text} (${gap.ratio.toFixed(2)}×).` : ""}

${fuzzSection}
${syncSection(sync, results.scale as Scale | undefined, dir, chartsDir)}
${kubeClientSection()}
## Not measured

${Object.entries(results.notRun)
  .map(([what, why]) => `- ${what}: ${why}.`)
  .join("\n")}
`;
  writeFileSync(join(dir, "BENCHMARKS.md"), md);
}

if (import.meta.main) {
  const file = process.argv[2];
  if (!file) throw new Error("usage: node bench/report.ts bench/results/DATE.json");
  const root = join(import.meta.dirname, "..");
  renderReport(JSON.parse(readFileSync(file, "utf8")) as Results, root, "bench/charts", file);
}
