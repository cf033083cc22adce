// `make bench`: every benchmark in one run on this machine, the results in
// bench/results/<date>.json, and BENCHMARKS.md with its charts made from them.
// BENCH=quick: about 5 minutes, written to bench/results/tmp/ (not published).
import { execFile, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, release, totalmem } from "node:os";
import { join, relative } from "node:path";
import { promisify } from "node:util";
import { renderReport } from "./report.ts";

const root = join(import.meta.dirname, "..");
const mode = process.env.BENCH === "quick" ? "quick" : "full";
const settings =
  mode === "quick"
    ? {
        function: { seconds: "1", concurrency: "1,8,64", sizes: "2KiB,256KiB,3.5MiB" },
        fuzzCases: "5000",
        sync: [
          "--objects",
          "1000",
          "--stream",
          "200",
          "--namespaces",
          "10",
          "--bindings",
          "4",
          "--app-clusters",
          "2",
          "--storm",
          "200",
          "--secrets",
          "100",
          "--rate-seconds",
          "5",
          "--backlog",
          "500",
        ],
        scale: ["--bindings", "6", "--app-clusters", "3", "--objects", "600", "--namespaces", "6"],
      }
    : {
        function: { seconds: "10", concurrency: "1,8,64", sizes: "2KiB,256KiB,3.5MiB" },
        fuzzCases: "100000",
        sync: [
          "--objects",
          "10000",
          "--stream",
          "1000",
          "--namespaces",
          "100",
          "--bindings",
          "20",
          "--app-clusters",
          "2",
          "--storm",
          "1000",
          "--secrets",
          "500",
          "--rate-seconds",
          "60",
          "--backlog",
          "5000",
        ],
        scale: ["--bindings", "100", "--app-clusters", "3", "--objects", "10000", "--namespaces", "100"],
      };
const date = new Date().toISOString().slice(0, 10);
const outDir = mode === "quick" ? join(root, "bench/results/tmp") : join(root, "bench/results");
mkdirSync(join(root, "bench/results/tmp"), { recursive: true });
const say = (text: string) => console.error(`[bench] ${text}`);

/** BENCH_REUSE=function,fuzz: take those steps' results from an earlier run of this mode (bench/results/tmp). */
const reuse = new Set((process.env.BENCH_REUSE ?? "").split(",").filter(Boolean));

async function step(name: string, args: string[], env: Record<string, string> = {}): Promise<unknown> {
  const out = join(root, "bench/results/tmp", `${name}.json`);
  if (reuse.has(name) && existsSync(out)) {
    say(`${name}: reusing ${relative(root, out)} from an earlier run (BENCH_REUSE)`);
    return JSON.parse(readFileSync(out, "utf8"));
  }
  say(`${name}: node ${args.join(" ")}`);
  const started = Date.now();
  const child = spawn(process.execPath, [...args, "--out", out], {
    cwd: root,
    stdio: ["ignore", "ignore", "inherit"],
    env: { ...process.env, ...env },
  });
  const [code] = await once(child, "exit");
  if (code !== 0) throw new Error(`bench: ${name} exited with ${code}`);
  say(`${name}: done in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return JSON.parse(readFileSync(out, "utf8"));
}

const run = promisify(execFile);
const version = async (cmd: string, args: string[]) =>
  run(cmd, args).then(
    (r) => r.stdout.trim().split("\n")[0] ?? "",
    () => "not available",
  );
const machine = {
  cpu: cpus()[0]?.model ?? "unknown",
  cores: cpus().length,
  memoryGiB: Math.round(totalmem() / 1024 ** 3),
  kernel: release(),
  node: process.versions.node,
  go: await version("go", ["version"]),
  kubernetes: (await version(join(root, ".dev/bin/kubectl"), ["version", "--client"])).replace("Client Version: ", ""),
  tsSdk: (
    JSON.parse(
      readFileSync(
        join(root, "bench/peers/ts-sdk/node_modules/@crossplane-org/function-sdk-typescript/package.json"),
        "utf8",
      ),
    ) as { version: string }
  ).version,
  goSdk:
    /github\.com\/crossplane\/function-sdk-go (\S+)/.exec(
      readFileSync(join(root, "bench/peers/go/go.mod"), "utf8"),
    )?.[1] ?? "unknown",
};

say(`mode ${mode}; ${machine.cores} cores (${machine.cpu}), node ${machine.node}`);
const fn = await step("function", [
  "bench/function.ts",
  "--servers",
  "ours,ts-sdk,go",
  "--load",
  "ghz",
  "--seconds",
  settings.function.seconds,
  "--concurrency",
  settings.function.concurrency,
  "--sizes",
  settings.function.sizes,
]);
const fuzz = await step("fuzz", ["bench/fuzz-function.ts", "--cases", settings.fuzzCases]);
// the sync's log (debug: a few lines per binding's start) gives the first object's timeline
const sync = await step("sync", ["bench/sync.ts", ...settings.sync], {
  BENCH_SYNC_LOG: join(root, "bench/results/tmp/sync.log"),
});
// the scale table: cold start only, with one sync process and with three sharing the bindings
const shardsSupported = !/Unknown option '--shards'/.test(
  spawnSync(process.execPath, ["src/cli/main.ts", "sync", "--shards", "auto", "--leader-elect"], {
    cwd: root,
    encoding: "utf8",
  }).stderr,
);
const scale = {
  oneReplica: await step("sync-scale-1", ["bench/sync.ts", "--phases", "cold", "--replicas", "1", ...settings.scale]),
  threeReplicas: shardsSupported
    ? await step("sync-scale-3", ["bench/sync.ts", "--phases", "cold", "--replicas", "3", ...settings.scale])
    : "pending: this klutch-bind sync has no --shards auto",
};
const results = {
  date: new Date().toISOString(),
  mode,
  machine,
  function: fn,
  fuzz,
  sync,
  scale,
  notRun: {
    "kube-bind konnector peer":
      "the proxy here serves only kube-bind v0.3.0, whose konnector speaks kube-bind's own protocol (APIServiceBinding, APIServiceNamespace) and syncs a namespace only after a kube-bind backend has assigned it; that backend starts only with an OIDC issuer, which cannot be had here, and our AppClusterBinding model is nothing the konnector can be pointed at",
  },
};
const file = join(outDir, `${date}${mode === "quick" ? "-quick" : ""}.json`);
writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
say(`results: ${file}`);
const reportDir = mode === "quick" ? outDir : root;
const chartsDir = mode === "quick" ? "charts" : "bench/charts";
renderReport(results, reportDir, chartsDir, file.slice(root.length + 1));
say(`report: ${join(reportDir, "BENCHMARKS.md")}`);
