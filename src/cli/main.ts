#!/usr/bin/env node
// The klutch-bind command: one binary, one subcommand per program of the product.
import { type Command, commands } from "./commands.ts";
import { renderHelp, wantsHelp } from "./help.ts";
import { isUsageError } from "./usage.ts";

function usage(): string {
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(12)} ${c.summary}`);
  return [
    "usage: klutch-bind <command> [flags]",
    "",
    "commands:",
    ...lines,
    "",
    "klutch-bind help COMMAND (or klutch-bind COMMAND --help) shows a command's flags.",
    "",
  ].join("\n");
}

async function showHelp(name: string, command: Command): Promise<number> {
  process.stdout.write(renderHelp(name, command.summary, (await command.load()).help));
  return 0;
}

/** The command a usage error is about, for the hint to its --help. */
let current: string | undefined;

async function main(argv: string[]): Promise<number> {
  // Crossplane and `crossplane render` start the image with only flags (--insecure), or with none
  // and TLS_SERVER_CERTS_DIR set: both mean the function server.
  const functionServer =
    (argv[0]?.startsWith("-") && !["-h", "--help"].includes(argv[0])) ||
    (argv.length === 0 && process.env.TLS_SERVER_CERTS_DIR);
  const [name, ...rest] = functionServer ? ["function", ...argv] : argv;
  if (
    name === undefined ||
    name === "--help" ||
    name === "-h" ||
    (name === "help" && (rest[0] === undefined || rest[0].startsWith("-")))
  ) {
    process.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  // `bind URL` binds from the app cluster: a command of its own, bind-url
  const fromApp = name === "bind" && /^https?:\/\//.test(rest[0] ?? "");
  // and `unbind --app RESOURCE.GROUP` undoes it: unbind-app
  const unbindApp = name === "unbind" && rest.some((a) => a === "--app" || a.startsWith("--app="));
  const wanted = fromApp ? "bind-url" : unbindApp ? "unbind-app" : name === "help" ? (rest[0] ?? "") : name;
  const command = commands[wanted];
  if (command === undefined) {
    process.stderr.write(`klutch-bind: unknown command "${wanted}"\n\n${usage()}`);
    return 2;
  }
  if (name === "help" || wantsHelp(rest)) return showHelp(wanted, command);
  current = name;
  return (await command.load()).run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (isUsageError(err)) {
      const hint = current ? `try 'klutch-bind ${current} --help'` : "try 'klutch-bind --help'";
      process.stderr.write(`klutch-bind: ${err.message}\n(${hint})\n`);
      exitNow(2);
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
    exitNow(1);
  },
);

/**
 * A command that failed may have opened what keeps a process alive (a health or web server, a
 * client's connections) and taken over SIGTERM: waiting for them to drain would leave it running,
 * deaf to SIGTERM. Its error is written (stderr is synchronous on files, pipes and terminals): exit.
 */
function exitNow(code: number): void {
  process.exitCode = code;
  process.exit();
}
