// Stand-ins for what Crossplane would put on a control plane, while its Go modules (and so its own
// CRDs and core) cannot be had on this machine: see README, "The Crossplane CLI and this machine".
import type { KubeObject } from "../../src/kube/client.ts";

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

/** A minimal CRD serving CompositeResourceDefinitions (v1 and v2), not Crossplane's own schema. */
export function xrdCrd(): KubeObject {
  const schema = {
    openAPIV3Schema: {
      type: "object",
      properties: {
        spec: { type: "object", "x-kubernetes-preserve-unknown-fields": true },
        status: { type: "object", "x-kubernetes-preserve-unknown-fields": true },
      },
    },
  };
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: "compositeresourcedefinitions.apiextensions.crossplane.io" },
    spec: {
      group: "apiextensions.crossplane.io",
      scope: "Cluster",
      names: {
        plural: "compositeresourcedefinitions",
        singular: "compositeresourcedefinition",
        kind: "CompositeResourceDefinition",
        listKind: "CompositeResourceDefinitionList",
        shortNames: ["xrd"],
      },
      versions: [
        { name: "v1", served: true, storage: true, schema, subresources: { status: {} } },
        { name: "v2", served: true, storage: false, schema, subresources: { status: {} } },
      ],
    },
  };
}
