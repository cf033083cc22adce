// Who is signing in: the control plane's TokenReview decides, asked with the sidecar's own identity.
import type { Impersonation, KubeClient } from "../kube/client.ts";

/** The token was refused, or could not be checked; the message is fit to show the user. */
export class SignInError extends Error {}

type TokenReviewStatus = {
  authenticated?: boolean;
  error?: string;
  user?: { username?: string; uid?: string; groups?: string[] };
};

const maxTokenLength = 16 * 1024;

export async function reviewToken(control: KubeClient, token: string): Promise<Impersonation> {
  const trimmed = token.trim();
  if (trimmed === "") throw new SignInError("enter a bearer token of the control plane");
  if (trimmed.length > maxTokenLength) throw new SignInError(`the token is longer than ${maxTokenLength} characters`);
  let status: TokenReviewStatus | undefined;
  try {
    const review = await control.request<{ status?: TokenReviewStatus }>(
      "POST",
      "/apis/authentication.k8s.io/v1/tokenreviews",
      { body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token: trimmed } } },
    );
    status = review.status;
  } catch (err) {
    throw new SignInError(`the control plane could not check the token: ${(err as Error).message}`);
  }
  if (!status?.authenticated || !status.user?.username) {
    throw new SignInError(
      "the control plane did not accept this token (expired, revoked or not a token of this cluster)",
    );
  }
  // system:authenticated is added by the API server to every impersonated user
  const groups = (status.user.groups ?? []).filter((g) => g !== "system:authenticated");
  return { username: status.user.username, groups };
}
