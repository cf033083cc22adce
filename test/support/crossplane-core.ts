// The real Crossplane core (v2, built from Go modules by `make tools`), run out of cluster against a
// local control plane, with packages installed the way users install them: built with
// `crossplane xpkg build`, pushed to a loopback registry (crane), installed with
// `crossplane xpkg install function`. This process then acts as the External package runtime: it serves each function with a
// server certificate signed by Crossplane's CA and tells Crossplane where (FunctionRevision status).
//
// Crossplane's core binds its metrics and health ports on every interface (it takes only port
// numbers), so it must run in a network namespace of its own: the tests run in one (netns.ts),
// `make dev-crossplane` runs the core alone in one (netns-relay.ts, dev-crossplane.ts).
import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
import { mkdirSync, openSync, readFileSync, realpathSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { refs } from "../../src/api/resources.ts";
import { KubeClient, type KubeObject, type ResourceRef } from "../../src/kube/client.ts";
import { conditionOf, conditionsOf } from "../../src/kube/conditions.ts";
import { kubeTime } from "../../src/kube/time.ts";
import type { Cluster } from "./cluster.ts";
import { eventually } from "./eventually.ts";
import { freePort, waitForPort } from "./net.ts";
import { onlyLoopback } from "./netns.ts";
import { stopProcess } from "./processes.ts";
import { binDir, tool } from "./tools.ts";

export const crossplaneNamespace = "crossplane-system";
export const functions: ResourceRef = {
  group: "pkg.crossplane.io",
  version: "v1",
  resource: "functions",
  namespaced: false,
};
export const functionRevisions: ResourceRef = { ...functions, resource: "functionrevisions" };
const run = promisify(execFile);

function started(command: string, args: string[], env: Record<string, string>, logFile: string): ChildProcess {
  const log = openSync(logFile, "a");
  return spawn(command, args, { env: { ...process.env, ...env }, stdio: ["ignore", log, log] });
}

export type CrossplaneCore = {
  client: KubeClient;
  kubeconfigPath: string;
  dir: string;
  log: string;
  stop: () => Promise<void>;
};

/** What Crossplane's core reads from its environment, for a core running out of cluster. */
export function coreEnv(kubeconfigPath: string): Record<string, string> {
  return {
    KUBECONFIG: kubeconfigPath,
    POD_NAMESPACE: crossplaneNamespace,
    ENABLE_WEBHOOKS: "false",
    TLS_CA_SECRET_NAME: "crossplane-root-ca",
    TLS_CLIENT_SECRET_NAME: "crossplane-tls-client",
  };
}

/**
 * `crossplane core init` (Crossplane's CRDs and certificates on the control plane), then the client
 * certificate it issued written to dir/client-certs, where `core start` reads it. Returns that folder.
 */
export async function initCrossplaneCore(client: KubeClient, kubeconfigPath: string, dir: string): Promise<string> {
  mkdirSync(dir, { recursive: true });
  await client.apply(
    refs.namespaces,
    { apiVersion: "v1", kind: "Namespace", metadata: { name: crossplaneNamespace } },
    "klutch-bind-test",
    true,
  );
  const env = coreEnv(kubeconfigPath);
  // init applies Crossplane's CRDs, then objects of them: retried while the new kinds settle
  await eventually(
    "crossplane core init",
    () =>
      run(tool("crossplane-core"), ["core", "init"], {
        // the real folder: init walks CRDS_PATH without following a link to it, and would apply nothing
        env: { ...process.env, ...env, CRDS_PATH: realpathSync(join(binDir, "crossplane-crds")) },
      }),
    60_000,
  );
  const certs = join(dir, "client-certs");
  mkdirSync(certs, { recursive: true });
  const clientSecret = await client.get(refs.secrets, env.TLS_CLIENT_SECRET_NAME ?? "", crossplaneNamespace);
  for (const key of ["tls.crt", "tls.key", "ca.crt"]) {
    const value = (clientSecret?.data as Record<string, string> | undefined)?.[key];
    if (value === undefined) throw new Error(`crossplane core init left no ${key} in ${env.TLS_CLIENT_SECRET_NAME}`);
    writeFileSync(join(certs, key), Buffer.from(value, "base64"));
  }
  mkdirSync(join(dir, "xpkg-cache"), { recursive: true });
  return certs;
}

export type CoreOptions = { enableOperations: boolean; pollInterval: string; metricsPort: number; healthPort: number };

/** `crossplane core start` with the External package runtime: the command, its arguments, its environment. */
export function coreStartCommand(
  kubeconfigPath: string,
  dir: string,
  certs: string,
  options: CoreOptions,
): { command: string; args: string[]; env: Record<string, string> } {
  return {
    command: tool("crossplane-core"),
    args: [
      "core",
      "start",
      "--debug",
      `--poll-interval=${options.pollInterval}`,
      ...(options.enableOperations ? ["--enable-operations"] : []),
    ],
    env: {
      ...coreEnv(kubeconfigPath),
      PACKAGE_RUNTIME: "External",
      TLS_CLIENT_CERTS_DIR: certs,
      XPKG_CACHE_DIR: join(dir, "xpkg-cache"),
      METRICS_PORT: String(options.metricsPort),
      HEALTH_PROBE_PORT: String(options.healthPort),
    },
  };
}

/** `crossplane core init`, then `crossplane core start` with the External package runtime. */
export async function startCrossplaneCore(
  cluster: Cluster,
  dir: string,
  options: { enableOperations: boolean; pollInterval: string },
): Promise<CrossplaneCore> {
  const problem = onlyLoopback();
  if (problem !== undefined) throw new Error(`Crossplane core needs a network namespace of its own: ${problem}`);
  const client = KubeClient.fromKubeconfigText(readFileSync(cluster.kubeconfigPath, "utf8"));
  const certs = await initCrossplaneCore(client, cluster.kubeconfigPath, dir);
  const log = join(dir, "core.log");
  const health = await freePort();
  const start = coreStartCommand(cluster.kubeconfigPath, dir, certs, {
    ...options,
    metricsPort: await freePort(),
    healthPort: health,
  });
  const child = started(start.command, start.args, start.env, log);
  await eventually(
    "crossplane core ready",
    async () => {
      if (child.exitCode !== null) throw new Error(`crossplane core exited (${child.exitCode}); see ${log}`);
      const rsp = await fetch(`http://127.0.0.1:${health}/readyz`);
      if (!rsp.ok) throw new Error(`readyz ${rsp.status}`);
    },
    60_000,
  );
  return {
    client,
    kubeconfigPath: cluster.kubeconfigPath,
    dir,
    log,
    stop: async () => {
      await stopProcess(child);
      client.close();
    },
  };
}

export type Registry = { host: string; stop: () => Promise<void> };

/** `crane registry serve` on 127.0.0.1:port, an OCI registry in memory. */
export function registryArgs(port: number): string[] {
  return ["registry", "serve", "--address", `127.0.0.1:${port}`];
}

export async function startRegistry(dir: string): Promise<Registry> {
  const port = await freePort();
  const child = started(tool("crane"), registryArgs(port), {}, join(dir, "registry.log"));
  await waitForPort(port, "crane registry");
  return { host: `127.0.0.1:${port}`, stop: () => stopProcess(child) };
}

/** What serves a function: started with a folder holding tls.crt, tls.key and ca.crt. */
export type FunctionRuntime = (certsDir: string, port: number) => Promise<{ stop: () => Promise<void> }>;

export type InstalledFunction = {
  name: string;
  port: number;
  /** stops the function's server, as when its pod is gone */
  stop: () => Promise<void>;
  /** serves it again on the same port */
  restart: () => Promise<void>;
};

/**
 * Installs the package in packageRoot as Function `name` and serves it through `runtime`: builds
 * and pushes the package, installs it with `crossplane xpkg install function`, and once Crossplane made its revision, plays the
 * External runtime (server certificate from Crossplane's CA, the revision's endpoint and TLS secret).
 */
export async function installFunction(
  core: CrossplaneCore,
  registry: Registry,
  name: string,
  packageRoot: string,
  runtime: FunctionRuntime,
): Promise<InstalledFunction> {
  const { client, dir } = core;
  const image = await pushPackage(dir, `${registry.host}/klutch-bind-test`, name, packageRoot);
  await xpkgInstall(core.kubeconfigPath, image, name);
  const revision = await activeRevision(client, name);
  const { certs, tlsSecret } = await runtimeCertificates(client, dir, name);
  const port = await freePort();
  let server = await runtime(certs, port);
  try {
    await waitForPort(port, name);
    await setRuntimeStatus(client, name, revision, port, tlsSecret);
  } catch (err) {
    await server.stop();
    throw err;
  }
  return {
    name,
    port,
    stop: () => server.stop(),
    restart: async () => {
      server = await runtime(certs, port);
      await waitForPort(port, name);
    },
  };
}

/** `crossplane xpkg build` of packageRoot, `crossplane xpkg push` to repository/name:v0.1.0; returns that image. */
export async function pushPackage(dir: string, repository: string, name: string, packageRoot: string): Promise<string> {
  const file = join(dir, `${name}.xpkg`);
  const image = `${repository}/${name}:v0.1.0`;
  await run(tool("crossplane"), ["xpkg", "build", `--package-root=${packageRoot}`, `--package-file=${file}`]);
  await run(tool("crossplane"), ["xpkg", "push", "-f", file, image]);
  return image;
}

/** `crossplane xpkg install function IMAGE NAME`, as users install a function: it creates the Function. */
export async function xpkgInstall(kubeconfigPath: string, image: string, name: string): Promise<void> {
  await run(tool("crossplane"), ["xpkg", "install", "function", image, name], {
    env: { ...process.env, KUBECONFIG: kubeconfigPath },
  });
}

/** The name of the active FunctionRevision of Function `name`, once Crossplane made it. */
export async function activeRevision(client: KubeClient, name: string, timeoutMs = 30_000): Promise<string> {
  let revision: KubeObject | undefined;
  await eventually(
    `FunctionRevision of ${name}`,
    async () => {
      const { items } = await client.list(functionRevisions, { labelSelector: `pkg.crossplane.io/package=${name}` });
      revision = items.find((r) => (r.spec as { desiredState?: string }).desiredState === "Active");
      if (revision === undefined) throw new Error("no active revision yet");
    },
    timeoutMs,
  );
  return revision?.metadata.name ?? "";
}

/**
 * The External runtime's server certificate for Function `name`: signed by Crossplane's CA, in
 * dir/NAME-certs (tls.crt, tls.key, ca.crt) for the server and in Secret NAME-tls-server for Crossplane.
 */
export async function runtimeCertificates(
  client: KubeClient,
  dir: string,
  name: string,
): Promise<{ certs: string; tlsSecret: string }> {
  const certs = serverCertificates(
    dir,
    name,
    await client.get(refs.secrets, "crossplane-root-ca", crossplaneNamespace),
  );
  const tlsSecret = `${name}-tls-server`;
  await client.apply(
    refs.secrets,
    {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: tlsSecret, namespace: crossplaneNamespace },
      data: Object.fromEntries(
        ["tls.crt", "tls.key", "ca.crt"].map((k) => [k, readFileSync(join(certs, k)).toString("base64")]),
      ),
    },
    "klutch-bind-test",
    true,
  );
  return { certs, tlsSecret };
}

/** What the External runtime reports on the revision: where the function listens, its TLS secret. */
export async function setRuntimeStatus(
  client: KubeClient,
  name: string,
  revisionName: string,
  port: number,
  tlsSecret: string,
) {
  const runtimeStatus = { endpoint: `127.0.0.1:${port}`, tlsServerSecretName: tlsSecret };
  await eventually(
    `Function ${name} healthy`,
    async () => {
      // Crossplane's own status writes may race the first patch: set it until it holds
      const revision = await client.get(functionRevisions, revisionName);
      const current = revision?.status as Record<string, unknown> | undefined;
      if (
        current?.endpoint !== runtimeStatus.endpoint ||
        current?.tlsServerSecretName !== tlsSecret ||
        conditionOf(revision, "RuntimeHealthy")?.status !== "True"
      ) {
        const conditions = [
          ...conditionsOf(revision).filter((c) => c.type !== "RuntimeHealthy"),
          { type: "RuntimeHealthy", status: "True", reason: "HealthyPackageRevision", lastTransitionTime: kubeTime() },
        ];
        const status = { ...runtimeStatus, conditions };
        await client.mergePatch(functionRevisions, revisionName, undefined, { status }, "status");
      }
      const fn = await client.get(functions, name);
      if (conditionOf(fn, "Healthy")?.status !== "True") throw new Error(JSON.stringify(fn?.status));
    },
    90_000,
  );
}

/** tls.crt/tls.key for 127.0.0.1 signed by Crossplane's CA, and that CA as ca.crt. */
function serverCertificates(dir: string, name: string, caSecret: KubeObject | undefined): string {
  const data = caSecret?.data as Record<string, string> | undefined;
  if (data?.["tls.crt"] === undefined || data["tls.key"] === undefined) {
    throw new Error("crossplane-root-ca holds no tls.crt and tls.key");
  }
  const certs = join(dir, `${name}-certs`);
  mkdirSync(certs, { recursive: true });
  writeFileSync(join(certs, "ca.crt"), Buffer.from(data["tls.crt"], "base64"));
  writeFileSync(join(certs, "ca.key"), Buffer.from(data["tls.key"], "base64"));
  writeFileSync(join(certs, "ext"), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
  const openssl = (...args: string[]) =>
    execFileSync("openssl", args, { cwd: certs, stdio: ["ignore", "ignore", "pipe"] });
  openssl(
    "req",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-subj",
    `/CN=${name}`,
    "-keyout",
    "tls.key",
    "-out",
    "tls.csr",
  );
  openssl(
    "x509",
    "-req",
    "-in",
    "tls.csr",
    "-CA",
    "ca.crt",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-days",
    "2",
    "-extfile",
    "ext",
    "-out",
    "tls.crt",
  );
  return certs;
}
