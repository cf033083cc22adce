import { parseArgs } from "node:util";
import { buildInfo } from "../version.ts";

export async function runVersion(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { output: { type: "string", short: "o", default: "text" } } });
  const info = buildInfo();
  if (values.output === "json") {
    process.stdout.write(`${JSON.stringify(info)}\n`);
  } else if (values.output === "text") {
    process.stdout.write(`klutch-bind ${info.version} (node ${info.node}, ${info.platform})\n`);
  } else {
    process.stderr.write(`version: --output must be "text" or "json", got "${values.output}"\n`);
    return 2;
  }
  return 0;
}
