import { parseArgs } from "node:util";
import { isBindingSecret } from "../bind/binding.ts";
import { explain } from "../bind/explain.ts";
import { KubeClient, type KubeObject, type ResourceRef } from "../kube/client.ts";
import { finalizer, labels } from "../sync/naming.ts";
import { refs } from "../sync/resources.ts";
import { contextFlags, controlPlane } from "./context.ts";
import { UsageError } from "./usage.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * `klutch-bind unbind NAME --delete | --orphan`: stop binding an app cluster. --delete deletes the
 * provider copies (the services behind them) and the app objects; --orphan leaves both, unsynced.
 */
export async function runUnbind(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      ...contextFlags,
      delete: { type: "boolean", default: false },
      orphan: { type: "boolean", default: false },
      timeout: { type: "string", default: "300" },
    },
    allowPositionals: true,
    strict: true,
  });
  const [name] = positionals;
  if (!name) throw new UsageError("unbind: name the binding: klutch-bind unbind NAME --delete|--orphan");
  if (values.delete === values.orphan) {
    throw new UsageError(
      "unbind: choose what happens to the bound objects:\n" +
        "  --delete  delete the provider copies (the services!) and the app cluster's objects\n" +
        "  --orphan  keep both; they are no longer synced",
    );
  }
  const ctx = controlPlane(values);
  const say = (line: string) => process.stdout.write(`${line}\n`);
  try {
    const binding = await ctx.client.get(refs.bindings, name, ctx.namespace).catch((err: unknown) => {
      throw explain(err, `read AppClusterBinding ${name}`, ctx.client.server, ctx.namespace);
    });
    if (binding === undefined) throw new Error(`no AppClusterBinding ${name} in namespace ${ctx.namespace}`);
    const uid = binding.metadata.uid ?? "";
    const spec = binding.spec as {
      kubeconfigSecretRef: { name: string; key?: string };
      exports?: Array<{ group: string; resource: string }>;
    };
    const secret = await ctx.client.get(refs.secrets, spec.kubeconfigSecretRef.name, ctx.namespace);
    const encoded = (secret?.data as Record<string, string> | undefined)?.[
      spec.kubeconfigSecretRef.key ?? "kubeconfig"
    ];
    const app = encoded
      ? KubeClient.fromUntrustedKubeconfig(Buffer.from(encoded, "base64").toString("utf8"))
      : undefined;

    // the sync lets go first, so nothing recreates what we remove
    await ctx.client.delete(refs.bindings, name, ctx.namespace);
    const waitUntil = Date.now() + 60_000;
    while ((await ctx.client.get(refs.bindings, name, ctx.namespace)) !== undefined) {
      if (Date.now() > waitUntil) {
        throw new Error(
          `the sync has not let go of AppClusterBinding ${name} within 60 s: is klutch-bind sync running?`,
        );
      }
      await sleep(250);
    }
    say(`✓ AppClusterBinding ${ctx.namespace}/${name} deleted; the sync has stopped serving it`);

    for (const e of spec.exports ?? []) {
      const crd = await ctx.client.get(refs.crds, `${e.resource}.${e.group}`);
      if (crd === undefined) continue;
      const crdSpec = crd.spec as { scope: string; versions: Array<{ name: string; storage?: boolean }> };
      const ref: ResourceRef = {
        group: e.group,
        version: crdSpec.versions.find((v) => v.storage)?.name ?? crdSpec.versions[0]?.name ?? "",
        resource: e.resource,
        namespaced: crdSpec.scope === "Namespaced",
      };
      const copies = (await ctx.client.list(ref, { labelSelector: `${labels.binding}=${uid}` })).items;
      if (values.delete) {
        for (const copy of copies) await ctx.client.delete(ref, copy.metadata.name, copy.metadata.namespace);
        say(
          `  deleting ${copies.length} provider cop${copies.length === 1 ? "y" : "ies"} of ${e.resource}.${e.group} …`,
        );
        const deadline = Date.now() + Number(values.timeout) * 1000;
        for (;;) {
          const left = (await ctx.client.list(ref, { labelSelector: `${labels.binding}=${uid}` })).items.length;
          if (left === 0) break;
          if (Date.now() > deadline)
            throw new Error(
              `${left} provider copies of ${e.resource}.${e.group} still deleting after ${values.timeout} s`,
            );
          await sleep(1000);
        }
        say(`✓ provider copies of ${e.resource}.${e.group} gone`);
      } else {
        say(
          `✓ ${copies.length} provider cop${copies.length === 1 ? "y" : "ies"} of ${e.resource}.${e.group} left in place (orphaned)`,
        );
      }
      if (app !== undefined) await releaseAppObjects(app, ref, values.delete, say);
    }
    if (values.delete) {
      const namespaces = (await ctx.client.list(refs.namespaces, { labelSelector: `${labels.binding}=${uid}` })).items;
      for (const ns of namespaces) await ctx.client.delete(refs.namespaces, ns.metadata.name);
      say(`✓ ${namespaces.length} provider namespace(s) deleted`);
    }
    if (isBindingSecret(secret)) {
      await ctx.client.delete(refs.secrets, secret.metadata.name, ctx.namespace);
      say(`✓ Secret ${ctx.namespace}/${secret.metadata.name} deleted`);
    }
    app?.close();
    return 0;
  } finally {
    ctx.client.close();
  }
}

/** Takes the sync's finalizer off the app cluster's objects, and deletes them with --delete. */
async function releaseAppObjects(
  app: KubeClient,
  ref: ResourceRef,
  remove: boolean,
  say: (line: string) => void,
): Promise<void> {
  const objects = (await app.list(ref).catch(() => ({ items: [] as KubeObject[] }))).items;
  for (const obj of objects) {
    if (obj.metadata.finalizers?.includes(finalizer)) {
      await app.update(ref, {
        ...obj,
        metadata: { ...obj.metadata, finalizers: obj.metadata.finalizers.filter((f) => f !== finalizer) },
      });
    }
    if (remove) await app.delete(ref, obj.metadata.name, obj.metadata.namespace);
  }
  say(`✓ ${objects.length} app cluster object(s) of ${ref.resource}.${ref.group} ${remove ? "deleted" : "released"}`);
}
