// `make demo`: the whole Klutch flow on the local clusters of `make dev-clusters`, with the real
// Crossplane core of `make dev-crossplane` doing the provider's part. The platform team exports
// PostgresqlInstance from the control plane by label; an app team binds it into the app cluster
// with `klutch-bind bind`, creates an instance there, and gets the status and the credentials that
// Crossplane composed back. Each step is printed as it happens, with the time since the start.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { refs } from "../src/api/resources.ts";
import { KubeClient, type KubeObject, type ResourceRef } from "../src/kube/client.ts";
import { conditionOf, isEstablished } from "../src/kube/conditions.ts";
import { type DevCrossplane, stateDir } from "../test/support/dev-crossplane.ts";
import { devKubeconfig, tool } from "../test/support/tools.ts";

const root = join(import.meta.dirname, "..");
const started = Date.now();
const clock = () => `${((Date.now() - started) / 1000).toFixed(1)}s`.padStart(6);
const step = (n: number, text: string) => console.log(`\n[demo] ${clock()}  ${n}. ${text}`);
const say = (text: string) => console.log(`[demo] ${clock()}     ${text}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 90_000): Promise<T> {
  const begun = Date.now();
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() - begun > timeoutMs) throw new Error(`demo: ${what} did not happen within ${timeoutMs / 1000}s`);
    await sleep(200);
  }
}

/** A program's output, each line indented under the step. */
async function shown(command: string, args: string[], env: Record<string, string> = {}): Promise<void> {
  const child = spawn(command, args, { cwd: root, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  const print = (chunk: Buffer) => {
    for (const line of chunk.toString().trimEnd().split("\n")) console.log(`[demo]            | ${line}`);
  };
  child.stdout.on("data", print);
  child.stderr.on("data", print);
  const [code] = await once(child, "exit");
  if (code !== 0) throw new Error(`demo: ${command} ${args.join(" ")} exited with ${code}`);
}
/** `kubectl ...` against a cluster, its output shown. */
const kubectl = (cluster: string, ...args: string[]) =>
  shown(tool("kubectl"), ["--kubeconfig", devKubeconfig(cluster), ...args]);
/** `klutch-bind ...` as an app team runs it (the built CLI), its output shown. */
const klutchBind = (...args: string[]) => shown(process.execPath, [join(root, "dist/cli/main.js"), ...args]);

const ns = "crossplane-system";
const pg: ResourceRef = { group: "anynines.com", version: "v1", resource: "postgresqlinstances", namespaced: true };
const compositions: ResourceRef = {
  group: "apiextensions.crossplane.io",
  version: "v1",
  resource: "compositions",
  namespaced: false,
};
const status = (o: KubeObject | undefined) => (o?.status ?? {}) as Record<string, unknown>;
const conditionWords = (o: KubeObject | undefined, type: string) => {
  const c = conditionOf(o, type);
  return c === undefined ? `${type}: none` : `${type}=${c.status}${c.reason ? ` (${c.reason})` : ""}`;
};

// --- 1. the platform: Crossplane and our package ---------------------------------------------------
step(1, "the platform: the real Crossplane core and our package (make dev-crossplane)");
await shown(process.execPath, [join(root, "test/support/dev-crossplane.ts"), "up"]);
const platform = JSON.parse(readFileSync(join(stateDir, "status.json"), "utf8")) as DevCrossplane;
const control = KubeClient.fromKubeconfigText(readFileSync(devKubeconfig("control"), "utf8"));
const app = KubeClient.fromKubeconfigText(readFileSync(devKubeconfig("app"), "utf8"));
await kubectl("control", "get", "functions.pkg.crossplane.io");

// --- 2. the sample service: a real XRD and Composition -------------------------------------------
step(2, "the platform team's service: kubectl apply examples/export/xrd.yaml and its Composition");
const xrd = parse(readFileSync(join(root, "examples/export/xrd.yaml"), "utf8")) as KubeObject;
const composition = parse(
  readFileSync(join(root, "test/crossplane/sample-function/composition.yaml"), "utf8"),
) as KubeObject;
await control.apply(compositions, composition, "klutch-bind-demo", true);
say(
  `Composition ${composition.metadata.name}: one step, function-sample-credentials (a Go function) composes a Secret`,
);
await control.apply(refs.xrds, xrd, "klutch-bind-demo", true);
say(`XRD ${xrd.metadata.name}, labelled bind.klutch.dev/export=true, claims in an annotation`);
await until("the XRD established by Crossplane", async () =>
  conditionOf(await control.get(refs.xrds, xrd.metadata.name), "Established")?.status === "True" &&
  isEstablished(await control.get(refs.crds, xrd.metadata.name))
    ? true
    : undefined,
);
say(`Crossplane made CRD ${xrd.metadata.name} from the XRD and serves it (Established=True)`);

// --- 3. export by label ---------------------------------------------------------------------------
step(3, "export by label: the sync makes a ServiceExport, Crossplane composes it through our function");
const serviceExport = await until("the sync's ServiceExport", () =>
  control.get(refs.serviceExports, "postgresqlinstances.anynines.com"),
);
say(
  `the sync made ServiceExport ${serviceExport.metadata.name} with ${((serviceExport.spec as { permissionClaims?: unknown[] }).permissionClaims ?? []).length} claims from the annotation`,
);
const exported = await until("the ServiceExport Ready", async () => {
  const se = await control.get(refs.serviceExports, serviceExport.metadata.name);
  return conditionOf(se, "Ready")?.status === "True" ? se : undefined;
});
say(`Crossplane called function-klutch-bind over mTLS: ${conditionWords(exported, "Exported")}, Ready=True`);
await kubectl("control", "get", "serviceexports.bind.klutch.dev");

// --- 4. the function's template and RBAC -----------------------------------------------------------
step(4, "what the function composed: the APIServiceExportTemplate and RBAC for the sync");
const templateRef = status(exported).template as { name: string; namespace: string } | undefined;
const template = await until("the template", () =>
  control.get(refs.templates, templateRef?.name ?? serviceExport.metadata.name, templateRef?.namespace ?? ns),
);
say(`APIServiceExportTemplate ${template.metadata.namespace}/${template.metadata.name}:`);
for (const line of stringify({ spec: template.spec }).trimEnd().split("\n")) say(`  ${line}`);
const composed = (await control.list(refs.clusterRoles)).items.filter(
  (r) => r.metadata.labels?.["crossplane.io/composite"] === exported.metadata.name,
);
for (const role of composed) {
  const rules = (role.rules as Array<{ resources?: string[]; verbs?: string[] }> | undefined) ?? [];
  say(
    `ClusterRole ${role.metadata.name}: ${rules.map((r) => `${(r.verbs ?? []).join(",")} ${(r.resources ?? []).join(",")}`).join("; ")}`,
  );
}
await kubectl("control", "get", "clusterrolebindings", "-l", `crossplane.io/composite=${exported.metadata.name}`);

// --- 5. bind the app cluster with the CLI -----------------------------------------------------------
step(5, "app team: klutch-bind bind --name app --export postgresqlinstances.anynines.com --accept-claims");
await klutchBind(
  "bind",
  "--name",
  "app",
  "--app-kubeconfig",
  devKubeconfig("app"),
  "--export",
  "postgresqlinstances.anynines.com",
  // the demo accepts every claim; on a terminal, bind asks claim by claim
  "--accept-claims",
  "--kubeconfig",
  devKubeconfig("control"),
  "-n",
  ns,
);
await until("the app cluster serves PostgresqlInstances", async () => (await app.list(pg)) && true);
say("the app cluster now serves postgresqlinstances.anynines.com");

// --- 6. the app team creates an instance ----------------------------------------------------------
step(6, "app team: kubectl apply a PostgresqlInstance in namespace team-orders of the app cluster");
await app.apply(
  refs.namespaces,
  { apiVersion: "v1", kind: "Namespace", metadata: { name: "team-orders" } },
  "app-team",
  true,
);
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
const copy = await until("the provider's copy", async () =>
  (await control.list(pg)).items.find((o) => o.metadata.name === "orders-db"),
);
const pns = copy.metadata.namespace ?? "";
say(`control plane: the sync's copy ${pns}/orders-db, spec ${JSON.stringify(copy.spec)}`);

// --- 7. Crossplane composes --------------------------------------------------------------------------
step(7, "Crossplane composes it through function-sample-credentials: the credentials Secret, Ready");
const secretOnControl = await until("the composed Secret", () =>
  control.get(refs.secrets, "orders-db-credentials", pns),
);
const owner = secretOnControl.metadata.ownerReferences?.[0];
say(
  `Secret ${pns}/orders-db-credentials composed by Crossplane (owner ${owner?.kind} ${owner?.name}, resource "${secretOnControl.metadata.annotations?.["crossplane.io/composition-resource-name"]}")`,
);
const readyCopy = await until("the XR Ready", async () => {
  const o = await control.get(pg, "orders-db", pns);
  return conditionOf(o, "Ready")?.status === "True" ? o : undefined;
});
say(`${pns}/orders-db: ${conditionWords(readyCopy, "Synced")}, ${conditionWords(readyCopy, "Ready")}`);

// --- 8. it arrives in the app cluster --------------------------------------------------------------
step(8, "app cluster: status and credentials arrive");
const arrived = await until("Ready in the app cluster", async () => {
  const o = await app.get(pg, "orders-db", "team-orders");
  return conditionOf(o, "Ready")?.status === "True" ? o : undefined;
});
say(`team-orders/orders-db: ${conditionWords(arrived, "Synced")}, ${conditionWords(arrived, "Ready")}`);
const secret = await until("the credentials in the app cluster", () =>
  app.get(refs.secrets, "orders-db-credentials", "team-orders"),
);
const data = (secret.data ?? {}) as Record<string, string>;
say(
  `team-orders/orders-db-credentials: ${Object.keys(data)
    .sort()
    .map((k) =>
      k === "password"
        ? `${k}=(${Buffer.from(data[k] ?? "", "base64").length} bytes)`
        : `${k}=${Buffer.from(data[k] ?? "", "base64")}`,
    )
    .join(", ")}`,
);
await kubectl("app", "get", "postgresqlinstances", "-n", "team-orders");

// --- 9. delete and clean up -------------------------------------------------------------------------
step(9, "app team deletes the instance: the provider's copy goes, Crossplane removes what it composed");
await app.delete(pg, "orders-db", "team-orders");
const gone = (what: string, probe: () => Promise<KubeObject | undefined>, words: string) =>
  until(what, async () => ((await probe()) ? undefined : true), 120_000).then(() => say(words));
// each printed when it happens
await Promise.all([
  gone(
    "provider copy deleted",
    () => control.get(pg, "orders-db", pns),
    "control plane: the provider's copy deleted (Crossplane let go of its XR)",
  ),
  gone(
    "composed Secret deleted",
    () => control.get(refs.secrets, "orders-db-credentials", pns),
    `control plane: Secret ${pns}/orders-db-credentials gone with its XR (the owner reference Crossplane set)`,
  ),
  gone(
    "app object deleted",
    () => app.get(pg, "orders-db", "team-orders"),
    "app cluster: team-orders/orders-db gone (its finalizer waited for the control plane)",
  ),
  gone(
    "credentials copy deleted",
    () => app.get(refs.secrets, "orders-db-credentials", "team-orders"),
    "app cluster: the credentials copy removed with its original",
  ),
]);

if (process.env.DEMO_SERVE) await serve();
control.close();
app.close();
console.log(`\n[demo] done in ${clock().trim()}. Look around:`);
console.log(
  "[demo]   .dev/bin/kubectl --kubeconfig .dev/control.kubeconfig get xrd,serviceexports,functions,appclusterbindings -A",
);
console.log("[demo]   node dist/cli/main.js status --kubeconfig .dev/control.kubeconfig -n crossplane-system");
console.log(
  `[demo] logs: ${Object.values(platform.functions)
    .map((f) => f.log)
    .join(", ")}, ${platform.sync.log}, ${platform.logs.core}`,
);
console.log("[demo] stop Crossplane with: make dev-crossplane-down; the clusters with: make dev-clusters-down");

/** DEMO_SERVE=1: a user to sign in to the sync's web page as, with a token. */
async function serve(): Promise<void> {
  const user = "demo-user";
  await control.apply(
    refs.serviceAccounts,
    { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: user, namespace: ns } },
    "klutch-bind-demo",
    true,
  );
  await control.apply(
    refs.roleBindings,
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: "demo-user-binder", namespace: ns },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "klutch-bind:binder" },
      subjects: [{ kind: "ServiceAccount", name: user, namespace: ns }],
    } as KubeObject,
    "klutch-bind-demo",
    true,
  );
  const minted = await control.request<{ status: { token: string } }>(
    "POST",
    `/api/v1/namespaces/${ns}/serviceaccounts/${user}/token`,
    { body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenRequest", spec: { expirationSeconds: 8 * 3600 } } },
  );
  console.log(
    `\n[demo] the sync's web page is at ${platform.sync.web}; sign in as ${ns}/${user} with this token (8 h):`,
  );
  console.log(minted.status.token);
  console.log("[demo] to bind another cluster there, paste a self-contained kubeconfig, e.g. .dev/app.kubeconfig");
  console.log("[demo] the page runs with the sync of make dev-crossplane, until make dev-crossplane-down");
}
