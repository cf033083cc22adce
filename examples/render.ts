// `make render`: serve the function on 127.0.0.1:9443 and run the real `crossplane render` on
// examples/export/, as a platform engineer would while writing a Composition. `make render-op`
// (`node examples/render.ts op`): the same for operation mode, `crossplane alpha render op` on
// examples/auto-export/operation.yaml with the XRD of examples/export/.
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { pino } from "pino";
import { runExportFunction } from "../src/function/export-function.ts";
import { startFunctionServer } from "../src/function/server.ts";

const root = join(import.meta.dirname, "..");
const crossplane = join(root, ".dev", "bin", "crossplane");
if (!existsSync(crossplane)) {
  const why = join(root, ".dev", "bin", "crossplane.unavailable");
  console.error(existsSync(why) ? readFileSync(why, "utf8").split("\n")[0] : "run make tools first");
  process.exit(1);
}

const server = await startFunctionServer(runExportFunction, {
  address: "127.0.0.1:9443",
  insecure: true,
  maxRecvMessageBytes: 4 * 1024 * 1024,
  logger: pino({ level: "warn" }),
});
const [mode, ...flags] = process.argv.slice(2);
const dir = join(root, "examples", "export");
const args =
  mode === "op"
    ? [
        "alpha",
        "render",
        "op",
        "../auto-export/operation.yaml",
        "functions.yaml",
        "--required-resources=xrd.yaml",
        ...flags,
      ]
    : [
        "render",
        "xr.yaml",
        "composition.yaml",
        "functions.yaml",
        "--required-resources=required-resources.yaml",
        ...process.argv.slice(2),
      ];
console.error(`$ crossplane ${args.join(" ")}`);
const code = await new Promise<number>((resolve) => {
  spawn(crossplane, args, { cwd: dir, stdio: "inherit" }).on("exit", (c) => resolve(c ?? 1));
});
await server.shutdown();
process.exitCode = code;
