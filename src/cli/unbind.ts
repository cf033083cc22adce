import { parseArgs } from "node:util";
import { kindOf, specOf } from "../api/binding-spec.ts";
import { finalizer, labels } from "../api/naming.ts";
import { refs } from "../api/resources.ts";
import { isBindingSecret } from "../bind/binding.ts";
import { explain } from "../bind/explain.ts";
import { findBindings, groupOf } from "../bind/find-bindings.ts";
import { deleteBinding, setDeletionPolicy } from "../bind/unbind.ts";
import { KubeApiError, KubeClient, type KubeObject, type ResourceRef } from "../kube/client.ts";
import { contextFlags, controlPlane } from "./context.ts";
import type { CommandHelp, FlagDefinitions } from "./help.ts";
import { UsageError } from "./usage.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const unbindFlags = {
  ...contextFlags,
  delete: {
    type: "boolean",
    default: false,
    description:
      "delete the provider copies (the services behind them!), the binding's provider namespaces and the app " +
      "cluster's bound objects",
  },
  orphan: {
    type: "boolean",
    default: false,
    description: "keep the provider copies and the app cluster's objects; they are no longer synced",
  },
  timeout: {
    type: "string",
    default: "300",
    value: "SECONDS",
    description: "how long to wait for each step (objects deleted, the sync letting go of the binding)",
  },
  "api-group": {
    type: "string",
    value: "GROUP",
    description:
      "klutch.anynines.com or bind.klutch.dev: which binding to unbind when both kinds have one of that name",
  },
} as const satisfies FlagDefinitions;

export const unbindHelp: CommandHelp = {
  usage: "unbind NAME --delete|--orphan [flags]",
  description:
    "Stops binding an app cluster: deletes the AppClusterBinding NAME and waits until the sync has released " +
    "its objects. One of --delete and --orphan is required. The binding's own kubeconfig Secret (one marked for it " +
    "alone) and the service account bind made in the app cluster go with it. A binding made from the app cluster " +
    "(klutch-bind bind URL) is undone there: klutch-bind unbind --app RESOURCE.GROUP (see klutch-bind help unbind-app).",
  flags: unbindFlags,
  examples: [
    "klutch-bind unbind -n crossplane-system team-orders --orphan",
    "klutch-bind unbind -n crossplane-system team-orders --delete --timeout 600",
  ],
};

/**
 * `klutch-bind unbind NAME --delete | --orphan`: stop binding an app cluster. --delete deletes the
 * provider copies (the services behind them) and the app objects; --orphan leaves both, unsynced.
 */
export async function runUnbind(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, options: unbindFlags, allowPositionals: true, strict: true });
  const [name] = positionals;
  if (!name) throw new UsageError("unbind: name the binding: klutch-bind unbind NAME --delete|--orphan");
  const timeoutSeconds = Number(values.timeout);
  if (!Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0) {
    throw new UsageError(`unbind: --timeout must be a positive number of seconds, got "${values.timeout}"`);
  }
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
    const group = values["api-group"];
    const found = await findBindings(ctx.client, name, ctx.namespace, group).catch((err: unknown) => {
      throw explain(err, `read AppClusterBinding ${name}`, ctx.client.server, ctx.namespace);
    });
    const [binding, other] = found;
    if (binding === undefined) {
      throw new Error(`no AppClusterBinding ${name}${group ? ` of ${group}` : ""} in namespace ${ctx.namespace}`);
    }
    if (other !== undefined) {
      throw new UsageError(
        `unbind: both ${found.map(groupOf).join(" and ")} have an AppClusterBinding ${name}: choose one with --api-group`,
      );
    }
    const ref = kindOf(binding).ref;
    const uid = binding.metadata.uid ?? "";
    const spec = specOf(binding);
    const secretRef = {
      name: spec.kubeconfigSecretRef?.name ?? "",
      namespace: spec.kubeconfigSecretRef?.namespace || ctx.namespace,
      key: spec.kubeconfigSecretRef?.key ?? "kubeconfig",
    };
    // an app team may not read Secrets (klutch-bind:binder): then the app objects are released by the
    // sync but not deleted here
    const secret = secretRef.name
      ? await ctx.client.get(refs.secrets, secretRef.name, secretRef.namespace).catch((err: unknown) => {
          if (err instanceof KubeApiError && err.code === 403) return undefined;
          throw err;
        })
      : undefined;
    if (secret === undefined && values.delete) {
      say(
        `! cannot read Secret ${secretRef.namespace}/${secretRef.name}: the app cluster's objects are released, not deleted`,
      );
    }
    const encoded = (secret?.data as Record<string, string> | undefined)?.[secretRef.key];
    const app = encoded
      ? KubeClient.fromUntrustedKubeconfig(Buffer.from(encoded, "base64").toString("utf8"))
      : undefined;

    // The sync does the releasing (as for a binding deleted with kubectl); we tell it how, and
    // note first what is ours in the app cluster, since releasing takes our label off.
    const policy = values.delete ? "Delete" : "Orphan";
    await setDeletionPolicy(ctx.client, binding, policy);
    const exported: Array<{ id: string; ref: ResourceRef; owned: KubeObject[] }> = [];
    for (const e of spec.exports ?? []) {
      const crd = await ctx.client.get(refs.crds, `${e.resource}.${e.group ?? ""}`);
      if (crd === undefined) continue;
      const crdSpec = crd.spec as { scope: string; versions: Array<{ name: string; storage?: boolean }> };
      const exportRef: ResourceRef = {
        group: e.group ?? "",
        version: crdSpec.versions.find((v) => v.storage)?.name ?? crdSpec.versions[0]?.name ?? "",
        resource: e.resource ?? "",
        namespaced: crdSpec.scope === "Namespaced",
      };
      const owned = app ? await ownedAppObjects(app, exportRef, uid) : [];
      exported.push({ id: `${e.resource}.${e.group ?? ""}`, ref: exportRef, owned });
    }
    // only counted, for --delete (the sync deletes them)
    const namespaces = values.delete
      ? (await ctx.client.list(refs.namespaces, { labelSelector: `${labels.binding}=${uid}` })).items
      : [];

    if (values.delete && app !== undefined) {
      // The app objects first, while the binding's credentials still work (a binding made by
      // klutch-bind bind holds a service account that goes with the binding): the sync deletes each
      // provider copy and lets its app object go once the copy is gone, as for any deletion.
      for (const { id, ref: exportRef, owned } of exported) {
        for (const obj of owned) await ignoreGone(app.delete(exportRef, obj.metadata.name, obj.metadata.namespace));
        const deadline = Date.now() + timeoutSeconds * 1000;
        say(`  waiting for ${owned.length} app cluster object(s) of ${id} and their provider copies to go …`);
        for (;;) {
          const copies = (await ctx.client.list(exportRef, { labelSelector: `${labels.binding}=${uid}` })).items.length;
          const left = await Promise.all(owned.map((o) => app.get(exportRef, o.metadata.name, o.metadata.namespace)));
          const appLeft = left.filter((o) => o !== undefined).length;
          if (copies === 0 && appLeft === 0) break;
          if (Date.now() > deadline) {
            throw new Error(
              `${copies} provider cop${copies === 1 ? "y" : "ies"} and ${appLeft} app object(s) of ${id} still deleting after ${values.timeout} s`,
            );
          }
          await sleep(1000);
        }
        say(`✓ provider copies of ${id} gone`);
        say(`✓ ${owned.length} app cluster object(s) of ${id} deleted`);
      }
    }

    await deleteBinding(ctx.client, binding);
    const waitUntil = Date.now() + timeoutSeconds * 1000;
    while ((await ctx.client.get(ref, name, ctx.namespace)) !== undefined) {
      if (Date.now() > waitUntil) {
        throw new Error(
          `the sync has not let go of AppClusterBinding ${name} within ${values.timeout} s: is klutch-bind sync running? (kubectl describe appclusterbindings.${ref.group} ${name} shows why)`,
        );
      }
      await sleep(250);
    }
    say(
      `✓ AppClusterBinding ${ctx.namespace}/${name} deleted; the sync has released its objects (deletionPolicy ${policy})`,
    );

    for (const { id, ref: exportRef, owned } of exported) {
      if (values.delete && app !== undefined) continue; // done above
      const copies = (await ctx.client.list(exportRef, { labelSelector: `${labels.binding}=${uid}` })).items;
      if (values.delete) {
        say(`  waiting for ${copies.length} provider cop${copies.length === 1 ? "y" : "ies"} of ${id} to go …`);
        const deadline = Date.now() + timeoutSeconds * 1000;
        for (;;) {
          const left = (await ctx.client.list(exportRef, { labelSelector: `${labels.binding}=${uid}` })).items.length;
          if (left === 0) break;
          if (Date.now() > deadline)
            throw new Error(`${left} provider copies of ${id} still deleting after ${values.timeout} s`);
          await sleep(1000);
        }
        say(`✓ provider copies of ${id} gone`);
      } else {
        say(`✓ ${copies.length} provider cop${copies.length === 1 ? "y" : "ies"} of ${id} left in place (orphaned)`);
        say(`✓ ${owned.length} app cluster object(s) of ${id} released`);
      }
    }
    if (values.delete) say(`✓ ${namespaces.length} provider namespace(s) deleted`);
    // the sync deletes the binding's own kubeconfig Secret with the binding (one that serves other
    // bindings too stays); this only says what happened
    if (isBindingSecret(secret)) {
      const gone =
        (await ctx.client.get(refs.secrets, secret.metadata.name, secretRef.namespace).catch(() => secret)) ===
        undefined;
      say(
        `${gone ? "✓" : "!"} Secret ${secretRef.namespace}/${secret.metadata.name} ${gone ? "deleted with the binding" : "kept (its mark names other bindings too, or not this binding exactly)"}`,
      );
    }
    app?.close();
    return 0;
  } finally {
    ctx.client.close();
  }
}

async function ignoreGone(call: Promise<unknown>): Promise<void> {
  try {
    await call;
  } catch (err) {
    if (!(err instanceof KubeApiError) || !err.isNotFound) throw err;
  }
}

/** The app cluster's objects of ref that this binding manages (its label, or our finalizer and no label). */
async function ownedAppObjects(app: KubeClient, ref: ResourceRef, bindingUid: string): Promise<KubeObject[]> {
  const objects = (await app.list(ref).catch(() => ({ items: [] as KubeObject[] }))).items;
  return objects.filter((obj) => {
    const owner = obj.metadata.labels?.[labels.binding];
    return owner === bindingUid || (owner === undefined && obj.metadata.finalizers?.includes(finalizer) === true);
  });
}
