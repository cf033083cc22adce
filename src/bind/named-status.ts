// What `klutch-bind status NAME…` reads: each name's bindings by name (both kinds) and, when the
// name is a namespace's, that namespace's pull binding (its ClusterBinding), so that its cost is a
// few requests per name however many bindings and cluster namespaces the control plane holds.
// Shown in the order the listing gives (klutch-bind's kind first, then by name), as before.
import { refs } from "../api/resources.ts";
import { namespaceName } from "../export/decode.ts";
import { isPathSegmentName } from "../kube/answers.ts";
import { KubeApiError, type KubeClient, type KubeObject } from "../kube/client.ts";
import { findBindings, groupOf, listBindings } from "./find-bindings.ts";
import { type PullBindingView, readPullBinding } from "./pull-binding-view.ts";
import type { ReadablePullBindings } from "./pull-bindings-readable.ts";

function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The AppClusterBindings of the names in namespace; a person who may list them but not get them gets the list's. */
export async function namedBindings(
  client: KubeClient,
  namespace: string,
  names: readonly string[],
): Promise<KubeObject[]> {
  let found: KubeObject[];
  try {
    // a name that cannot be in a path names no binding
    const readable = names.filter(isPathSegmentName);
    found = (await Promise.all(readable.map((name) => findBindings(client, name, namespace)))).flat();
  } catch (err) {
    if (!(err instanceof KubeApiError && err.code === 403)) throw err;
    found = (await listBindings(client, namespace)).filter((b) => names.includes(b.metadata.name));
  }
  const rank = (b: KubeObject) => (groupOf(b) === refs.klutchBindings.group ? 0 : 1);
  return found.sort((a, b) => rank(a) - rank(b) || byName(a.metadata.name, b.metadata.name));
}

function isNamespaceName(name: string): boolean {
  try {
    namespaceName(name, "NAME");
    return true;
  } catch {
    return false;
  }
}

/** The pull bindings of the names that are cluster namespaces; one the person may not read is left out. */
export async function namedPullBindings(client: KubeClient, names: readonly string[]): Promise<ReadablePullBindings> {
  const views = await Promise.all(
    names.filter(isNamespaceName).map((namespace) =>
      readPullBinding(client, namespace).catch((err: unknown) => {
        if (err instanceof KubeApiError && err.code === 403) return undefined;
        throw err;
      }),
    ),
  );
  return {
    views: views.filter((v): v is PullBindingView => v !== undefined).sort((a, b) => byName(a.namespace, b.namespace)),
    more: 0,
  };
}
