import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { apiVersionOf } from "../api/resources.ts";
import { defaultTokenSeconds, minTokenSeconds } from "../app-access/account.ts";
import { printRbac } from "../bind/app-access.ts";
import { type BindableApi, listVisibleBindable, pickExports } from "../bind/bindable.ts";
import { checkAppCluster, checkBindingName, createBinding, recordedClaims } from "../bind/binding.ts";
import {
  askClaims,
  ClaimSelectionError,
  choicesOf,
  type Decisions,
  decide,
  selectClaims,
  summary,
} from "../bind/claim-choice.ts";
import { explain } from "../bind/explain.ts";
import { conditionOf } from "../kube/conditions.ts";
import { contextFlags, controlPlane } from "./context.ts";
import type { CommandHelp, FlagDefinitions } from "./help.ts";
import { UsageError } from "./usage.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Where bind asks and tells: the process's own streams, or a test's. */
export type BindIo = {
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  stdout: NodeJS.WritableStream;
};

/** --accept-claims without a value (last, or before another flag) means all. */
export function bareAcceptMeansAll(args: string[]): string[] {
  return args.map((arg, i) =>
    arg === "--accept-claims" && (args[i + 1] === undefined || args[i + 1]?.startsWith("-"))
      ? "--accept-claims=all"
      : arg,
  );
}

/**
 * How the claims are decided: by --accept-claims when given, else by asking on a terminal;
 * neither, with claims to decide, is a usage error (nothing is accepted unasked).
 */
export async function decideClaims(
  exports: BindableApi[],
  acceptClaims: string[] | undefined,
  io: BindIo,
): Promise<Decisions> {
  if (acceptClaims !== undefined) {
    try {
      return selectClaims(exports, acceptClaims);
    } catch (err) {
      if (err instanceof ClaimSelectionError) throw new UsageError(`bind: ${err.message}`);
      throw err;
    }
  }
  const choices = choicesOf(exports);
  if (choices.length === 0) return decide(exports, () => false);
  if (io.stdin.isTTY === true) return askClaims(exports, io.stdin, io.stdout);
  throw new UsageError(
    `bind: accept or reject the ${choices.length} permission claim(s) (stdin is not a terminal to ask on):\n` +
      `${choices.map((c) => `  ${c.name} of ${c.api.id}: it ${c.words}\n`).join("")}` +
      "  --accept-claims                        accept them all\n" +
      "  --accept-claims none                   reject them all\n" +
      "  --accept-claims RESOURCE.GROUP/OWNER,...  accept these (e.g. secrets.core/Provider), reject the others",
  );
}

export const bindFlags = {
  ...contextFlags,
  name: { type: "string", value: "NAME", description: "the binding's name (required)" },
  "app-kubeconfig": {
    type: "string",
    value: "FILE",
    description:
      "a kubeconfig for the app cluster, used once to create the binding's own service account there " +
      "(never stored); required unless --print-rbac",
  },
  export: {
    type: "string",
    multiple: true,
    value: "RESOURCE.GROUP",
    description: "an API to bind, as klutch-bind exports lists it (at least one)",
  },
  "accept-claims": {
    type: "string",
    multiple: true,
    value: "all|none|ENTRY,...",
    description:
      "which permission claims to accept, every other one is rejected: all (also the flag alone), none, or " +
      "entries [EXPORT:]RESOURCE[.GROUP][/OWNER] (e.g. secrets.core/Provider); an entry matching no claim is " +
      "refused. Without it, bind asks on a terminal; with claims to decide and no terminal, it refuses (exit 2)",
  },
  timeout: {
    type: "string",
    default: "120",
    value: "SECONDS",
    description: "how long to wait for the binding to be Ready",
  },
  wait: { type: "boolean", default: true, description: "wait until the sync reports the binding Ready" },
  "print-rbac": {
    type: "boolean",
    default: false,
    description:
      "print the app cluster's RBAC for the binding as YAML (for admins who apply it themselves) and write nothing",
  },
  "app-token-seconds": {
    type: "string",
    default: String(defaultTokenSeconds),
    value: "SECONDS",
    description: `the lifetime of the app cluster token, at least ${minTokenSeconds} (the sync renews it before it expires)`,
  },
} as const satisfies FlagDefinitions;

export const bindHelp: CommandHelp = {
  usage: "bind --name NAME --export RESOURCE.GROUP... --app-kubeconfig FILE [flags]",
  description:
    "Binds exported APIs into an app cluster: checks that each is bindable and decides its permission claims, " +
    "creates in the app cluster a service account with only what the sync needs, stores that account's " +
    "kubeconfig as the Secret NAME-kubeconfig on the control plane, writes the AppClusterBinding NAME and " +
    "waits until the sync reports it Ready. Binding again under the same name records the new answers. " +
    "To bind from the app cluster instead (klutch-bind bind URL, a konnector there): klutch-bind help bind-url.",
  flags: bindFlags,
  negatable: true,
  examples: [
    "klutch-bind bind -n crossplane-system --name team-orders --app-kubeconfig team-orders.yaml \\\n" +
      "      --export postgresqlinstances.anynines.com --accept-claims secrets.core/Provider",
    "klutch-bind bind -n crossplane-system --name team-orders --export postgresqlinstances.anynines.com \\\n" +
      "      --accept-claims all --print-rbac > rbac.yaml",
  ],
};

/** `klutch-bind bind`: bind exported APIs into an app cluster, and wait until it is in sync. */
export async function runBind(
  args: string[],
  io: BindIo = { stdin: process.stdin, stdout: process.stdout },
): Promise<number> {
  const { values } = parseArgs({
    args: bareAcceptMeansAll(args),
    options: bindFlags,
    allowPositionals: true,
    // --no-wait
    allowNegative: true,
    strict: true,
  });
  const name = values.name;
  const appKubeconfig = values["app-kubeconfig"];
  const wanted = values.export ?? [];
  if (!name) throw new UsageError("bind: --name is required (the binding's name)");
  try {
    checkBindingName(name);
  } catch (err) {
    throw new UsageError(`bind: ${(err as Error).message}`);
  }
  const printOnly = values["print-rbac"];
  if (!appKubeconfig && !printOnly)
    throw new UsageError(
      "bind: --app-kubeconfig FILE is required (a kubeconfig for the app cluster, used once to create the binding's service account there; never stored)",
    );
  const tokenSeconds = Number(values["app-token-seconds"]);
  if (!Number.isInteger(tokenSeconds) || tokenSeconds < minTokenSeconds) {
    throw new UsageError(
      `bind: --app-token-seconds must be a whole number of seconds, at least ${minTokenSeconds}, got "${values["app-token-seconds"]}"`,
    );
  }
  if (wanted.length === 0)
    throw new UsageError("bind: name at least one --export RESOURCE.GROUP (see klutch-bind exports)");
  const timeoutMs = Number(values.timeout) * 1000;
  if (!(timeoutMs > 0)) throw new UsageError(`bind: --timeout must be a number of seconds, got "${values.timeout}"`);

  const ctx = controlPlane(values);
  // --print-rbac's stdout is the YAML alone (to pipe into kubectl apply -f -)
  const say = (line: string) => (printOnly ? undefined : io.stdout.write(`${line}\n`));
  try {
    // 1. every export must exist
    const bindable = await listVisibleBindable(ctx.client, ctx.namespace).catch((err: unknown) => {
      throw explain(err, "list the bindable APIs", ctx.client.server, ctx.namespace);
    });
    const exports = pickExports(bindable, wanted);
    for (const api of exports) {
      say(`✓ ${api.id} is bindable (template ${api.template})`);
      const claims = choicesOf([api]);
      if (claims.length === 0) for (const claim of api.claims) say(`    it ${claim}`); // (invalid claims: ...)
      for (const claim of claims) say(`    claim ${claim.name}: it ${claim.words}`);
    }

    // each claim accepted or rejected: by --accept-claims, or asked for on a terminal
    const decisions = await decideClaims(
      exports,
      values["accept-claims"],
      printOnly ? { stdin: io.stdin, stdout: process.stderr } : io,
    );
    for (const line of summary(exports, decisions)) say(line);
    if (printOnly) {
      const bound = exports.map((api) => ({
        group: api.group,
        resource: api.resource,
        claims: recordedClaims(api, decisions).filter((c) => c.state === "Accepted"),
      }));
      io.stdout.write(printRbac({ bindingNamespace: ctx.namespace, bindingName: name, exports: bound, tokenSeconds }));
      return 0;
    }

    // 2. the app cluster must answer, with a kubeconfig the sync can use
    let kubeconfig: string;
    try {
      kubeconfig = readFileSync(appKubeconfig ?? "", "utf8");
    } catch (err) {
      throw new Error(`cannot read --app-kubeconfig ${appKubeconfig ?? ""}: ${(err as Error).message}`);
    }
    const app = await checkAppCluster(kubeconfig);
    say(`✓ app cluster ${app.server} answers (${app.version})`);

    // 3. the binding's service account in the app cluster, its kubeconfig as a Secret, the binding
    const { secretName, kept, ref, older, account, expires } = await createBinding(
      ctx.client,
      { name, namespace: ctx.namespace, kubeconfig, exports, decisions, tokenSeconds },
      "klutch-bind-cli",
    );
    say(
      `✓ service account ${account.namespace}/${account.name} in the app cluster, with only what the sync needs (token until ${expires.toISOString()}; the sync renews it)`,
    );
    say(
      kept
        ? `✓ kept the existing Secret ${ctx.namespace}/${secretName} (you may not replace it; unbind first to store a new kubeconfig)`
        : `✓ the account's kubeconfig stored as Secret ${ctx.namespace}/${secretName} (--app-kubeconfig is not stored)`,
    );
    say(
      older
        ? `✓ AppClusterBinding ${ctx.namespace}/${name} (${apiVersionOf(ref)}, made before klutch-bind's kind) updated`
        : `✓ AppClusterBinding ${ctx.namespace}/${name} (${apiVersionOf(ref)}) created`,
    );
    if (!values.wait) return 0;

    // 4. wait for the sync to report it Ready, showing what changes
    const started = Date.now();
    let last = "";
    for (;;) {
      const binding = await ctx.client.get(ref, name, ctx.namespace);
      const connected = conditionOf(binding, "Connected");
      const ready = conditionOf(binding, "Ready");
      const now = `Connected=${connected?.status ?? "?"} Ready=${ready?.status ?? "?"}${ready?.message ? `: ${ready.message}` : ""}`;
      if (now !== last) say(`  … ${now}`);
      last = now;
      if (ready?.status === "True") break;
      if (Date.now() - started > timeoutMs) {
        throw new Error(
          `binding ${name} not Ready after ${values.timeout} s (${now}); is klutch-bind sync running for namespace ${ctx.namespace}?`,
        );
      }
      await sleep(500);
    }
    say(`✓ ${name} is Ready after ${((Date.now() - started) / 1000).toFixed(1)} s`);
    say("");
    say("Next: in the app cluster, create objects of the bound APIs, e.g.");
    for (const api of exports) say(`  kubectl --kubeconfig ${appKubeconfig} explain ${api.id}`);
    say(`and watch this binding with: klutch-bind status ${name} -n ${ctx.namespace}`);
    return 0;
  } finally {
    ctx.client.close();
  }
}
