// `make demo`: the whole Klutch flow on the two local clusters of `make dev-clusters`.
// The platform team exports PostgresqlInstance from the control plane, an app team binds it into
// the app cluster, creates an instance, and gets its status and credentials back.
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { KubeConfig } from "@kubernetes/client-node";
import { pino } from "pino";
import { parse, parseAllDocuments } from "yaml";
import { runExportFunction } from "../src/function/export-function.ts";
import { startFunctionServer } from "../src/function/server.ts";
import { jsonToStruct, structToJson } from "../src/function/struct.ts";
import { KubeClient, type KubeObject, type ResourceRef } from "../src/kube/client.ts";
import { startSync } from "../src/sync/manager.ts";
import { providerNamespace } from "../src/sync/naming.ts";
import { refs } from "../src/sync/resources.ts";
import { crdFromXrd } from "../test/support/crossplane-standin.ts";

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
const control = KubeClient.fromKubeconfigText(readFileSync(kubeconfigPath("control"), "utf8"));
const app = KubeClient.fromKubeconfigText(readFileSync(kubeconfigPath("app"), "utf8"));
const ns = "crossplane-system";
const yamlFile = (path: string) =>
  parseAllDocuments(readFileSync(join(root, path), "utf8")).map((d) => d.toJS() as KubeObject);
const applyAll = async (client: KubeClient, objects: KubeObject[]) => {
  for (const obj of objects) {
    const [group, version] = obj.apiVersion.includes("/") ? obj.apiVersion.split("/") : ["", obj.apiVersion];
    const plural = `${obj.kind.toLowerCase()}${obj.kind.endsWith("s") ? "es" : "s"}`;
    const ref: ResourceRef = {
      group: group ?? "",
      version: version ?? "",
      resource: plural,
      namespaced: obj.metadata.namespace !== undefined,
    };
    await client.apply(ref, obj, "klutch-bind-demo", true);
  }
};
const established = (name: string) =>
  until(`CRD ${name} established`, async () => {
    const crd = await control.get(refs.crds, name);
    const conditions = (crd?.status as { conditions?: Array<{ type: string; status: string }> } | undefined)
      ?.conditions;
    return conditions?.some((c) => c.type === "Established" && c.status === "True") ? true : undefined;
  });

// --- 1. the control plane ------------------------------------------------------------------------
step(1, "control plane: our CRDs and the sample service");
await applyAll(control, [{ apiVersion: "v1", kind: "Namespace", metadata: { name: ns } }]);
for (const file of ["apiserviceexporttemplate-crd.yaml", "appclusterbinding-crd.yaml"]) {
  const [crd] = yamlFile(`deploy/control-plane/${file}`);
  if (crd) await control.apply(refs.crds, crd, "klutch-bind-demo", true);
  if (crd) await established(crd.metadata.name);
  say(`CRD ${crd?.metadata.name}`);
}
// Crossplane turns the XRD into a CRD; the demo does that step itself (see README: Crossplane core).
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

// --- 2. export it through the function -----------------------------------------------------------
step(2, "export it: the composition function renders template and RBAC");
const server = await startFunctionServer(runExportFunction, {
  address: "127.0.0.1:9443",
  insecure: true,
  maxRecvMessageBytes: 4 * 1024 * 1024,
  logger: pino({ level: "warn" }),
});
let composed: KubeObject[];
const crossplane = join(dev, "bin", "crossplane");
try {
  const { stdout } = await promisify(execFile)(
    crossplane,
    ["render", "xr.yaml", "composition.yaml", "functions.yaml", "--required-resources=required-resources.yaml"],
    { cwd: join(root, "examples/export") },
  );
  composed = parseAllDocuments(stdout)
    .map((d) => d.toJS() as KubeObject)
    .filter((o) => o.kind !== "ServiceExport")
    .map(({ metadata: { ownerReferences: _owner, ...metadata }, ...rest }) => ({ ...rest, metadata }) as KubeObject);
  say("crossplane render examples/export/xr.yaml ... (the real Crossplane CLI)");
} catch (err) {
  // No Crossplane CLI on this machine: send the function the request Crossplane would send.
  say(`crossplane render unavailable (${(err as Error).message.split("\n")[0]}); calling the function directly`);
  const [xr] = yamlFile("examples/export/xr.yaml");
  const rsp = runExportFunction({
    meta: { tag: "demo" },
    observed: { composite: { resource: jsonToStruct(xr as KubeObject) } },
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

// --- 3. bind the app cluster -----------------------------------------------------------------------
step(3, "bind the app cluster: its kubeconfig as a Secret, an AppClusterBinding, the sync running");
await control.apply(
  refs.secrets,
  {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: "app-kubeconfig", namespace: ns },
    stringData: { kubeconfig: readFileSync(kubeconfigPath("app"), "utf8") },
  },
  "klutch-bind-demo",
  true,
);
const binding = await control.apply(
  refs.bindings,
  {
    apiVersion: "bind.klutch.dev/v1alpha1",
    kind: "AppClusterBinding",
    metadata: { name: "app", namespace: ns },
    spec: {
      kubeconfigSecretRef: { name: "app-kubeconfig" },
      exports: [{ group: "anynines.com", resource: "postgresqlinstances" }],
    },
  },
  "klutch-bind-demo",
  true,
);
const controlKc = new KubeConfig();
controlKc.loadFromFile(kubeconfigPath("control"));
const sync = await startSync({ control, logger: pino({ level: "warn" }), workers: 4, namespace: ns, resyncMs: 1000 });
const ready = await until("binding Ready", async () => {
  const b = await control.get(refs.bindings, "app", ns);
  const conditions = (
    b?.status as { conditions?: Array<{ type: string; status: string; message?: string }> } | undefined
  )?.conditions;
  return conditions?.find((c) => c.type === "Ready" && c.status === "True");
});
say(`AppClusterBinding ${ns}/app is Ready: ${ready.message}`);
say(`the app cluster now serves ${serviceCrd.metadata.name}`);

// --- 4. the app team creates an instance ---------------------------------------------------------------
step(4, "app team: kubectl apply a PostgresqlInstance in namespace team-orders of the app cluster");
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

// --- 5. the provider does its work ---------------------------------------------------------------------
step(5, "provider (Crossplane's part): report status and write the credentials Secret");
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

// --- 6. it arrives in the app cluster --------------------------------------------------------------
step(6, "app cluster: status and credentials arrive");
const withStatus = await until("status down", async () => {
  const o = await app.get(pg, "orders-db", "team-orders");
  return (o?.status as { endpoint?: string } | undefined)?.endpoint ? o : undefined;
});
say(`team-orders/orders-db status: ${JSON.stringify(withStatus.status)}`);
const secret = await until("secret down", () => app.get(refs.secrets, "orders-db-credentials", "team-orders"));
say(`team-orders/orders-db-credentials: keys ${Object.keys((secret.data as object) ?? {}).join(", ")}`);

// --- 7. delete and clean up -------------------------------------------------------------------------
step(7, "app team deletes the instance: the provider copy goes first, then the app object");
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

await sync.stop();
control.close();
app.close();
console.log(
  "\n[demo] done. Look around: .dev/bin/kubectl --kubeconfig .dev/control.kubeconfig get appclusterbindings -A",
);
console.log("[demo] stop the clusters with: make dev-clusters-down");
