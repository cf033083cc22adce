// Who is signing in: the control plane's TokenReview decides, asked with the page's own identity.
// The page then impersonates that user, so it refuses identities whose impersonation would be
// privileged (system:masters, nodes, control-plane components), whatever their token proves.
import type { Impersonation, KubeClient } from "../kube/client.ts";

/** The token was refused, or could not be checked; the message is fit to show the user. */
export class SignInError extends Error {}

/** Whom TokenReview says a token belongs to, as it said it. */
export type Identity = { username: string; uid?: string; groups: string[] };

type TokenReviewStatus = {
  authenticated?: boolean;
  error?: string;
  user?: { username?: string; uid?: string; groups?: string[] };
};

const maxTokenLength = 16 * 1024;

/**
 * Asks TokenReview about token: its identity, or undefined when the control plane does not accept
 * it (expired, revoked, unknown). Throws when TokenReview could not be asked or did not answer.
 */
export async function checkToken(control: KubeClient, token: string): Promise<Identity | undefined> {
  const review = await control.request<{ status?: TokenReviewStatus }>(
    "POST",
    "/apis/authentication.k8s.io/v1/tokenreviews",
    { body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token } } },
  );
  const status = review.status;
  if (status?.authenticated !== true) return undefined;
  const user = status.user;
  // the API server's answer, decoded: a user is a name, an optional uid and a list of group names
  if (typeof user?.username !== "string" || user.username === "") return undefined;
  const groups: unknown = user.groups ?? [];
  if (!Array.isArray(groups) || !groups.every((g): g is string => typeof g === "string")) return undefined;
  return {
    username: user.username,
    ...(typeof user.uid === "string" && user.uid !== "" ? { uid: user.uid } : {}),
    groups,
  };
}

/** The same user with the same groups: a re-check that finds anything else ends the session. */
export function sameIdentity(a: Identity, b: Identity): boolean {
  const groups = (i: Identity) => [...i.groups].sort().join("\n");
  return a.username === b.username && (a.uid ?? "") === (b.uid ?? "") && groups(a) === groups(b);
}

const serviceAccountUser = /^system:serviceaccount:[^:]+:[^:]+$/;
const serviceAccountGroup = /^system:serviceaccounts(:[^:]+)?$/;

/**
 * Why the page must not act as this identity, or undefined when it may. Every name of the
 * reserved `system:` prefix is refused (system:masters, system:nodes, system:kube-controller-manager,
 * system:bootstrappers, ...) but service accounts and the groups every user or every service
 * account is in.
 */
export function privilegedReason(identity: Identity): string | undefined {
  if (identity.username.startsWith("system:") && !serviceAccountUser.test(identity.username)) {
    return `this page does not sign in the reserved user ${identity.username}; use a token of a person or of a service account`;
  }
  const refused = identity.groups.filter((g) => g.startsWith("system:") && !allowedSystemGroup(g));
  if (refused.length > 0) {
    return `this page does not sign in members of privileged groups (${refused.join(", ")}); use a token without them`;
  }
  return undefined;
}

function allowedSystemGroup(group: string): boolean {
  return group === "system:authenticated" || serviceAccountGroup.test(group);
}

/**
 * What the page impersonates for identity: its name and its groups, each checked again here so no
 * privileged group can be sent whatever the caller did. system:authenticated is left out: the API
 * server adds it to every impersonated user.
 */
export function impersonationOf(identity: Identity): Impersonation {
  if (privilegedReason(identity) !== undefined) throw new Error(`refusing to impersonate ${identity.username}`);
  const groups = identity.groups.filter(
    (g) => g !== "system:authenticated" && (!g.startsWith("system:") || allowedSystemGroup(g)),
  );
  return { username: identity.username, groups };
}

/**
 * The expiry of a JWT bearer token (its `exp` claim, in ms), or undefined for a token that is no
 * JWT or has no exp (static tokens). Read without verifying the signature: TokenReview has already
 * authenticated the token, and the claim only ever shortens a session.
 */
export function tokenExpiry(token: string): number | undefined {
  const parts = token.split(".");
  if (parts.length !== 3) return undefined;
  try {
    const payload: unknown = JSON.parse(Buffer.from(parts[1] ?? "", "base64url").toString("utf8"));
    if (typeof payload !== "object" || payload === null || !("exp" in payload)) return undefined;
    const exp = payload.exp;
    return typeof exp === "number" && Number.isFinite(exp) ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

export type SignIn = { identity: Identity; user: Impersonation; token: string; expires?: number };

const notAccepted = "the control plane did not accept this token (expired, revoked or not a token of this cluster)";

/**
 * Checks a token typed on the sign-in page, or an ID token from OpenID Connect; throws SignInError
 * with what to show the user, refused when TokenReview does not accept the token.
 */
export async function reviewToken(control: KubeClient, token: string, refused = notAccepted): Promise<SignIn> {
  const trimmed = token.trim();
  if (trimmed === "") throw new SignInError("enter a bearer token of the control plane");
  if (trimmed.length > maxTokenLength) throw new SignInError(`the token is longer than ${maxTokenLength} characters`);
  let identity: Identity | undefined;
  try {
    identity = await checkToken(control, trimmed);
  } catch (err) {
    throw new SignInError(`the control plane could not check the token: ${(err as Error).message}`);
  }
  if (identity === undefined) throw new SignInError(refused);
  const privileged = privilegedReason(identity);
  if (privileged !== undefined) throw new SignInError(privileged);
  const expires = tokenExpiry(trimmed);
  if (expires !== undefined && expires <= Date.now()) throw new SignInError("this token has expired");
  return { identity, user: impersonationOf(identity), token: trimmed, ...(expires !== undefined ? { expires } : {}) };
}
