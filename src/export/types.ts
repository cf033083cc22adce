// The pure core's vocabulary: plain data, no Kubernetes or gRPC client types.

export type Owner = "Provider" | "Consumer";

export type LabelSelectorRequirement = {
  key: string;
  operator: "In" | "NotIn" | "Exists" | "DoesNotExist";
  values?: string[];
};

export type LabelSelector = {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
};

/**
 * Which objects a claim covers. names, namespaces, labelSelectors and fieldSelectors are
 * klutch-bind's; labelSelector (with matchExpressions) and name globs are our extension.
 */
export type ClaimSelector = {
  /** absent: objects of either side, each owned as its marks or its creator say (claim-ownership.ts) */
  owner?: Owner;
  names?: string[];
  namespaces?: string[];
  labelSelector?: LabelSelector;
  /** klutch-bind's: equality selectors, an object matching any one of them is selected */
  labelSelectors?: Array<Record<string, string>>;
  /**
   * klutch-bind's: Kubernetes field selectors ("type=kubernetes.io/tls,metadata.name!=x"), every
   * one of which an object must match; fields: metadata.name, metadata.namespace, type
   */
  fieldSelectors?: string[];
};

/** The seed's claim shape: permission for the sync to copy another kind of object. */
export type PermissionClaim = {
  group: string;
  resource: string;
  version: string;
  selector: ClaimSelector;
} & ClaimBehaviour;

/** A label or annotation key, "*" standing for any run of characters. */
export type KeyPattern = { pattern: string };

/** klutch-bind's further claim fields: how copies are made and kept (all optional). */
export type ClaimBehaviour = {
  /** the binding does not work while this claim is not accepted */
  required?: boolean;
  /** which labels and annotations of consumer-owned objects reach the provider */
  read?: {
    labels?: KeyPattern[];
    labelsOnProviderOwnedObjects?: KeyPattern[];
    annotations?: KeyPattern[];
    overrideAnnotations?: KeyPattern[];
  };
  /** owner Provider: replace a conflicting object on the consumer side instead of leaving it */
  create?: { replaceExisting?: boolean };
  update?: {
    fields?: string[];
    preserving?: string[];
    /** delete and create instead of update, for immutable objects */
    alwaysRecreate?: boolean;
    /** which labels and annotations of provider-owned objects reach the consumer */
    labels?: KeyPattern[];
    labelsOnConsumerOwnedObjects?: KeyPattern[];
    annotations?: KeyPattern[];
    annotationsOnConsumerOwnedObjects?: KeyPattern[];
  };
  onConflict?: { recreateWhenConsumerSideDeleted?: boolean };
  autoAdopt?: boolean;
  autoDonate?: boolean;
};

export type XrdScope = "Namespaced" | "Cluster" | "LegacyCluster";

export type XrdVersion = { name: string; served: boolean; referenceable: boolean };

/** What the export needs to know of a CompositeResourceDefinition. */
export type Xrd = {
  name: string;
  group: string;
  plural: string;
  kind: string;
  scope: XrdScope;
  versions: XrdVersion[];
};

export type ServiceAccountRef = { name: string; namespace: string };

/** A resource by API group ("" for the core group) and plural name. */
export type ClaimRef = { group: string; resource: string };

/** Defaults and allow-lists an operator sets once, in the function input. */
export type ExportDefaults = {
  templateNamespace: string;
  syncServiceAccount: ServiceAccountRef;
  /** claims the operator allows, by group and resource, beyond the default ones (policy.ts) */
  allowedClaims: readonly ClaimRef[];
  /** API groups whose custom resources any export may claim (never a reserved group, policy.ts) */
  allowedClaimGroups: readonly string[];
  /** where templates may go; always holds templateNamespace */
  allowedTemplateNamespaces: readonly string[];
};

/** What a user asks for: the spec of a ServiceExport, or the annotations of a labelled XRD. */
export type ExportRequest = {
  /** unique per export: names everything the export creates */
  name: string;
  xrd: string;
  version?: string;
  permissionClaims: PermissionClaim[];
  templateNamespace?: string;
};

export type Exported = { group: string; resource: string; version: string; kind: string; scope: XrdScope };

/** A Kubernetes object as plain JSON. */
export type Manifest = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
};

/** Everything one export consists of. */
export type ExportPlan = {
  exported: Exported;
  template: Manifest;
  clusterRole: Manifest;
  clusterRoleBinding: Manifest;
  /** what the claims allow, bound per provider namespace by the sync; absent without claims */
  claimsRole?: Manifest;
};
