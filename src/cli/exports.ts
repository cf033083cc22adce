import { parseArgs } from "node:util";
import { listBindable } from "../bind/bindable.ts";
import { contextFlags, controlPlane } from "./context.ts";
import type { CommandHelp, FlagDefinitions } from "./help.ts";
import { table } from "./table.ts";

export const exportsFlags = {
  ...contextFlags,
  namespace: {
    ...contextFlags.namespace,
    description: "list the APIServiceExportTemplates of this namespace only; conflicts are judged for a binding in it",
    defaultText:
      'the templates of every namespace, conflicts judged for the kubeconfig context\'s namespace (else "default")',
  },
} as const satisfies FlagDefinitions;

export const exportsHelp: CommandHelp = {
  usage: "exports [flags]",
  description:
    "Lists what an app cluster can bind: each exported API (RESOURCE.GROUP), its version and template, " +
    "and in words what each of its permission claims copies between the clusters. APIs that several " +
    "templates export are listed under CONFLICT (bindings of them are refused).",
  flags: exportsFlags,
  examples: ["klutch-bind exports", "klutch-bind exports -n crossplane-system --kubeconfig control.yaml"],
};

/** `klutch-bind exports`: what an app cluster can bind, and what each binding will copy. */
export async function runExports(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: exportsFlags, strict: true });
  const { client, namespace } = controlPlane(values);
  try {
    // conflicts as the sync sees them for a binding of the command's namespace
    const apis = await listBindable(client, values.namespace, namespace);
    if (apis.length === 0) {
      process.stdout.write(
        `no bindable APIs${values.namespace ? ` in namespace ${values.namespace}` : ""} (no APIServiceExportTemplates)\n`,
      );
      return 0;
    }
    process.stdout.write(
      table(
        ["API", "VERSION", "TEMPLATE", "CLAIMS"],
        apis.map((a) => [a.id, a.version || "-", a.template, `${a.claims.length}`]),
      ),
    );
    // one line per API that several templates export: bindings of it are refused
    const conflicts = [...new Set(apis.flatMap((a) => (a.conflict ? [a.conflict] : [])))];
    if (conflicts.length > 0) process.stdout.write(`\nCONFLICT:\n${conflicts.map((c) => `  - ${c}`).join("\n")}\n`);
    const shadowed = apis.flatMap((a) => (a.shadowed ? [`${a.template}: ${a.shadowed}`] : []));
    if (shadowed.length > 0) process.stdout.write(`\nNOT FOLLOWED:\n${shadowed.map((c) => `  - ${c}`).join("\n")}\n`);
    for (const api of apis.filter((a) => a.claims.length > 0)) {
      process.stdout.write(
        `\n${api.id}${apis.filter((a) => a.id === api.id).length > 1 ? ` (${api.template})` : ""}:\n${api.claims.map((c) => `  - ${c}`).join("\n")}\n`,
      );
    }
    return 0;
  } finally {
    client.close();
  }
}
