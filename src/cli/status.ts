import { parseArgs } from "node:util";
import { explain } from "../bind/explain.ts";
import { groupOf, listBindings } from "../bind/find-bindings.ts";
import { readablePullBindings } from "../bind/pull-bindings-readable.ts";
import { conditionOf } from "../kube/conditions.ts";
import { contextFlags, controlPlane } from "./context.ts";
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
    // klutch-bind's AppClusterBindings and ours made before (bind.klutch.dev): both are served
    const items = await listBindings(ctx.client, ctx.namespace).catch((err: unknown) => {
      throw explain(err, "list AppClusterBindings", ctx.client.server, ctx.namespace);
    });
    const bindings = items.filter((b) => positionals.length === 0 || positionals.includes(b.metadata.name));
    // a pull binding that cannot be read says so in one line; it never hides the push bindings' table
    const pull = await readablePullBindings(ctx.client, ctx.namespace).catch((err: unknown) => {
      const why = explain(err, "read the pull bindings (ClusterBindings)", ctx.client.server, ctx.namespace);
      process.stderr.write(`klutch-bind: ${why.message}\n`);
      return { views: [], more: 0 };
    });
    const pulls = pull.views.filter((v) => positionals.length === 0 || positionals.includes(v.namespace));
    const showPull = (after: boolean) => {
      if (pulls.length > 0) process.stdout.write(`${after ? "\n" : ""}${pullStatus(pulls, pull.more, Date.now())}`);
    };
    if (bindings.length === 0) {
      // names that are all cluster namespaces: only their table
      if (positionals.length > 0 && pulls.length > 0) {
        showPull(false);
        return 0;
      }
      process.stdout.write(
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
    process.stdout.write(table(["NAME", "CONNECTED", "READY", "OBJECTS", "LAST SYNC", "API GROUP"], rows));
    for (const b of bindings) {
      const ready = conditionOf(b, "Ready");
      if (ready?.status !== "True" && ready?.message) {
        process.stdout.write(`\n${b.metadata.name} (${groupOf(b)}): ${ready.message}\n`);
      }
    }
    showPull(true);
    return 0;
  } finally {
    ctx.client.close();
  }
}
