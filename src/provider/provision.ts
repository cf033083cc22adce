// Provisioning a pull binding on the control plane: what the page's bind will call once a person
// (an OIDC or TokenReview identity) binds an app cluster. It makes, or finds again, the cluster
// namespace of that identity and cluster id, its ClusterBinding, the konnector's ServiceAccount
// klutch-binder with a Role of least privilege there (rules.ts), and hands back a kubeconfig for
// that account holding a TokenRequest token with a lifetime. No token Secret is ever made; the
// konnector renews its token itself (its Role lets it ask for its own account's token only). A
// ResourceQuota bounds the objects the konnector may create there (APIServiceNamespaces and
// APIServiceExportRequests), which the sync watches across the cluster and reads each reconcile.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { fieldManager, labels, managedByValue } from "../api/naming.ts";
import {
  binderAccount,
  boundApis,
  boundApisText,
  clusterBindingName,
  pullAnnotations,
  pullApiVersion,
  pullLabels,
  pullRefs,
} from "../api/pull-binding.ts";
import { refs } from "../api/resources.ts";
import type { PermissionClaim } from "../export/types.ts";
import type { KubeClient } from "../kube/client.ts";
import type { ParsedKubeconfig } from "../kube/kubeconfig.ts";
import { clusterNamespaceRules } from "../sync/pull/rules.ts";

export const defaultTokenSeconds = 3600;
/** the API server's floor for a TokenRequest's expirationSeconds */
export const minTokenSeconds = 600;
export const defaultNamespacePrefix = "cluster-";
/** how many of each kind the konnector may create in its cluster namespace, by default */
export const defaultObjectQuota = { serviceNamespaces: 200, exportRequests: 100 };
/** how long provisioning waits for the quota to be counted (the API server refuses creates until then) */
const quotaWaitMs = 60_000;
/** an uncounted quota older than this is made again */
const quotaRecountMs = 3000;

const resourceQuotas = { group: "", version: "v1", resource: "resourcequotas", namespaced: true } as const;

export type ProvisionOptions = {
  /** who binds: the user name the API server authenticated (OIDC or TokenReview) */
  identity: string;
  /** the app cluster's id, as the konnector computes it (klutch-bind: 6 base62 characters of its kube-system uid) */
  clusterId: string;
  /** the control plane's address for the konnector (--external-address); default the client's server */
  server?: string;
  /** base64 CA bundle of that address; default none (the system's trust) */
  certificateAuthorityData?: string;
  /** the token's lifetime in seconds (default 3600, at least 600) */
  tokenSeconds?: number;
  /** ClusterBinding spec.providerPrettyName (default "klutch-bind") */
  providerPrettyName?: string;
  /** the cluster namespace's name prefix (default "cluster-") */
  namespacePrefix?: string;
  /**
   * the APIs bound (RESOURCE.GROUP) with the claims the person accepted, recorded beside those bound
   * before (an API bound again: its claims as accepted now): the sync answers export requests for
   * these only (pullAnnotations.boundApis). Absent: nothing is recorded, and a cluster namespace
   * that never had any recorded takes a request for any templated API and template claim
   */
  apis?: ReadonlyArray<{ id: string; claims: readonly PermissionClaim[] }>;
  /** APIServiceNamespaces and APIServiceExportRequests the cluster namespace may hold (defaultObjectQuota) */
  objectQuota?: { serviceNamespaces: number; exportRequests: number };
};

export type Provisioned = {
  namespace: string;
  kubeconfig: string;
  /** when the token expires (ISO time, as the API server says) */
  expirationTimestamp: string;
};

export class ProvisionError extends Error {}

/** The cluster namespace of identity and clusterId: prefix + base36 of a SHA-224 of both, as kube-bind names it. */
export function clusterNamespaceName(identity: string, clusterId: string, prefix = defaultNamespacePrefix): string {
  const digest = createHash("sha224").update(`${identity}#${clusterId}`).digest();
  return `${prefix}${digest.readBigUInt64BE(0).toString(36)}`;
}

/**
 * The control plane's address and CA as the kubeconfig used names them (its current context's
 * cluster): the defaults of ProvisionOptions.server and certificateAuthorityData.
 */
export function controlPlaneAddress(config: ParsedKubeconfig): { server: string; certificateAuthorityData?: string } {
  const context = config.contexts.get(config.currentContext ?? [...config.contexts.keys()][0] ?? "");
  const cluster = context === undefined ? undefined : config.clusters.get(context.cluster);
  if (cluster === undefined) throw new ProvisionError(`${config.origin}: its current context names no cluster`);
  const data =
    cluster.certificateAuthorityData ??
    (cluster.certificateAuthority === undefined
      ? undefined
      : readFileSync(cluster.certificateAuthority).toString("base64"));
  return { server: cluster.server, ...(data === undefined ? {} : { certificateAuthorityData: data }) };
}

/** Idempotent: a second call for the same identity and cluster id reuses everything and mints a new token. */
export async function provisionPullBinding(client: KubeClient, options: ProvisionOptions): Promise<Provisioned> {
  if (options.identity === "") throw new ProvisionError("identity: must not be empty");
  if (!/^[A-Za-z0-9]{1,63}$/.test(options.clusterId)) {
    throw new ProvisionError(`clusterId: must be 1 to 63 letters and digits, got ${JSON.stringify(options.clusterId)}`);
  }
  const tokenSeconds = options.tokenSeconds ?? defaultTokenSeconds;
  if (!Number.isInteger(tokenSeconds) || tokenSeconds < minTokenSeconds) {
    throw new ProvisionError(
      `tokenSeconds: must be a whole number of at least ${minTokenSeconds}, got ${tokenSeconds}`,
    );
  }
  const quota = options.objectQuota ?? defaultObjectQuota;
  for (const [field, value] of Object.entries(quota)) {
    if (!Number.isInteger(value) || value < 1) {
      throw new ProvisionError(`objectQuota.${field}: must be a whole number of at least 1, got ${value}`);
    }
  }
  const namespace = clusterNamespaceName(options.identity, options.clusterId, options.namespacePrefix);
  const owner = `${options.identity}#${options.clusterId}`;
  const existing = await client.get(refs.namespaces, namespace);
  if (existing !== undefined && existing.metadata.annotations?.[pullAnnotations.identity] !== owner) {
    throw new ProvisionError(
      `namespace ${namespace} exists and is not the cluster namespace of ${owner}: nothing changed`,
    );
  }
  if (existing?.metadata.deletionTimestamp !== undefined) {
    throw new ProvisionError(
      `namespace ${namespace} is being deleted (an unbind of this cluster): try again once it is gone`,
    );
  }
  for (const { id } of options.apis ?? []) {
    if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?\.[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(id) || id.length > 316) {
      throw new ProvisionError(`apis: ${JSON.stringify(id)} is not RESOURCE.GROUP`);
    }
  }
  const marks = { [labels.managedBy]: managedByValue };
  const bound = boundApis(existing) ?? new Map();
  for (const { id, claims } of options.apis ?? []) bound.set(id, [...claims]);
  const apis = boundApisText(bound);
  const recorded: Record<string, string> = options.apis === undefined ? {} : { [pullAnnotations.boundApis]: apis };
  if (existing === undefined) {
    await client.create(refs.namespaces, {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: {
        name: namespace,
        labels: { ...marks, [pullLabels.clusterNamespace]: "true" },
        annotations: { [pullAnnotations.identity]: owner, ...recorded },
      },
    });
  } else if (options.apis !== undefined && existing.metadata.annotations?.[pullAnnotations.boundApis] !== apis) {
    await client.mergePatch(refs.namespaces, namespace, undefined, {
      metadata: { resourceVersion: existing.metadata.resourceVersion, annotations: recorded },
    });
  }
  await applyQuota(client, namespace, quota);
  await client.apply(
    refs.serviceAccounts,
    { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: binderAccount, namespace, labels: marks } },
    fieldManager,
  );
  await client.apply(
    pullRefs.roles,
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name: binderAccount, namespace, labels: marks },
      rules: clusterNamespaceRules(),
    },
    fieldManager,
  );
  await client.apply(
    refs.roleBindings,
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: binderAccount, namespace, labels: marks },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: binderAccount },
      subjects: [{ kind: "ServiceAccount", name: binderAccount, namespace }],
    },
    fieldManager,
  );
  await client.apply(
    pullRefs.clusterBindings,
    {
      apiVersion: pullApiVersion,
      kind: "ClusterBinding",
      metadata: { name: clusterBindingName, namespace, labels: marks },
      spec: {
        // klutch-bind's shape; no such Secret is made (the konnector renews its token by TokenRequest)
        kubeconfigSecretRef: { name: "kubeconfig", key: "kubeconfig" },
        providerPrettyName: options.providerPrettyName ?? "klutch-bind",
      },
    },
    fieldManager,
  );
  const minted = await client.request<{ status?: { token?: unknown; expirationTimestamp?: unknown } }>(
    "POST",
    `/api/v1/namespaces/${namespace}/serviceaccounts/${binderAccount}/token`,
    {
      body: {
        apiVersion: "authentication.k8s.io/v1",
        kind: "TokenRequest",
        spec: { expirationSeconds: tokenSeconds },
      },
    },
  );
  const token = minted.status?.token;
  const expirationTimestamp = minted.status?.expirationTimestamp;
  if (typeof token !== "string" || token === "" || typeof expirationTimestamp !== "string") {
    throw new ProvisionError("the API server answered the TokenRequest without a token and its expiry");
  }
  const server = options.server ?? client.server;
  return {
    namespace,
    expirationTimestamp,
    kubeconfig: kubeconfigText(server, options.certificateAuthorityData, namespace, token),
  };
}

/**
 * The cluster namespace's object quota, applied, and waited for until the quota controller has
 * counted it: until then the API server refuses every create it covers. A quota made before that
 * controller knew the klutch CRDs (it looks for new APIs every 30 s) stays uncounted until its
 * full resync (5 min): such a quota is made again, which the controller counts at once.
 */
async function applyQuota(
  client: KubeClient,
  namespace: string,
  quota: { serviceNamespaces: number; exportRequests: number },
): Promise<void> {
  const hard = {
    [`count/${pullRefs.serviceNamespaces.resource}.${pullRefs.serviceNamespaces.group}`]: String(
      quota.serviceNamespaces,
    ),
    [`count/${pullRefs.exportRequests.resource}.${pullRefs.exportRequests.group}`]: String(quota.exportRequests),
  };
  const desired = {
    apiVersion: "v1",
    kind: "ResourceQuota",
    metadata: { name: binderAccount, namespace, labels: { [labels.managedBy]: managedByValue } },
    spec: { hard },
  };
  await client.apply(resourceQuotas, desired, fieldManager);
  let since = Date.now();
  const until = since + quotaWaitMs;
  for (;;) {
    const read = await client.get(resourceQuotas, binderAccount, namespace);
    const status = read?.status as { hard?: Record<string, string>; used?: Record<string, string> } | undefined;
    if (Object.entries(hard).every(([k, v]) => status?.hard?.[k] === v && status.used?.[k] !== undefined)) return;
    if (Date.now() > until) {
      throw new ProvisionError(
        `the ResourceQuota ${namespace}/${binderAccount} was not counted within ${quotaWaitMs / 1000} s (is the resourcequota controller of kube-controller-manager running?)`,
      );
    }
    if (read !== undefined && Date.now() - since > quotaRecountMs) {
      await client.delete(
        resourceQuotas,
        binderAccount,
        namespace,
        read.metadata.uid ? { uid: read.metadata.uid } : {},
      );
      await client.apply(resourceQuotas, desired, fieldManager);
      since = Date.now();
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

function kubeconfigText(server: string, caData: string | undefined, namespace: string, token: string): string {
  const config = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "provider", cluster: { server, ...(caData ? { "certificate-authority-data": caData } : {}) } }],
    users: [{ name: binderAccount, user: { token } }],
    contexts: [{ name: "provider", context: { cluster: "provider", user: binderAccount, namespace } }],
    "current-context": "provider",
  };
  // JSON is YAML: any kubeconfig reader takes it
  return `${JSON.stringify(config, null, 2)}\n`;
}
