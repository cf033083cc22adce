import { KubeApiError } from "../kube/client.ts";

/** Turns the API server's refusals into sentences that name the cause. */
export function explain(err: unknown, doing: string, server: string, where: string): Error {
  if (err instanceof KubeApiError) {
    if (err.code === 403) return new Error(`no permission to ${doing} ${where} of ${server}: ${err.message}`);
    if (err.code === 404)
      return new Error(`${doing}: not found on ${server} (are the klutch-bind CRDs installed?): ${err.message}`);
    return new Error(`${doing}: ${err.message}`);
  }
  const text = err instanceof Error ? err.message : String(err);
  return new Error(`${doing}: control plane ${server} unreachable: ${text}`);
}
