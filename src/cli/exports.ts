import { parseArgs } from "node:util";
import { parseClaims } from "../export/claims.ts";
import { describeClaim } from "../export/describe.ts";
import { InputError } from "../export/errors.ts";
import type { KubeClient, KubeObject } from "../kube/client.ts";
import { refs } from "../sync/resources.ts";
import { contextFlags, controlPlane } from "./context.ts";
import { table } from "./table.ts";

export type BindableApi = {
  id: string;
  group: string;
  resource: string;
  version: string;
  template: string;
  claims: string[];
};

export function bindableApi(template: KubeObject): BindableApi {
  const spec = (template.spec ?? {}) as {
    APIServiceSelector?: { group?: string; resource?: string; version?: string };
    permissionClaims?: unknown;
  };
  const group = spec.APIServiceSelector?.group ?? "";
  const resource = spec.APIServiceSelector?.resource ?? "";
  let claims: string[];
  try {
    claims = parseClaims(spec.permissionClaims, "spec.permissionClaims").map(describeClaim);
  } catch (err) {
    if (!(err instanceof InputError)) throw err;
    claims = [`(invalid claims: ${err.message})`];
  }
  return {
    id: `${resource}.${group}`,
    group,
    resource,
    version: spec.APIServiceSelector?.version ?? "",
    template: `${template.metadata.namespace}/${template.metadata.name}`,
    claims,
  };
}

/** The templates on the control plane, in one namespace or in all. */
export async function listBindable(client: KubeClient, namespace?: string): Promise<BindableApi[]> {
  const { items } = await client.list(refs.templates, namespace ? { namespace } : {});
  return items.map(bindableApi).sort((a, b) => a.id.localeCompare(b.id));
}

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
