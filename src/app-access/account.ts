// The app cluster's side of a binding made by `klutch-bind bind` (issue #13 point 4): no admin
// credentials are kept. Bind uses the kubeconfig it is given once, to create in the app cluster a
// ServiceAccount (namespace klutch-bind) with a ClusterRole holding only what the sync needs there,
// and stores on the control plane a kubeconfig for that account with a short-lived token
// (TokenRequest). The sync renews the token before it expires and writes it back to the Secret.
//
// What the account may do (rbac.ts writes the rules):
// - the exported CRDs, by name: get, create, update, patch. RBAC cannot restrict a POST create by
//   name, but a server-side apply that creates authorizes `create` with the object's name, so the
//   sync installs and updates exactly these CRDs and no other;
// - the aggregated admin/edit/view roles of each bound API, by name; creating a role needs every
//   permission it grants, which the account holds on the bound resources (all verbs, cluster-wide:
//   those objects are the binding's);
// - namespace kube-system: get (the app cluster's identity);
// - claimed resources: in no namespace by itself. A second ClusterRole holds them (the accepted
//   claims only); the sync binds it with a RoleBinding of one fixed name in each app namespace it
//   serves (`bind` on that role by name, rolebindings by that name only) and watches claimed
//   resources per namespace, never cluster-wide;
// - its own token: create serviceaccounts/token for itself (a Role in its namespace, by name);
// - its own removal: delete the main ClusterRole by name. Every other object of the account names
//   that role as its owner, so the garbage collector removes them with it.
import { createHash } from "node:crypto";
import { parse, stringify } from "yaml";

/** Where bind creates the accounts in the app cluster (one namespace shared by all bindings). */
export const accountNamespace = "klutch-bind";

/** On a kubeconfig Secret holding a service account's token that the sync renews. */
export const appAccessAnnotation = "bind.klutch.dev/app-access";
export const appAccessServiceAccount = "service-account";

export type AppAccount = { namespace: string; name: string };

/** The names of everything one account consists of, derived from the account alone. */
export function accountObjects(account: AppAccount) {
  const base = `klutch-bind:app:${account.name}`;
  return {
    /** what the sync may do cluster-wide; the owner of every other object of the account */
    mainRole: base,
    clusterRoleBinding: base,
    /** the claimed resources, bound per app namespace */
    claimsRole: `${base}:claims`,
    /** the RoleBinding of claimsRole in each app namespace the sync serves */
    claimsRoleBinding: `${base}:claims`,
    /** serviceaccounts/token for itself, in the account's namespace */
    tokenRole: `${base}:token`,
    tokenRoleBinding: `${base}:token`,
  } as const;
}

/**
 * The account of one binding: the same for the binding's namespace and name, so binding again
 * (from the CLI or the web page, whatever address they reach the control plane by, and with
 * --print-rbac before the binding exists) updates the same account; readable (the binding name)
 * and unique per binding namespace (a digest). Two control planes binding one app cluster under
 * the same namespace and name would share it: name bindings after their team.
 */
export function accountFor(bindingNamespace: string, bindingName: string): AppAccount {
  const digest = createHash("sha256").update(`${bindingNamespace}\n${bindingName}`).digest("hex").slice(0, 8);
  return { namespace: accountNamespace, name: `${bindingName.slice(0, 52)}-${digest}` };
}

type Claims = {
  exp?: unknown;
  iat?: unknown;
  sub?: unknown;
  "kubernetes.io"?: { namespace?: unknown; serviceaccount?: { name?: unknown } };
};

/** The payload of a JWT, unverified (the app cluster verifies it; this only reads times and names). */
function jwtClaims(token: string): Claims | undefined {
  const parts = token.split(".");
  if (parts.length !== 3 || parts[1] === undefined) return undefined;
  try {
    const claims: unknown = JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8"));
    return typeof claims === "object" && claims !== null ? (claims as Claims) : undefined;
  } catch {
    return undefined;
  }
}

export type TokenTimes = { issuedAt: number; expires: number };

/** When a service account token was issued and expires (ms since the epoch), if it says. */
export function tokenTimes(token: string): TokenTimes | undefined {
  const claims = jwtClaims(token);
  if (typeof claims?.exp !== "number" || typeof claims.iat !== "number" || claims.exp <= claims.iat) return undefined;
  return { issuedAt: claims.iat * 1000, expires: claims.exp * 1000 };
}

/** The service account a token stands for, if it is a service account token. */
export function tokenAccount(token: string): AppAccount | undefined {
  const claims = jwtClaims(token);
  const fromClaims = claims?.["kubernetes.io"];
  const name = fromClaims?.serviceaccount?.name;
  if (typeof fromClaims?.namespace === "string" && typeof name === "string") {
    return { namespace: fromClaims.namespace, name };
  }
  const sub = typeof claims?.sub === "string" ? /^system:serviceaccount:([^:]+):([^:]+)$/.exec(claims.sub) : null;
  return sub ? { namespace: sub[1] ?? "", name: sub[2] ?? "" } : undefined;
}

/** When a token should be renewed: at fraction (0..1) of its lifetime. */
export function renewalTime(times: TokenTimes, fraction: number): number {
  return times.issuedAt + (times.expires - times.issuedAt) * fraction;
}

/** The default share of a token's lifetime after which the sync renews it. */
export const defaultRenewFraction = 0.8;
/** The default lifetime of the tokens bind and the sync request (24 h; TokenRequest's minimum is 600 s). */
export const defaultTokenSeconds = 86_400;
export const minTokenSeconds = 600;

type KubeconfigDoc = {
  "current-context"?: string;
  contexts?: Array<{ name?: string; context?: { user?: string; cluster?: string } }>;
  users?: Array<{ name?: string; user?: Record<string, unknown> }>;
  clusters?: Array<{ name?: string; cluster?: Record<string, unknown> }>;
};

function currentUser(doc: KubeconfigDoc): Record<string, unknown> | undefined {
  const contexts = doc.contexts ?? [];
  const context =
    contexts.find((c) => c.name === doc["current-context"]) ?? (contexts.length === 1 ? contexts[0] : undefined);
  return doc.users?.find((u) => u.name === context?.context?.user)?.user;
}

/** The bearer token of a kubeconfig's current user, if it has one inline. */
export function kubeconfigToken(text: string): string | undefined {
  try {
    const token = currentUser(parse(text) as KubeconfigDoc)?.token;
    return typeof token === "string" ? token : undefined;
  } catch {
    return undefined;
  }
}

/** The kubeconfig with its current user's token replaced (nothing else changes). */
export function withToken(text: string, token: string): string {
  const doc = parse(text) as KubeconfigDoc;
  const user = currentUser(doc);
  if (user === undefined) throw new Error("the kubeconfig's current context names no user");
  user.token = token;
  return stringify(doc);
}

/**
 * A kubeconfig for the account: the app cluster's server and CA (or its insecure flag) as the
 * given kubeconfig has them, and the token; nothing of the given user's credentials.
 */
export function accountKubeconfig(
  cluster: { server: string; caData?: string; insecureSkipTlsVerify?: boolean; tlsServerName?: string },
  account: AppAccount,
  token: string,
): string {
  const name = `${account.namespace}-${account.name}`;
  return stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [
      {
        name: "app",
        cluster: {
          server: cluster.server,
          ...(cluster.caData ? { "certificate-authority-data": cluster.caData } : {}),
          ...(cluster.insecureSkipTlsVerify ? { "insecure-skip-tls-verify": true } : {}),
          ...(cluster.tlsServerName ? { "tls-server-name": cluster.tlsServerName } : {}),
        },
      },
    ],
    users: [{ name, user: { token } }],
    contexts: [{ name: "app", context: { cluster: "app", user: name } }],
    "current-context": "app",
  });
}
