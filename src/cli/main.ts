#!/usr/bin/env node
// The klutch-bind command: one binary, one subcommand per program of the product.
import { runVersion } from "./version.ts";

type Command = { summary: string; run: (args: string[]) => Promise<number> };

const commands: Record<string, Command> = {
  version: { summary: "print the version of klutch-bind and its runtime", run: runVersion },
};

function usage(): string {
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(12)} ${c.summary}`);
  return ["usage: klutch-bind <command> [flags]", "", "commands:", ...lines, ""].join("\n");
}

/** node:util parseArgs rejects unknown or malformed flags with these codes. */
function isUsageError(err: unknown): err is Error {
  return (
    err instanceof Error && "code" in err && typeof err.code === "string" && err.code.startsWith("ERR_PARSE_ARGS_")
  );
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    process.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  const command = commands[name];
  if (command === undefined) {
    process.stderr.write(`klutch-bind: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  return command.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (isUsageError(err)) {
      process.stderr.write(`klutch-bind: ${err.message}\n`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`klutch-bind: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
