import { parseArgs } from "node:util";
import { explain } from "../bind/explain.ts";
import { groupOf, listBindings } from "../bind/find-bindings.ts";
import { namedBindings, namedPullBindings } from "../bind/named-status.ts";
import { readablePullBindings } from "../bind/pull-bindings-readable.ts";
import type { KubeObject } from "../kube/client.ts";
import { conditionOf } from "../kube/conditions.ts";
import { type CommandContext, contextFlags, controlPlane } from "./context.ts";
import type { CommandHelp } from "./help.ts";
import { pullStatus } from "./status-pull.ts";
import { table } from "./table.ts";

type ExportStatus = { group: string; resource: string; objects?: number; lastSync?: string; message?: string };

export const statusFlags = contextFlags;

export const statusHelp: CommandHelp = {
  usage: "status [NAME...] [flags]",
  description:
    "Shows the AppClusterBindings of the namespace (of both API groups, klutch.anynines.com and " +
    "bind.klutch.dev), or those named: whether each is Connected and Ready, its objects per export, " +
    "its last sync, and why one is not Ready. Below them the pull bindings (konnectors) the person may " +
    "read, one per cluster namespace: the Healthy condition from the konnector's heartbeat, its age, " +
    "the konnector's version and the exports; a NAME may be a cluster namespace. Exits 1 when none of " +
    "the named bindings exists.",
  flags: statusFlags,
  examples: ["klutch-bind status -n crossplane-system", "klutch-bind status -n crossplane-system team-orders"],
};

/** `klutch-bind status [NAME]`: every binding's health and counts. */
export async function runStatus(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, options: statusFlags, allowPositionals: true, strict: true });
  const ctx = controlPlane(values);
  try {
    return await showStatus(ctx, positionals, {
      stdout: (text) => process.stdout.write(text),
      stderr: (text) => process.stderr.write(text),
    });
  } finally {
    ctx.client.close();
  }
}

/** Where status writes. */
export type StatusOutput = { stdout: (text: string) => void; stderr: (text: string) => void };

/** The push bindings of names, or all the namespace's: names are read directly (named-status.ts), not listed. */
async function pushBindings(ctx: CommandContext, names: readonly string[]): Promise<KubeObject[]> {
  const read =
    names.length > 0 ? namedBindings(ctx.client, ctx.namespace, names) : listBindings(ctx.client, ctx.namespace);
  // klutch-bind's AppClusterBindings and ours made before (bind.klutch.dev): both are served
  return read.catch((err: unknown) => {
    throw explain(err, "list AppClusterBindings", ctx.client.server, ctx.namespace);
  });
}

/** The status of the bindings named (all the namespace's when none are), written to out; the exit code. */
export async function showStatus(ctx: CommandContext, names: readonly string[], out: StatusOutput): Promise<number> {
  const positionals = [...new Set(names)];
  const bindings = await pushBindings(ctx, positionals);
  // a pull binding that cannot be read says so in one line; it never hides the push bindings' table
  const readPull =
    positionals.length > 0
      ? namedPullBindings(ctx.client, positionals)
      : readablePullBindings(ctx.client, ctx.namespace);
  const pull = await readPull.catch((err: unknown) => {
    const why = explain(err, "read the pull bindings (ClusterBindings)", ctx.client.server, ctx.namespace);
    out.stderr(`klutch-bind: ${why.message}\n`);
    return { views: [], more: 0 };
  });
  const pulls = pull.views;
  const showPull = (after: boolean) => {
    if (pulls.length > 0) out.stdout(`${after ? "\n" : ""}${pullStatus(pulls, pull.more, Date.now())}`);
  };
  if (bindings.length === 0) {
    // names that are all cluster namespaces: only their table
    if (positionals.length > 0 && pulls.length > 0) {
      showPull(false);
      return 0;
    }
    out.stdout(
      `no AppClusterBindings${positionals.length ? ` named ${positionals.join(", ")}` : ""} in namespace ${ctx.namespace}\n`,
    );
    showPull(true);
    return positionals.length ? 1 : 0;
  }
  const rows = bindings.map((b) => {
    const exports = ((b.status as { exports?: ExportStatus[] } | undefined)?.exports ?? []) as ExportStatus[];
    const lastSync =
      exports
        .map((e) => e.lastSync ?? "")
        .sort()
        .at(-1) || "-";
    return [
      b.metadata.name,
      conditionOf(b, "Connected")?.status ?? "Unknown",
      conditionOf(b, "Ready")?.status ?? "Unknown",
      exports.map((e) => `${e.resource}.${e.group}=${e.objects ?? 0}`).join(",") || "-",
      lastSync,
      groupOf(b),
    ];
  });
  out.stdout(table(["NAME", "CONNECTED", "READY", "OBJECTS", "LAST SYNC", "API GROUP"], rows));
  for (const b of bindings) {
    const ready = conditionOf(b, "Ready");
    if (ready?.status !== "True" && ready?.message) {
      out.stdout(`\n${b.metadata.name} (${groupOf(b)}): ${ready.message}\n`);
    }
  }
  showPull(true);
  return 0;
}
