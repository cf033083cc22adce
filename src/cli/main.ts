#!/usr/bin/env node
// The klutch-bind command: one binary, one subcommand per program of the product.
import { isUsageError } from "./usage.ts";

type Command = { summary: string; run: (args: string[]) => Promise<number> };

// Each command's code is loaded only when it runs: the function server stays free of the
// Kubernetes client, the sync and the web page, which keeps its heap, and so its GC pauses, small.
const commands: Record<string, Command> = {
  exports: {
    summary: "list the APIs the control plane offers for binding, with their claims",
    run: async (args) => (await import("./exports.ts")).runExports(args),
  },
  bind: {
    summary: "bind exported APIs into an app cluster and wait until it is Ready",
    run: async (args) => (await import("./bind.ts")).runBind(args),
  },
  unbind: {
    summary: "stop binding an app cluster (--delete or --orphan its objects)",
    run: async (args) => (await import("./unbind.ts")).runUnbind(args),
  },
  status: {
    summary: "show the health and counts of the bindings",
    run: async (args) => (await import("./status.ts")).runStatus(args),
  },
  function: {
    summary: "serve the Crossplane composition function (gRPC, port 9443)",
    run: async (args) => (await import("./function.ts")).runFunction(args),
  },
  sync: {
    summary: "mirror bound objects and claimed resources between control plane and app clusters",
    run: async (args) => (await import("./sync.ts")).runSync(args),
  },
  version: {
    summary: "print the version of klutch-bind and its runtime",
    run: async (args) => (await import("./version.ts")).runVersion(args),
  },
};
const runFunction = (args: string[]) => (commands.function as Command).run(args);

function usage(): string {
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(12)} ${c.summary}`);
  return ["usage: klutch-bind <command> [flags]", "", "commands:", ...lines, ""].join("\n");
}

async function main(argv: string[]): Promise<number> {
  // Crossplane and `crossplane render` start the image with only flags (--insecure), or with none
  // and TLS_SERVER_CERTS_DIR set: both mean the function server.
  if (argv[0]?.startsWith("-") && !["-h", "--help"].includes(argv[0])) return runFunction(argv);
  if (argv.length === 0 && process.env.TLS_SERVER_CERTS_DIR) return runFunction(argv);
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
    // the stack helps us, not the operator: only with --debug
    const detail =
      err instanceof Error
        ? process.argv.includes("--debug")
          ? (err.stack ?? err.message)
          : err.message
        : String(err);
    process.stderr.write(`klutch-bind: ${detail}\n`);
    process.exitCode = 1;
  },
);
