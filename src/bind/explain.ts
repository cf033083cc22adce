import { KubeApiError } from "../kube/client.ts";

/** A refusal put in words; code is the API server's status, when it answered. */
export class ExplainedError extends Error {
  readonly code: number | undefined;
  constructor(message: string, code?: number) {
    super(message);
    this.code = code;
  }
}

/**
 * Turns the API server's refusals into sentences that name the cause. namespace: where it was
 * attempted (none: in all namespaces).
 */
export function explain(err: unknown, doing: string, server: string, namespace?: string): ExplainedError {
  const where = namespace === undefined ? "in all namespaces" : `in namespace ${namespace}`;
  if (err instanceof KubeApiError) {
    if (err.code === 403)
      return new ExplainedError(`no permission to ${doing} ${where} of ${server}: ${err.message}`, 403);
    if (err.code === 404) {
      return new ExplainedError(
        `${doing}: not found on ${server} (are the klutch-bind CRDs installed?): ${err.message}`,
        404,
      );
    }
    return new ExplainedError(`${doing}: ${err.message}`, err.code);
  }
  const text = err instanceof Error ? err.message : String(err);
  return new ExplainedError(`${doing}: control plane ${server} unreachable: ${text}`);
}
