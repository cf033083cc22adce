// `klutch-bind bind URL`: an app team binds a control plane's API into its own cluster. The page at
// URL signs the person in and lets them choose the API and accept its claims (in the browser; or
// headless, with --token-file and the choice on the command line); the binding comes back to this
// process only (a loopback callback carrying a one-time code, traded with a PKCE verifier), and
// this process installs the konnector with least rights (src/app-bind/) and waits until it is Ready.
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { stringify } from "yaml";
import { type AppBinding, appObjects, konnectorDeploymentName } from "../app-bind/app-objects.ts";
import { type BindingAnswer, decodeBindingResponse } from "../app-bind/binding-response.ts";
import { startCallback } from "../app-bind/callback.ts";
import { applyAll, bindingCrd, clusterId, servedBindings, waitReady } from "../app-bind/install.ts";
import { bindHeadless, discover, type PageAccess, type Provider, tradeCode } from "../app-bind/provider-page.ts";
import { buildInfo } from "../version.ts";
import { bareAcceptMeansAll } from "./bind.ts";
import { appCluster, appClusterFlags } from "./context.ts";
import type { CommandHelp, FlagDefinitions } from "./help.ts";
import { UsageError } from "./usage.ts";

export const bindUrlFlags = {
  ...appClusterFlags(" (the person running bind needs to install the konnector there)", ", its Secrets and its Lease"),
  "konnector-image": {
    type: "string",
    value: "IMAGE",
    description: "the konnector's image (klutch-bind's own: it runs `klutch-bind konnector`)",
    defaultText: `xpkg.crossplane.io/klutch-bind/function-klutch-bind:v${buildInfo().version}`,
  },
  "ca-file": {
    type: "string",
    value: "FILE",
    description: "PEM of the CA that signed the page's certificate, when it is not a public one",
  },
  "dry-run": {
    type: "boolean",
    default: false,
    description:
      "bind nothing: choose as usual, then print every object bind would create in the app cluster and create " +
      "nothing, there or on the control plane (the kubeconfig Secret shows a placeholder)",
  },
  output: {
    type: "string",
    short: "o",
    value: "yaml|json",
    default: "yaml",
    description: "the format of --dry-run's objects",
  },
  "no-browser": {
    type: "boolean",
    default: false,
    description: "only print the URL to open (on another machine, say); by default the browser is opened too",
  },
  "token-file": {
    type: "string",
    value: "FILE",
    description:
      "headless (CI): bind with the bearer token in FILE (the person's control-plane token) instead of a browser; " +
      "needs --api, --from-namespace and, for an API with claims, --accept-claims",
    env: "KLUTCH_BIND_TOKEN_FILE",
  },
  api: { type: "string", value: "RESOURCE.GROUP", description: "headless: the API to bind" },
  "from-namespace": {
    type: "string",
    value: "NAMESPACE",
    description: "headless: the control-plane namespace the person binds from (where the page's form would ask)",
  },
  "accept-claims": {
    type: "string",
    multiple: true,
    value: "all|none|ENTRY,...",
    description: "headless: the claims to accept, as klutch-bind bind takes them (e.g. secrets.core/Provider)",
  },
  "login-timeout": {
    type: "string",
    default: "600",
    value: "SECONDS",
    description: "how long to wait for the person to sign in and choose in the browser",
  },
  timeout: {
    type: "string",
    default: "300",
    value: "SECONDS",
    description: "how long to wait for the konnector to report the binding Ready",
  },
  wait: { type: "boolean", default: true, description: "wait until the binding is Ready" },
} as const satisfies FlagDefinitions;

export const bindUrlHelp: CommandHelp = {
  usage: "bind URL [flags]",
  description:
    "Binds an API of the control plane whose web page is at URL into the app cluster of --kubeconfig, from the " +
    "app side: the app cluster needs no address the control plane can reach. Opens the page in the browser; " +
    "the person signs in, picks the API and accepts its claims one by one; the page answers this command only " +
    "(a loopback callback with a one-time code, traded with a PKCE verifier). Then installs into the app " +
    "cluster: the konnector's namespace, the control plane's kubeconfig as a Secret, the konnector's service " +
    "account with only the rights its bindings need, its Deployment and the APIServiceBinding, and waits until " +
    "the binding is Ready. Binding another API of the same control plane adds to the same konnector.",
  flags: bindUrlFlags,
  negatable: true,
  examples: [
    "klutch-bind bind https://bind.example.com/export/klutch --kubeconfig app.yaml",
    "klutch-bind bind https://bind.example.com/export/klutch --kubeconfig app.yaml --dry-run -o yaml",
    "klutch-bind bind https://bind.example.com/export/klutch --kubeconfig app.yaml --token-file token \\\n" +
      "      --api postgresqlinstances.anynines.com --from-namespace team-a --accept-claims secrets.core/Provider",
  ],
};

const seconds = (flag: string, value: string): number => {
  const n = Number(value);
  if (!(n > 0)) throw new UsageError(`bind: --${flag} must be a number of seconds, got "${value}"`);
  return n * 1000;
};

function openBrowser(url: string): void {
  const [command, ...args] =
    process.platform === "darwin"
      ? ["open", url]
      : process.platform === "win32"
        ? ["cmd", "/c", "start", "", url]
        : ["xdg-open", url];
  try {
    const child = spawn(command ?? "xdg-open", args, { stdio: "ignore", detached: true });
    child.on("error", () => undefined);
    child.unref();
  } catch {
    // no browser to open: the URL is printed
  }
}

const base62 = (bytes: number) => randomBytes(bytes).toString("base64url").replace(/[-_]/g, "").slice(0, 32);

/** The person signs in and chooses in the browser; the answer comes back to this process only. */
async function bindInBrowser(
  provider: Provider,
  id: string,
  access: PageAccess,
  options: { dryRun: boolean; openBrowser: boolean; timeoutMs: number },
  tell: (line: string) => void,
): Promise<unknown> {
  const session = base62(32);
  const verifier = randomBytes(32).toString("base64url");
  const callback = await startCallback(session, options.timeoutMs);
  try {
    const authorize = new URL(provider.authorize);
    authorize.searchParams.set("p", String(callback.port));
    authorize.searchParams.set("s", session);
    authorize.searchParams.set("c", id);
    authorize.searchParams.set("u", callback.url);
    authorize.searchParams.set("code_challenge", createHash("sha256").update(verifier).digest("base64url"));
    authorize.searchParams.set("code_challenge_method", "S256");
    if (options.dryRun) authorize.searchParams.set("dry_run", "true");
    tell(`Sign in and choose what to bind, in your browser:\n\n    ${authorize.href}\n`);
    if (options.openBrowser) openBrowser(authorize.href);
    const code = await callback.code;
    tell("✓ the page answered; fetching the binding");
    return { response: await tradeCode(provider, code, verifier, access), session };
  } finally {
    callback.close();
  }
}

export async function runBindUrl(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: bareAcceptMeansAll(args),
    options: bindUrlFlags,
    allowPositionals: true,
    allowNegative: true,
    strict: true,
  });
  const [urlText, ...extra] = positionals;
  if (urlText === undefined || extra.length > 0)
    throw new UsageError("bind: give one URL, the control plane's page (bind URL)");
  let url: URL;
  try {
    url = new URL(urlText);
  } catch {
    throw new UsageError(`bind: ${urlText} is not a URL`);
  }
  if (values.output !== "yaml" && values.output !== "json")
    throw new UsageError(`bind: -o must be yaml or json, got "${values.output}"`);
  const loginTimeoutMs = seconds("login-timeout", values["login-timeout"]);
  const readyTimeoutMs = seconds("timeout", values.timeout);
  const tokenFile = values["token-file"] ?? process.env.KLUTCH_BIND_TOKEN_FILE;
  if (tokenFile !== undefined) {
    if (!values.api || !values["from-namespace"]) {
      throw new UsageError("bind: --token-file (headless) needs --api RESOURCE.GROUP and --from-namespace NAMESPACE");
    }
  } else if (values.api || values["from-namespace"] || values["accept-claims"]) {
    throw new UsageError(
      "bind: --api, --from-namespace and --accept-claims choose headless, with --token-file; in the browser you choose on the page",
    );
  }
  const dryRun = values["dry-run"];
  // with --dry-run, stdout is the objects alone
  const tell = (line: string) => (dryRun ? process.stderr : process.stdout).write(`${line}\n`);
  const access: PageAccess = values["ca-file"] ? { ca: readFileSync(values["ca-file"]) } : {};
  const namespace = values.namespace;
  const image =
    values["konnector-image"] ?? `xpkg.crossplane.io/klutch-bind/function-klutch-bind:v${buildInfo().version}`;

  const app = appCluster(values.kubeconfig);
  try {
    const provider = await discover(url, access);
    tell(`✓ ${url.href} is a binding provider`);
    const id = await clusterId(app);
    const served = await servedBindings(app);
    let answer: BindingAnswer;
    if (tokenFile !== undefined) {
      const token = readFileSync(tokenFile, "utf8").trim();
      if (token === "") throw new UsageError(`bind: --token-file ${tokenFile} is empty`);
      const response = await bindHeadless(
        provider,
        token,
        {
          clusterId: id,
          namespace: values["from-namespace"] ?? "",
          api: values.api ?? "",
          acceptClaims: values["accept-claims"] ?? [],
          dryRun,
        },
        access,
      );
      answer = decodeBindingResponse(response, "headless", dryRun);
    } else {
      const got = (await bindInBrowser(
        provider,
        id,
        access,
        { dryRun, openBrowser: !values["no-browser"], timeoutMs: loginTimeoutMs },
        tell,
      )) as { response: unknown; session: string };
      answer = decodeBindingResponse(got.response, got.session, dryRun);
    }
    const name = `${answer.api.resource}.${answer.api.group}`;
    tell(
      `✓ ${dryRun ? "would bind" : "bound"} ${name} as ${answer.identity || "you"}` +
        `${answer.api.claims.length ? `, accepting ${answer.api.claims.map((c) => `${c.resource}${c.group ? `.${c.group}` : ""}`).join(", ")}` : ", no claims accepted"}` +
        `${answer.kubeconfig ? ` (cluster namespace ${answer.kubeconfig.clusterNamespace} on ${answer.kubeconfig.server})` : ""}`,
    );
    const binding: AppBinding = {
      name,
      group: answer.api.group,
      resource: answer.api.resource,
      claims: answer.api.claims,
    };
    const objects = appObjects(
      {
        namespace,
        image,
        binding,
        served: [...served.filter((b) => b.name !== name), binding],
        ...(answer.kubeconfig ? { kubeconfig: answer.kubeconfig } : {}),
      },
      bindingCrd(),
    );
    if (dryRun) {
      process.stdout.write(
        values.output === "json"
          ? `${JSON.stringify({ apiVersion: "v1", kind: "List", items: objects }, null, 2)}\n`
          : objects.map((o) => stringify(o)).join("---\n"),
      );
      tell(`(dry run: nothing was created in the app cluster nor on the control plane)`);
      return 0;
    }
    await applyAll(app, objects, tell);
    if (!values.wait) return 0;
    tell(`waiting for the konnector (Deployment ${namespace}/${konnectorDeploymentName}) to report ${name} Ready`);
    const tookMs = await waitReady(app, name, readyTimeoutMs, tell);
    tell(`✓ ${name} is Ready after ${(tookMs / 1000).toFixed(1)} s`);
    tell("");
    tell(
      `Next: create ${answer.api.resource} in any namespace of the app cluster; status and accepted claims come back.`,
    );
    return 0;
  } finally {
    app.close();
  }
}
