// `make demo`: the whole Klutch flow on the two local clusters of `make dev-clusters`.
// The platform team exports PostgresqlInstance from the control plane, an app team binds it into
// the app cluster, creates an instance, and gets its status and credentials back.
import { execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { pino } from "pino";
import { parse, parseAllDocuments, stringify } from "yaml";
import { runExportFunction } from "../src/function/export-function.ts";
import { startFunctionServer } from "../src/function/server.ts";
import { jsonToStruct, structToJson } from "../src/function/struct.ts";
import { KubeClient, type KubeObject, type ResourceRef } from "../src/kube/client.ts";
import { isEstablished } from "../src/kube/conditions.ts";
import { startSync } from "../src/sync/manager.ts";
import { providerNamespace } from "../src/sync/naming.ts";
import { refs } from "../src/sync/resources.ts";
import { startWebServer } from "../src/web/server.ts";
import { crdFromXrd, crossplaneCrd, xrdCrdFile } from "../test/support/crossplane-standin.ts";

const root = join(import.meta.dirname, "..");
const dev = join(root, ".dev");
const step = (n: number, text: string) => console.log(`\n[demo] ${n}. ${text}`);
const say = (text: string) => console.log(`[demo]    ${text}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const started = Date.now();
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() - started > timeoutMs) throw new Error(`demo: ${what} did not happen within ${timeoutMs / 1000}s`);
    await sleep(200);
  }
}

const kubeconfigPath = (name: string) => join(dev, `${name}.kubeconfig`);
const webAddress = process.env.DEMO_WEB_ADDRESS ?? "127.0.0.1:8090";
/** `klutch-bind ...` as an app team runs it, its output shown as it comes */
async function runCli(args: string[]): Promise<void> {
  const cli = spawn(process.execPath, [join(root, "src/cli/main.ts"), ...args], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  cli.stdout.on("data", (chunk: Buffer) => {
    for (const line of chunk.toString().trimEnd().split("\n")) console.log(`[demo]    | ${line}`);
  });
  const [code] = await once(cli, "exit");
  if (code !== 0) throw new Error(`demo: klutch-bind ${args[0]} exited with ${code}`);
}
const control = KubeClient.fromKubeconfigText(readFileSync(kubeconfigPath("control"), "utf8"));
const app = KubeClient.fromKubeconfigText(readFileSync(kubeconfigPath("app"), "utf8"));
const ns = "crossplane-system";
const yamlFile = (path: string) =>
  parseAllDocuments(readFileSync(join(root, path), "utf8")).map((d) => d.toJS() as KubeObject);
const refOfKind: Record<string, ResourceRef> = {
  Namespace: refs.namespaces,
  ServiceAccount: refs.serviceAccounts,
  RoleBinding: refs.roleBindings,
  ClusterRole: refs.clusterRoles,
  ClusterRoleBinding: refs.clusterRoleBindings,
  APIServiceExportTemplate: refs.templates,
};
const applyAll = async (client: KubeClient, objects: KubeObject[]) => {
  for (const obj of objects) {
    const ref = refOfKind[obj.kind];
    if (ref === undefined) throw new Error(`demo: no resource known for kind ${obj.kind}`);
    await client.apply(ref, obj, "klutch-bind-demo", true);
  }
};
const established = (name: string) =>
  until(`CRD ${name} established`, async () => {
    return isEstablished(await control.get(refs.crds, name)) ? true : undefined;
  });

/** DEMO_SERVE=1: keep the sync and its web page running, with a user to sign in as, until Ctrl-C. */
async function serve(): Promise<void> {
  const rbac = yamlFile("deploy/control-plane/web-rbac.yaml").filter((o) => o.kind === "ClusterRole");
  for (const role of rbac) await control.apply(refs.clusterRoles, role, "klutch-bind-demo", true);
  const user = "demo-user";
  await applyAll(control, [
    { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: user, namespace: ns } },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: "demo-user-binder", namespace: ns },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "klutch-bind:binder" },
      subjects: [{ kind: "ServiceAccount", name: user, namespace: ns }],
    } as KubeObject,
  ]);
  const minted = await control.request<{ status: { token: string } }>(
    "POST",
    `/api/v1/namespaces/${ns}/serviceaccounts/${user}/token`,
    { body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenRequest", spec: { expirationSeconds: 8 * 3600 } } },
  );
  console.log(`\n[demo] the web page is at ${web.url}; sign in as ${ns}/${user} with this token (8 h):`);
  console.log(minted.status.token);
  console.log("[demo] to bind another cluster there, paste a self-contained kubeconfig, e.g. .dev/app.kubeconfig");
  console.log("[demo] serving until Ctrl-C");
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
}

// --- 1. the control plane ------------------------------------------------------------------------
step(1, "control plane: our CRDs and the sample service");
await applyAll(control, [{ apiVersion: "v1", kind: "Namespace", metadata: { name: ns } }]);
for (const file of ["apiserviceexporttemplate-crd.yaml", "appclusterbinding-crd.yaml"]) {
  const [crd] = yamlFile(`deploy/control-plane/${file}`);
  if (crd) await control.apply(refs.crds, crd, "klutch-bind-demo", true);
  if (crd) await established(crd.metadata.name);
  say(`CRD ${crd?.metadata.name}`);
}
// Crossplane's own XRD API (its CRD, from its Go module); turning each XRD into a CRD is what
// Crossplane's core does, and the demo does that step itself.
const xrdApi = crossplaneCrd(xrdCrdFile);
await control.apply(refs.crds, xrdApi, "klutch-bind-demo", true);
await established(xrdApi.metadata.name);
const [serviceExportXrd] = yamlFile("deploy/control-plane/serviceexport-xrd.yaml");
if (serviceExportXrd === undefined) throw new Error("demo: deploy/control-plane/serviceexport-xrd.yaml is empty");
const serviceExportCrd = crdFromXrd(serviceExportXrd);
await control.apply(refs.crds, serviceExportCrd, "klutch-bind-demo", true);
await established(serviceExportCrd.metadata.name);
say(`the ServiceExport API (CRD ${serviceExportCrd.metadata.name}, what Crossplane makes of our XRD)`);
const xrd = parse(readFileSync(join(root, "examples/export/xrd.yaml"), "utf8")) as KubeObject & {
  spec: {
    group: string;
    scope: string;
    names: { kind: string; plural: string };
    versions: Array<Record<string, unknown>>;
  };
};
const serviceCrd = crdFromXrd(xrd);
await control.apply(refs.crds, serviceCrd, "klutch-bind-demo", true);
await established(serviceCrd.metadata.name);
say(`the sample service: CRD ${serviceCrd.metadata.name} (what Crossplane makes of examples/export/xrd.yaml)`);

// --- 2. the sync sidecar -------------------------------------------------------------------------
step(2, `the sync sidecar starts: auto-export on, web page at http://${webAddress}`);
const sync = await startSync({
  control,
  logger: pino({ level: "warn" }),
  workers: 4,
  namespace: ns,
  resyncMs: 1000,
  autoExport: true,
});
const web = await startWebServer({
  control,
  logger: pino({ level: "warn" }),
  address: webAddress,
  defaultNamespace: ns,
});
say(`web page: ${web.url}`);

// --- 3. export by label --------------------------------------------------------------------------
step(3, "export it by label: kubectl apply examples/export/xrd.yaml (bind.klutch.dev/export=true)");
await control.apply(refs.xrds, xrd, "klutch-bind-demo", true);
const serviceExport = await until("the sync's ServiceExport", () =>
  control.get(refs.serviceExports, xrd.metadata.name),
);
say(
  `the sync made ServiceExport ${serviceExport.metadata.name} with ${((serviceExport.spec as { permissionClaims?: unknown[] }).permissionClaims ?? []).length} claims from the annotation`,
);
// Crossplane's part: run the Composition's function on the ServiceExport and apply what it composes.
const server = await startFunctionServer(runExportFunction, {
  address: "127.0.0.1:9443",
  insecure: true,
  maxRecvMessageBytes: 4 * 1024 * 1024,
  logger: pino({ level: "warn" }),
});
const xrForRender = {
  apiVersion: serviceExport.apiVersion,
  kind: serviceExport.kind,
  metadata: { name: serviceExport.metadata.name, labels: serviceExport.metadata.labels },
  spec: serviceExport.spec,
} as KubeObject;
let composed: KubeObject[];
const crossplane = join(dev, "bin", "crossplane");
try {
  const workDir = mkdtempSync(join(tmpdir(), "klb-demo-"));
  writeFileSync(join(workDir, "xr.yaml"), stringify(xrForRender));
  const { stdout } = await promisify(execFile)(
    crossplane,
    [
      "render",
      join(workDir, "xr.yaml"),
      "composition.yaml",
      "functions.yaml",
      "--required-resources=required-resources.yaml",
    ],
    { cwd: join(root, "examples/export") },
  );
  composed = parseAllDocuments(stdout)
    .map((d) => d.toJS() as KubeObject)
    .filter((o) => o.kind !== "ServiceExport")
    .map(({ metadata: { ownerReferences: _owner, ...metadata }, ...rest }) => ({ ...rest, metadata }) as KubeObject);
  say("crossplane render of that ServiceExport (the real Crossplane CLI)");
} catch (err) {
  // No Crossplane CLI on this machine: send the function the request Crossplane would send.
  say(`crossplane render unavailable (${(err as Error).message.split("\n")[0]}); calling the function directly`);
  const rsp = runExportFunction({
    meta: { tag: "demo" },
    observed: { composite: { resource: jsonToStruct(xrForRender) } },
    required_resources: { xrd: { items: [{ resource: jsonToStruct(xrd) }] } },
  });
  composed = Object.values(rsp.desired.resources ?? {}).map(
    (r) => structToJson(r.resource ?? {}) as unknown as KubeObject,
  );
}
await server.shutdown();
await applyAll(control, composed);
for (const obj of composed)
  say(`applied ${obj.kind} ${obj.metadata.namespace ? `${obj.metadata.namespace}/` : ""}${obj.metadata.name}`);

// --- 4. bind the app cluster with the CLI -----------------------------------------------------------
step(
  4,
  "bind the app cluster: klutch-bind bind --name app --export postgresqlinstances.anynines.com --accept-claims ...",
);
await runCli([
  "bind",
  "--name",
  "app",
  "--app-kubeconfig",
  kubeconfigPath("app"),
  "--export",
  "postgresqlinstances.anynines.com",
  // the demo accepts every claim; on a terminal, bind asks claim by claim
  "--accept-claims",
  "--kubeconfig",
  kubeconfigPath("control"),
  "-n",
  ns,
]);
const binding = await until("binding", () => control.get(refs.bindings, "app", ns));
say(`the app cluster now serves ${serviceCrd.metadata.name}`);

// --- 5. the app team creates an instance ---------------------------------------------------------------
step(5, "app team: kubectl apply a PostgresqlInstance in namespace team-orders of the app cluster");
const pg: ResourceRef = { group: "anynines.com", version: "v1", resource: "postgresqlinstances", namespaced: true };
await applyAll(app, [{ apiVersion: "v1", kind: "Namespace", metadata: { name: "team-orders" } }]);
await app.apply(
  pg,
  {
    apiVersion: "anynines.com/v1",
    kind: "PostgresqlInstance",
    metadata: { name: "orders-db", namespace: "team-orders" },
    spec: { version: "16", replicas: 2 },
  },
  "app-team",
  true,
);
const pns = providerNamespace(binding.metadata.uid ?? "", "team-orders");
const copy = await until("provider copy", () => control.get(pg, "orders-db", pns));
say(`control plane: ${pns}/orders-db with spec ${JSON.stringify(copy.spec)}`);

// --- 6. the provider does its work ---------------------------------------------------------------------
step(6, "provider (Crossplane's part): report status and write the credentials Secret");
await control.updateStatus(pg, { ...copy, status: { endpoint: "orders-db.team-orders.svc:5432" } });
await control.apply(
  refs.secrets,
  {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: "orders-db-credentials", namespace: pns },
    stringData: { username: "orders", password: "s3cr3t" },
  },
  "provider",
  true,
);
say("status.endpoint set; Secret orders-db-credentials written in the provider namespace");

// --- 7. it arrives in the app cluster --------------------------------------------------------------
step(7, "app cluster: status and credentials arrive");
const withStatus = await until("status down", async () => {
  const o = await app.get(pg, "orders-db", "team-orders");
  return (o?.status as { endpoint?: string } | undefined)?.endpoint ? o : undefined;
});
say(`team-orders/orders-db status: ${JSON.stringify(withStatus.status)}`);
const secret = await until("secret down", () => app.get(refs.secrets, "orders-db-credentials", "team-orders"));
say(`team-orders/orders-db-credentials: keys ${Object.keys((secret.data as object) ?? {}).join(", ")}`);

// --- 8. delete and clean up -------------------------------------------------------------------------
step(8, "app team deletes the instance: the provider copy goes first, then the app object");
await app.delete(pg, "orders-db", "team-orders");
await until("provider copy deleted", async () =>
  (await control.get(pg, "orders-db", pns)) === undefined ? true : undefined,
);
say("control plane: provider copy deleted");
await until("app object deleted", async () =>
  (await app.get(pg, "orders-db", "team-orders")) === undefined ? true : undefined,
);
say("app cluster: orders-db gone (its finalizer waited for the control plane)");
await until("credentials copy deleted", async () => {
  await control.delete(refs.secrets, "orders-db-credentials", pns);
  return (await app.get(refs.secrets, "orders-db-credentials", "team-orders")) === undefined ? true : undefined;
});
say("credentials copy removed with its original");

if (process.env.DEMO_SERVE) {
  await serve();
}
await web.stop();
await sync.stop();
control.close();
app.close();
console.log(
  "\n[demo] done. Look around: .dev/bin/kubectl --kubeconfig .dev/control.kubeconfig get appclusterbindings -A",
);
console.log("[demo] stop the clusters with: make dev-clusters-down");
