import { parseArgs } from "node:util";
import { buildInfo } from "../version.ts";
import type { CommandHelp, FlagDefinitions } from "./help.ts";

export const versionFlags = {
  output: {
    type: "string",
    short: "o",
    default: "text",
    value: "FORMAT",
    description: 'how to print it: "text" (one line) or "json" (version, node and platform as fields)',
  },
} as const satisfies FlagDefinitions;

export const versionHelp: CommandHelp = {
  usage: "version [flags]",
  description: "Prints the version of klutch-bind, of the Node.js runtime it runs on, and the platform.",
  flags: versionFlags,
  examples: ["klutch-bind version -o json"],
};

export async function runVersion(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: versionFlags });
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
