// `klutch-bind unbind --app RESOURCE.GROUP`: the app team's side of undoing `klutch-bind bind URL`.
// The konnector does the releasing (as for an APIServiceBinding deleted with kubectl): this sets the
// deletion policy on the binding, deletes it, waits until the konnector let go of it, then shrinks
// the konnector's rights to the bindings left, or removes the konnector when none is (src/app-bind/uninstall.ts).

import { parseArgs } from "node:util";
import { bindingRef, konnectorFinalizer, pullAnnotations } from "../api/pull-binding.ts";
import { refs } from "../api/resources.ts";
import { konnectorDeploymentName } from "../app-bind/app-objects.ts";
import { cliFieldManager, servedBindings } from "../app-bind/install.ts";
import { appBindings, carryOut, describePlan, planUnbind } from "../app-bind/uninstall.ts";
import type { KubeClient, KubeObject } from "../kube/client.ts";
import { appCluster, appClusterFlags } from "./context.ts";
import type { CommandHelp, FlagDefinitions } from "./help.ts";
import { UsageError } from "./usage.ts";

export const unbindAppFlags = {
  app: {
    type: "string",
    value: "RESOURCE.GROUP",
    description: "the APIServiceBinding to unbind (klutch-bind bind URL named it after the API it binds)",
  },
  ...appClusterFlags("", " (as bind URL's -n)"),
  delete: {
    type: "boolean",
    default: false,
    description: "delete the provider copies on the control plane (the services behind them!); app objects stay",
  },
  orphan: {
    type: "boolean",
    default: false,
    description: "keep the provider copies (the default); they and the app objects are no longer synced",
  },
  timeout: {
    type: "string",
    default: "120",
    value: "SECONDS",
    description: "how long to wait for the konnector to release the binding (and, removing it, to stop)",
  },
  "dry-run": {
    type: "boolean",
    default: false,
    description: "print what unbind would do and change nothing",
  },
} as const satisfies FlagDefinitions;

export const unbindAppHelp: CommandHelp = {
  usage: "unbind --app RESOURCE.GROUP [--delete|--orphan] [flags]",
  description:
    "Undoes klutch-bind bind URL for one API, from the app cluster: sets the deletion policy on the " +
    "APIServiceBinding RESOURCE.GROUP (annotation bind.klutch.dev/deletion-policy), deletes it and waits until " +
    "the konnector has released it: the app objects lose the finalizer bind.klutch.dev/sync and stay; the " +
    "provider copies stay (--orphan, the default) or are deleted (--delete). Then the konnector's rights shrink to " +
    "the bindings left, or, with none left, the konnector goes: its Deployment, ServiceAccount, RBAC, Lease, " +
    "its kubeconfig Secret and its namespace when nothing else is in it. The API's CRD stays (deleting it would " +
    "delete the app objects).",
  flags: unbindAppFlags,
  examples: [
    "klutch-bind unbind --app postgresqlinstances.anynines.com --kubeconfig app.yaml",
    "klutch-bind unbind --app postgresqlinstances.anynines.com --kubeconfig app.yaml --delete --dry-run",
  ],
};

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function runUnbindApp(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, options: unbindAppFlags, allowPositionals: true, strict: true });
  if (positionals.length > 0) {
    throw new UsageError(`unbind --app takes no positional arguments, got "${positionals.join(" ")}"`);
  }
  const name = values.app ?? "";
  if (!/^[a-z0-9-]+\.[a-z0-9.-]+$/.test(name)) {
    throw new UsageError(`unbind: --app must be the APIServiceBinding's name, RESOURCE.GROUP, got "${name}"`);
  }
  if (values.delete && values.orphan) throw new UsageError("unbind: --delete and --orphan: choose one");
  const timeoutSeconds = Number(values.timeout);
  if (!(timeoutSeconds > 0)) {
    throw new UsageError(`unbind: --timeout must be a positive number of seconds, got "${values.timeout}"`);
  }
  const policy = values.delete ? "Delete" : "Orphan";
  const dryRun = values["dry-run"];
  const namespace = values.namespace;
  const say = (line: string) => process.stdout.write(`${line}\n`);
  const app = appCluster(values.kubeconfig);
  try {
    const listed = await appBindings(app);
    const binding = listed.find((b) => b.metadata.name === name);
    if (binding === undefined) {
      const names = listed.map((b) => b.metadata.name);
      throw new Error(
        `the app cluster has no APIServiceBinding ${name}` +
          (names.length > 0 ? ` (it has: ${names.join(", ")})` : " (it has none)"),
      );
    }
    // what follows the release, as the app cluster is now: planned again once it is released, since
    // another bind URL may have added a binding meanwhile (the konnector must then stay)
    const planNow = async (current: readonly KubeObject[]) => {
      const others = current.filter((b) => b.metadata.name !== name);
      const left = (await servedBindings(app)).filter((b) => b.name !== name);
      return { left, plan: await planUnbind(app, namespace, binding, left, others) };
    };
    const { plan: planned } = await planNow(listed);
    const steps = [
      `annotate APIServiceBinding ${name} ${pullAnnotations.deletionPolicy}=${policy}`,
      `delete APIServiceBinding ${name} and wait until the konnector released it (provider copies ${policy === "Delete" ? "deleted" : "kept"}; app objects kept)`,
      ...describePlan(planned),
    ];
    if (dryRun) {
      say(`unbind --app ${name} would (dry run: nothing is changed):`);
      for (const step of steps) say(`  ${step}`);
      return 0;
    }
    if (binding.metadata.deletionTimestamp === undefined) {
      await app.mergePatch(bindingRef, name, undefined, {
        metadata: { annotations: { [pullAnnotations.deletionPolicy]: policy } },
      });
      say(`✓ APIServiceBinding ${name}: deletion policy ${policy}`);
      await app.delete(bindingRef, name);
    } else {
      say(`· APIServiceBinding ${name} is being deleted already`);
    }
    const held = binding.metadata.finalizers?.includes(konnectorFinalizer) === true;
    await released(app, name, namespace, timeoutSeconds, say);
    say(
      held
        ? `✓ APIServiceBinding ${name} released by the konnector and deleted (provider copies ${policy === "Delete" ? "deleted" : "kept"})`
        : `! APIServiceBinding ${name} deleted, but the konnector did not hold it (an older konnector?): its objects were not released`,
    );
    const { left, plan } = await planNow(await appBindings(app));
    await carryOut(app, plan, cliFieldManager, say, timeoutSeconds * 1000);
    if (left.length > 0) say(`✓ the konnector serves ${left.map((b) => b.name).join(", ")}`);
    else {
      say("✓ no binding left: the konnector is removed (the APIs' CRDs and the app objects stay)");
      say(`  namespace ${namespace} stays: delete it yourself once it holds nothing of yours`);
    }
    return 0;
  } finally {
    app.close();
  }
}

/** Waits until the APIServiceBinding is gone, saying now and then what holds it. */
async function released(
  app: KubeClient,
  name: string,
  namespace: string,
  timeoutSeconds: number,
  say: (line: string) => void,
): Promise<void> {
  const started = Date.now();
  let told = 0;
  say(`  … waiting for the konnector to release ${name}`);
  for (;;) {
    const binding: KubeObject | undefined = await app.get(bindingRef, name);
    if (binding === undefined) return;
    const waited = Math.round((Date.now() - started) / 1000);
    if (waited >= timeoutSeconds) {
      const deployment = await app.get(refs.deployments, konnectorDeploymentName, namespace);
      const ready = (deployment?.status as { readyReplicas?: number } | undefined)?.readyReplicas ?? 0;
      throw new Error(
        `the konnector has not released APIServiceBinding ${name} within ${timeoutSeconds} s: is it running? ` +
          (deployment === undefined
            ? `there is no Deployment ${namespace}/${konnectorDeploymentName}`
            : `Deployment ${namespace}/${konnectorDeploymentName} has ${ready} ready replica(s)`) +
          `; its log says why. The binding stays deleting (finalizers: ${(binding.metadata.finalizers ?? []).join(", ")}); ` +
          "run unbind again once the konnector runs",
      );
    }
    if (waited - told >= 10) {
      told = waited;
      say(`  … still waiting after ${waited} s (finalizers: ${(binding.metadata.finalizers ?? []).join(", ")})`);
    }
    await sleep(250);
  }
}
