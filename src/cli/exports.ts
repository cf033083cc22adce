import { parseArgs } from "node:util";
import { listBindable } from "../bind/bindable.ts";
import { contextFlags, controlPlane } from "./context.ts";
import { table } from "./table.ts";

/** `klutch-bind exports`: what an app cluster can bind, and what each binding will copy. */
export async function runExports(args: string[]): Promise<number> {
  // without --namespace: the templates of every namespace
  const { values } = parseArgs({ args, options: contextFlags, strict: true });
  const { client } = controlPlane(values);
  try {
    const apis = await listBindable(client, values.namespace);
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
    for (const api of apis.filter((a) => a.claims.length > 0)) {
      process.stdout.write(`\n${api.id}:\n${api.claims.map((c) => `  - ${c}`).join("\n")}\n`);
    }
    return 0;
  } finally {
    client.close();
  }
}
