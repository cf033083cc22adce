// What the tests of `klutch-bind bind URL` share: running the CLI as a process and reading what it
// prints, and running the konnector as the Deployment bind installed would run it (its arguments,
// its ServiceAccount's own token: the rights bind gave and no more), with its 403s counted.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { pino } from "pino";
import { refs } from "../../src/api/resources.ts";
import { requestToken } from "../../src/app-access/token-renewal.ts";
import { konnectorAccount } from "../../src/app-bind/app-objects.ts";
import { KubeClient } from "../../src/kube/client.ts";
import { readKubeconfigFile } from "../../src/kube/kubeconfig.ts";
import { controlPlaneAddress } from "../../src/provider/provision.ts";
import { type RunningWeb, startWebServer, type WebOptions } from "../../src/web/server.ts";
import { grant, serviceAccount } from "./accounts.ts";
import type { Cluster } from "./cluster.ts";
import { onFileDone } from "./clusters.ts";
import { eventually } from "./eventually.ts";
import { apply, readManifests } from "./manifests.ts";
import { freePort } from "./net.ts";
import { stopProcess } from "./processes.ts";
import { type PullEnv, tokenKubeconfig } from "./pull-env.ts";

const repoRoot = join(import.meta.dirname, "../..");

/** A klutch-bind process: every line it printed (stdout and stderr), and its exit code once it exits. */
export type Run = { child: ChildProcess; out: string[]; exited: Promise<number> };

export function klutchBind(args: string[], env: NodeJS.ProcessEnv = {}): Run {
  const child = spawn(process.execPath, [join(repoRoot, "src/cli/main.ts"), ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...env },
  });
  const out: string[] = [];
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream as NodeJS.ReadableStream }).on("line", (line) => out.push(line));
  }
  const exited = new Promise<number>((resolve) =>
    child.once("exit", (code, signal) => resolve(code ?? (signal ? 137 : 1))),
  );
  onFileDone(() => stopProcess(child));
  return { child, out, exited };
}

/** The first line of the run's output that matches, once it is printed. */
export async function printed(run: Run, what: RegExp, timeoutMs?: number): Promise<string> {
  let found = "";
  await eventually(
    `the CLI prints ${what}`,
    async () => {
      const line = run.out.find((l) => what.test(l));
      assert.ok(line, run.out.join("\n"));
      found = line;
    },
    timeoutMs,
  );
  return found;
}

export type DeployedKonnector = Run & { metricsPort: number; name: string };

/**
 * Runs the konnector of app's namespace as its Deployment would run it: the Deployment's own
 * arguments, as the ServiceAccount bind made (a TokenRequest token), on loopback ports.
 */
export async function startDeployedKonnector(
  appClient: KubeClient,
  app: Cluster,
  namespace: string,
  name = "konnector-0",
  extraArgs: string[] = ["--heartbeat-interval", "5"],
): Promise<DeployedKonnector> {
  const deployment = await appClient.get(refs.deployments, "klutch-bind-konnector", namespace);
  assert.ok(deployment, "bind made the konnector's Deployment");
  const container = (deployment.spec as { template: { spec: { containers: Array<{ args: string[] }> } } }).template.spec
    .containers[0];
  assert.ok(container, "the Deployment has the konnector's container");
  const issued = await requestToken(appClient, konnectorAccount(namespace), 3600);
  const address = controlPlaneAddress(readKubeconfigFile(app.kubeconfigPath));
  const file = join(app.dir, `${name}.kubeconfig`);
  writeFileSync(file, tokenKubeconfig(address.server, address.certificateAuthorityData ?? "", issued.token));
  const metricsPort = await freePort();
  const healthPort = await freePort();
  const args = container.args.map((a) =>
    a.startsWith("--metrics-address=")
      ? `--metrics-address=127.0.0.1:${metricsPort}`
      : a.startsWith("--health-address=")
        ? `--health-address=127.0.0.1:${healthPort}`
        : a,
  );
  const run = klutchBind([...args, "--kubeconfig", file, ...extraArgs], {
    POD_NAMESPACE: namespace,
    POD_NAME: name,
    KUBECONFIG: "",
  });
  return { ...run, metricsPort, name };
}

/** A konnector's requests, all and those answered 403, by cluster. */
export async function konnectorRequests(
  metricsPort: number,
): Promise<{ total: number; forbidden: { app: number; control: number } }> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const count = { total: 0, forbidden: { app: 0, control: 0 } };
  for (const m of text.matchAll(/^klutch_bind_api_request_seconds_count\{([^}]*)\} (\d+)$/gm)) {
    const labels = m[1] ?? "";
    count.total += Number(m[2]);
    if (!labels.includes('code="403"')) continue;
    if (labels.includes('cluster="app"')) count.forbidden.app += Number(m[2]);
    else count.forbidden.control += Number(m[2]);
  }
  return count;
}

/**
 * The web page of env's control plane as it is deployed: its own account with web-rbac.yaml's roles
 * only (provisioning of pull bindings included), and nothing else. more: the page's other options.
 */
export async function startPullPage(
  env: PullEnv,
  more: Partial<Omit<WebOptions, "control">> = {},
): Promise<RunningWeb> {
  await apply(
    env.control,
    readManifests("deploy/control-plane/web-rbac.yaml").filter((o) => o.kind === "ClusterRole"),
  );
  const webAccount = await serviceAccount(env.admin, env.tenantNs, "klutch-bind-web");
  await grant(env.admin, webAccount, "klutch-bind:web");
  await grant(env.admin, webAccount, "klutch-bind:web-pull-bindings");
  const asWeb = KubeClient.fromKubeconfigText(tokenKubeconfig(env.admin.server, await env.caData(), webAccount.token));
  onFileDone(async () => asWeb.close());
  const web = await startWebServer({
    logger: pino({ level: process.env.KLB_TEST_LOG ?? "silent" }),
    address: "127.0.0.1:0",
    defaultNamespace: env.tenantNs,
    externalAddress: { server: env.admin.server, certificateAuthorityData: await env.caData() },
    ...more,
    control: asWeb,
  });
  onFileDone(() => web.stop());
  return web;
}
