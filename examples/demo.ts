// `make demo`: the main job on local control planes. Until the function and the sync exist it
// shows the two clusters from `make dev-clusters` working: one API served on the control plane,
// an app namespace on the app cluster, each read back through its own admin kubeconfig.
import { join } from "node:path";
import {
  ApiextensionsV1Api,
  CoreV1Api,
  KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  VersionApi,
} from "@kubernetes/client-node";

const devDir = join(import.meta.dirname, "..", ".dev");
const say = (line: string) => console.log(`[demo] ${line}`);

function connect(name: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(join(devDir, `${name}.kubeconfig`));
  return kc;
}

const control = connect("control");
const app = connect("app");
for (const [name, kc] of [
  ["control", control],
  ["app", app],
] as const) {
  const version = await kc.makeApiClient(VersionApi).getCode();
  say(`${name}: kube-apiserver ${version.gitVersion} at ${kc.getCurrentCluster()?.server}`);
}

const group = "demo.klutch-bind.dev";
const crd = {
  apiVersion: "apiextensions.k8s.io/v1",
  kind: "CustomResourceDefinition",
  metadata: { name: `postgresqlinstances.${group}` },
  spec: {
    group,
    scope: "Namespaced",
    names: { plural: "postgresqlinstances", singular: "postgresqlinstance", kind: "PostgresqlInstance" },
    versions: [
      {
        name: "v1",
        served: true,
        storage: true,
        subresources: { status: {} },
        schema: {
          openAPIV3Schema: {
            type: "object",
            properties: {
              spec: { type: "object", properties: { version: { type: "string" }, replicas: { type: "integer" } } },
              status: { type: "object", "x-kubernetes-preserve-unknown-fields": true },
            },
          },
        },
      },
    ],
  },
};
const controlObjects = KubernetesObjectApi.makeApiClient(control);
const apply = (api: KubernetesObjectApi, obj: Record<string, unknown>) =>
  api.patch(obj, undefined, undefined, "klutch-bind-demo", true, PatchStrategy.ServerSideApply);

await apply(controlObjects, crd);
say(`control: CRD ${crd.metadata.name} applied`);
const extensions = control.makeApiClient(ApiextensionsV1Api);
for (let i = 0; i < 100; i++) {
  const read = await extensions.readCustomResourceDefinition({ name: crd.metadata.name });
  if (read.status?.conditions?.some((c) => c.type === "Established" && c.status === "True")) break;
  await new Promise((r) => setTimeout(r, 100));
}
await apply(controlObjects, { apiVersion: "v1", kind: "Namespace", metadata: { name: "demo" } });
await apply(controlObjects, {
  apiVersion: `${group}/v1`,
  kind: "PostgresqlInstance",
  metadata: { name: "orders-db", namespace: "demo" },
  spec: { version: "16", replicas: 1 },
});
say("control: PostgresqlInstance demo/orders-db applied");

const appObjects = KubernetesObjectApi.makeApiClient(app);
await apply(appObjects, { apiVersion: "v1", kind: "Namespace", metadata: { name: "team-orders" } });
const namespaces = await app.makeApiClient(CoreV1Api).listNamespace();
say(`app: namespaces ${namespaces.items.map((n) => n.metadata?.name).join(", ")}`);
say("next: the composition function exports such an API and the sync sidecar binds it into the app cluster");
say("stop the clusters with: make dev-clusters-down");
