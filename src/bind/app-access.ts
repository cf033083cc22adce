// What `klutch-bind bind` and the web page do with the app cluster's kubeconfig they are given: use
// it once, to create the binding's service account and its roles (see app-access/account.ts), and
// return a kubeconfig of that account with a short-lived token, the only one stored. The given
// kubeconfig is never stored. With --print-rbac the same objects are printed instead, for teams
// who apply them themselves and then bind with the account's own kubeconfig.
import type { LookupFunction } from "node:net";
import { parse, stringify } from "yaml";
import { refs } from "../api/resources.ts";
import {
  type AppAccount,
  accountFor,
  accountKubeconfig,
  accountObjects,
  defaultTokenSeconds,
  minTokenSeconds,
} from "../app-access/account.ts";
import { appRbac, type BoundExport, ownedBy } from "../app-access/rbac.ts";
import { requestToken } from "../app-access/token-renewal.ts";
import type { PermissionClaim } from "../export/types.ts";
import { type ClientOptions, KubeApiError, KubeClient, type KubeObject } from "../kube/client.ts";
import type { ServerAddressPolicy } from "../kube/server-addresses.ts";
import type { BindableApi } from "./bindable.ts";

const fieldManager = "klutch-bind";

export type AppAccessRequest = {
  bindingNamespace: string;
  bindingName: string;
  exports: BoundExport[];
  /** the token's lifetime (default 24 h, at least 600 s) */
  tokenSeconds?: number;
  /** how the app cluster's host name is looked up (a tenant's gate, lookup.ts, in a shared process) */
  lookup?: LookupFunction;
  /** where the app cluster's server may be (server-addresses.ts; in a shared process) */
  serverAddresses?: ServerAddressPolicy;
};

export type AppAccess = {
  account: AppAccount;
  /** a kubeconfig of the account, with its token */
  kubeconfig: string;
  expires: Date;
  /** the kubeconfig given was the account's own (its RBAC applied by the app cluster's admins) */
  selfIssued: boolean;
};

/** The exports as the app-side roles need them: each with the claims the user accepted. */
export function boundExports(
  exports: BindableApi[],
  accepted: (api: BindableApi) => readonly PermissionClaim[],
): BoundExport[] {
  return exports.map((api) => ({ group: api.group, resource: api.resource, claims: accepted(api) }));
}

/** The app-side RBAC of a binding as YAML, for `klutch-bind bind --print-rbac`. */
export function printRbac(request: AppAccessRequest): string {
  const account = accountFor(request.bindingNamespace, request.bindingName);
  const seconds = request.tokenSeconds ?? defaultTokenSeconds;
  const header = [
    `# The app cluster side of binding ${request.bindingNamespace}/${request.bindingName}: service account`,
    `# ${account.namespace}/${account.name} and what the sync may do. Apply it, then bind with a kubeconfig of`,
    "# that account (it renews its own token from then on):",
    `#   kubectl create token -n ${account.namespace} ${account.name} --duration ${seconds}s`,
    "# Unbinding deletes the ClusterRole first named here; remove the rest with kubectl delete -f.",
  ].join("\n");
  const docs = appRbac(account, request.exports).map((obj) => `---\n${stringify(obj)}`);
  return `${header}\n${docs.join("")}`;
}

/** Who the kubeconfig's user is, as the app cluster says. */
async function whoAmI(app: KubeClient): Promise<string> {
  const review = await app.request<{ status?: { userInfo?: { username?: unknown } } }>(
    "POST",
    "/apis/authentication.k8s.io/v1/selfsubjectreviews",
    { body: { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" } },
  );
  const name = review.status?.userInfo?.username;
  return typeof name === "string" ? name : "";
}

/** The cluster entry of a kubeconfig's current context (already checked to be self-contained). */
function clusterOf(kubeconfig: string): Parameters<typeof accountKubeconfig>[0] {
  const doc = parse(kubeconfig) as {
    "current-context"?: string;
    contexts?: Array<{ name?: string; context?: { cluster?: string } }>;
    clusters?: Array<{ name?: string; cluster?: Record<string, unknown> }>;
  };
  const contexts = doc.contexts ?? [];
  const context =
    contexts.find((c) => c.name === doc["current-context"]) ?? (contexts.length === 1 ? contexts[0] : undefined);
  const cluster = doc.clusters?.find((c) => c.name === context?.context?.cluster)?.cluster ?? {};
  const text = (key: string) => (typeof cluster[key] === "string" ? (cluster[key] as string) : undefined);
  return {
    server: text("server") ?? "",
    ...(text("certificate-authority-data") ? { caData: text("certificate-authority-data") } : {}),
    ...(cluster["insecure-skip-tls-verify"] === true ? { insecureSkipTlsVerify: true } : {}),
    ...(text("tls-server-name") ? { tlsServerName: text("tls-server-name") } : {}),
  };
}

/**
 * Creates (or updates) the binding's account in the app cluster with the given kubeconfig, and
 * returns a kubeconfig of the account. When the given kubeconfig is the account's own (its RBAC
 * applied from --print-rbac), only a new token is asked for.
 */
export async function grantAppAccess(givenKubeconfig: string, request: AppAccessRequest): Promise<AppAccess> {
  const seconds = request.tokenSeconds ?? defaultTokenSeconds;
  if (!(seconds >= minTokenSeconds)) throw new Error(`the token lifetime must be at least ${minTokenSeconds} s`);
  const account = accountFor(request.bindingNamespace, request.bindingName);
  const reach: ClientOptions = {
    ...(request.lookup ? { lookup: request.lookup } : {}),
    ...(request.serverAddresses ? { serverAddresses: request.serverAddresses } : {}),
  };
  const app = KubeClient.fromUntrustedKubeconfig(givenKubeconfig, { timeoutMs: 10_000, ...reach });
  try {
    const me = await whoAmI(app).catch((err: unknown) => {
      throw new Error(`app cluster ${app.server}: cannot tell who the kubeconfig's user is: ${message(err)}`);
    });
    const selfIssued = me === `system:serviceaccount:${account.namespace}:${account.name}`;
    if (!selfIssued) await applyRbac(app, account, request.exports);
    const issued = await requestToken(app, account, seconds).catch((err: unknown) => {
      throw new Error(
        `app cluster ${app.server}: cannot issue a token for service account ${account.namespace}/${account.name}: ${message(err)}`,
      );
    });
    const kubeconfig = accountKubeconfig(clusterOf(givenKubeconfig), account, issued.token);
    await checkAccount(kubeconfig, account, reach);
    return { account, kubeconfig, expires: issued.expires, selfIssued };
  } finally {
    app.close();
  }
}

async function applyRbac(app: KubeClient, account: AppAccount, exports: readonly BoundExport[]): Promise<void> {
  const [namespace, mainRole, ...owned] = appRbac(account, exports) as [KubeObject, KubeObject, ...KubeObject[]];
  const refused = (err: unknown, what: string) => {
    if (err instanceof KubeApiError && err.code === 403) {
      return new Error(
        `app cluster ${app.server}: the given kubeconfig may not create ${what} (${err.message}). ` +
          "Bind with a cluster admin's kubeconfig (it is used once and never stored), or have the app cluster's " +
          "admins apply `klutch-bind bind --print-rbac` and bind with the service account's kubeconfig",
      );
    }
    return new Error(`app cluster ${app.server}: creating ${what} failed: ${message(err)}`);
  };
  const existing = await app.get(refs.namespaces, account.namespace).catch(() => undefined);
  if (existing === undefined) {
    await app.apply(refs.namespaces, namespace, fieldManager, true).catch((err: unknown) => {
      throw refused(err, `namespace ${account.namespace}`);
    });
  }
  const role = await app.apply(refs.clusterRoles, mainRole, fieldManager, true).catch((err: unknown) => {
    throw refused(err, `ClusterRole ${mainRole.metadata.name}`);
  });
  const ownerReferences = ownedBy(account, role.metadata.uid ?? "");
  for (const obj of owned) {
    const ref = refOf(obj);
    const what = `${obj.kind} ${obj.metadata.namespace ? `${obj.metadata.namespace}/` : ""}${obj.metadata.name}`;
    await app
      .apply(ref, { ...obj, metadata: { ...obj.metadata, ownerReferences } }, fieldManager, true)
      .catch((err: unknown) => {
        throw refused(err, what);
      });
  }
}

function refOf(obj: KubeObject) {
  switch (obj.kind) {
    case "ServiceAccount":
      return refs.serviceAccounts;
    case "ClusterRole":
      return refs.clusterRoles;
    case "ClusterRoleBinding":
      return refs.clusterRoleBindings;
    case "Role":
      return { group: "rbac.authorization.k8s.io", version: "v1", resource: "roles", namespaced: true };
    case "RoleBinding":
      return refs.roleBindings;
    default:
      throw new Error(`no resource for kind ${obj.kind}`);
  }
}

/** The account's kubeconfig works: the app cluster answers it, and it may read what identifies the cluster. */
async function checkAccount(kubeconfig: string, account: AppAccount, reach: ClientOptions): Promise<void> {
  const client = KubeClient.fromUntrustedKubeconfig(kubeconfig, { timeoutMs: 10_000, ...reach });
  try {
    // a role binding just made takes a moment to reach the API server's authorizer
    for (let attempt = 0; ; attempt++) {
      try {
        await client.get(refs.namespaces, "kube-system");
        return;
      } catch (err) {
        if (!(err instanceof KubeApiError) || err.code !== 403 || attempt >= 20) throw err;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  } catch (err) {
    throw new Error(
      `app cluster ${client.server}: service account ${account.namespace}/${account.name} cannot read namespace kube-system: ${message(err)} (is ClusterRole ${accountObjects(account).mainRole} applied and bound?)`,
    );
  } finally {
    client.close();
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
