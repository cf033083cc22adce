// What the binding page, the pull binding page and `klutch-bind status` read of a list: one page
// of it at most (maxShown objects, the rest counted when the API server says how many), each read
// as its own part, so that a list the person may not read says so while the others still show.
import { KubeApiError, type KubeClient, type ResourceRef, resourcePath } from "../kube/client.ts";
import { isRecord } from "../kube/errors.ts";

/** objects shown per part at most; the rest are counted ("and N more") when the API server says how many */
export const maxShown = 500;

/** One part of a page: what was read, or why it was not. more: the objects left out, "some" when uncounted. */
export type Part<T> =
  | { state: "shown"; items: T[]; more: number | "some" }
  | { state: "refused"; what: string }
  | { state: "failed"; message: string };

export type Page = { items: Array<Record<string, unknown>>; more: number | "some" };

/**
 * One page of a list: of namespace, or of all namespaces when none is given (or the resource is
 * cluster-scoped). accept asks for another form of the answer (e.g. metadata only).
 */
export async function onePage(
  client: KubeClient,
  ref: ResourceRef,
  options: { namespace?: string; labelSelector?: string; accept?: string } = {},
): Promise<Page> {
  const answer = await client.request<Record<string, unknown>>("GET", resourcePath(ref, options.namespace), {
    query: { labelSelector: options.labelSelector, limit: String(maxShown) },
    ...(options.accept ? { accept: options.accept } : {}),
  });
  const items = Array.isArray(answer.items) ? answer.items.filter(isRecord).slice(0, maxShown) : [];
  const meta = isRecord(answer.metadata) ? answer.metadata : {};
  const remaining = typeof meta.remainingItemCount === "number" ? meta.remainingItemCount : undefined;
  const more = typeof meta.continue === "string" && meta.continue !== "" ? (remaining ?? "some") : 0;
  return { items, more };
}

/** read as a part: refused when RBAC says no (or the identity is not accepted), failed with why otherwise. */
export async function part<T>(
  what: string,
  read: () => Promise<{ items: T[]; more: number | "some" }>,
): Promise<Part<T>> {
  try {
    return { state: "shown", ...(await read()) };
  } catch (err) {
    if (err instanceof KubeApiError && (err.code === 403 || err.code === 401)) return { state: "refused", what };
    return { state: "failed", message: `${what}: ${err instanceof Error ? err.message : String(err)}` };
  }
}
