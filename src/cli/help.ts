// `--help` is rendered from the very objects handed to node:util parseArgs, so that what help says
// and what the parser accepts cannot drift apart.

/** One flag as parseArgs takes it, with what `--help` says of it (parseArgs ignores the extra keys). */
export type FlagDefinition = {
  readonly type: "string" | "boolean";
  readonly short?: string;
  readonly multiple?: boolean;
  readonly default?: string | boolean;
  /** what the flag does */
  readonly description: string;
  /** what a string flag takes, shown after its name: FILE, N, SECONDS */
  readonly value?: string;
  /** the default in words, when it is not the constant `default` (computed at start, or another flag's) */
  readonly defaultText?: string;
  /** the environment variable read when the flag is not given */
  readonly env?: string;
};

export type FlagDefinitions = Readonly<Record<string, FlagDefinition>>;

export type CommandHelp = {
  /** after "klutch-bind": the command, its positionals and "[flags]" */
  readonly usage: string;
  /** what the command does, beyond its one-line summary */
  readonly description: string;
  readonly flags: FlagDefinitions;
  /** parseArgs' allowNegative: a boolean that defaults to on is turned off with --no-NAME */
  readonly negatable?: boolean;
  readonly examples: readonly string[];
};

const width = 100;
const indent = "      ";

function wrap(text: string, prefix: string): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && prefix.length + line.length + 1 + word.length > width) {
      lines.push(prefix + line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) lines.push(prefix + line);
  return lines;
}

function defaultOf(flag: FlagDefinition): string | undefined {
  if (flag.defaultText !== undefined) return flag.defaultText;
  if (flag.type === "boolean") return flag.default === true ? "on" : "off";
  if (flag.default === undefined || flag.default === "") return undefined;
  return String(flag.default);
}

function flagLines(name: string, flag: FlagDefinition, negatable: boolean): string[] {
  const names = [
    ...(flag.short ? [`-${flag.short}`] : []),
    `--${name}${flag.type === "string" ? ` ${flag.value ?? "VALUE"}` : ""}`,
    ...(negatable && flag.type === "boolean" && flag.default === true ? [`--no-${name}`] : []),
  ];
  const defaultText = defaultOf(flag);
  return [
    `  ${names.join(", ")}${flag.multiple ? "   (repeatable)" : ""}`,
    ...wrap(flag.description, indent),
    ...(flag.env ? [`${indent}environment: ${flag.env}`] : []),
    ...(defaultText ? wrap(`default: ${defaultText}`, indent) : []),
  ];
}

/** The text of `klutch-bind NAME --help`. */
export function renderHelp(name: string, summary: string, help: CommandHelp): string {
  const flags = Object.entries(help.flags).flatMap(([flag, def]) => flagLines(flag, def, help.negatable === true));
  return [
    `klutch-bind ${name}: ${summary}`,
    "",
    `usage: klutch-bind ${help.usage}`,
    "",
    ...wrap(help.description, ""),
    "",
    "flags:",
    ...flags,
    "  -h, --help",
    `${indent}print this help`,
    "",
    help.examples.length > 1 ? "examples:" : "example:",
    ...help.examples.map((e) => `  ${e}`),
    "",
  ].join("\n");
}

/** --help or -h among a command's arguments (not after "--", where everything is a positional). */
export function wantsHelp(args: readonly string[]): boolean {
  const end = args.indexOf("--");
  return (end === -1 ? args : args.slice(0, end)).some((a) => a === "--help" || a === "-h");
}
