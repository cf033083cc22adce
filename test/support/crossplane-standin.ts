// What Crossplane puts on a control plane, without running its core: its own CRDs, and the CRD it
// would generate from an XRD.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import type { KubeObject } from "../../src/kube/client.ts";
import { binDir } from "./tools.ts";

type XrdSpec = {
  group: string;
  scope?: string;
  names: { kind: string; plural: string };
  versions: Array<{ name: string; served?: boolean; referenceable?: boolean; schema?: unknown }>;
};

/** The CRD Crossplane generates for an XRD's composite resources: spec and status, status subresource. */
export function crdFromXrd(xrd: KubeObject): KubeObject {
  const spec = xrd.spec as XrdSpec;
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: xrd.metadata.name },
    spec: {
      group: spec.group,
      scope: spec.scope === "Cluster" || spec.scope === "LegacyCluster" ? "Cluster" : "Namespaced",
      names: { ...spec.names, singular: spec.names.kind.toLowerCase(), listKind: `${spec.names.kind}List` },
      versions: spec.versions.map((v) => ({
        name: v.name,
        served: v.served ?? true,
        storage: v.referenceable ?? false,
        schema: v.schema,
        subresources: { status: {} },
      })),
    },
  };
}

/**
 * One of Crossplane's own CRDs (its module's cluster/crds, which `make tools` links next to the CLI),
 * e.g. "apiextensions.crossplane.io_compositeresourcedefinitions".
 */
export function crossplaneCrd(file: string): KubeObject {
  const path = join(binDir, "crossplane-crds", `${file}.yaml`);
  if (!existsSync(path)) {
    throw new Error(`${path} is missing: run "make tools" (it takes Crossplane's CRDs from its Go module)`);
  }
  return parse(readFileSync(path, "utf8")) as KubeObject;
}

export const xrdCrdFile = "apiextensions.crossplane.io_compositeresourcedefinitions";

/** All of Crossplane's CRDs, or none when `make tools` could not take them from its Go module. */
export function crossplaneCrds(): KubeObject[] {
  const dir = join(binDir, "crossplane-crds");
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith(".yaml"))
    .sort()
    .map((f) => crossplaneCrd(f.slice(0, -".yaml".length)));
}
