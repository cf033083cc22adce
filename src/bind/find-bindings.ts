// The bindings the CLI and the web page show and unbind: klutch-bind's AppClusterBinding
// (klutch.anynines.com, what bind writes) and ours from before it (bind.klutch.dev), which are
// still served as they are. A kind whose CRD is not installed has none.

import { type BindingKind, bindingKinds, kindOf } from "../api/binding-spec.ts";
import { refs } from "../api/resources.ts";
import { KubeApiError, type KubeClient, type KubeObject } from "../kube/client.ts";

/** klutch-bind's kind first: it is what bind writes. */
const shownKinds: readonly BindingKind[] = [...bindingKinds].sort((a) =>
  a.ref.group === refs.klutchBindings.group ? -1 : 1,
);

/** The older kind's bindings are shown to whoever may see them; one who may not (or a cluster without its CRD) has none. */
function noneOfOlderKind(kind: BindingKind, err: unknown): boolean {
  if (!(err instanceof KubeApiError)) return false;
  return err.code === 404 || (kind.ref.group === refs.bindings.group && err.code === 403);
}

/** Every binding of the namespace, of both kinds. */
export async function listBindings(client: KubeClient, namespace: string): Promise<KubeObject[]> {
  const lists = await Promise.all(
    shownKinds.map((kind) =>
      client.list(kind.ref, { namespace }).then(
        (list) => list.items,
        (err: unknown) => {
          if (noneOfOlderKind(kind, err)) return [];
          throw err;
        },
      ),
    ),
  );
  return lists.flat();
}

/**
 * The bindings named so, of the kind of API group when given, else of both kinds (klutch-bind's
 * first): usually one, two when both kinds have a binding of that name.
 */
export async function findBindings(
  client: KubeClient,
  name: string,
  namespace: string,
  group?: string,
): Promise<KubeObject[]> {
  const kinds = group === undefined ? shownKinds : shownKinds.filter((k) => k.ref.group === group);
  const found = await Promise.all(
    kinds.map((kind) =>
      client.get(kind.ref, name, namespace).catch((err: unknown) => {
        if (noneOfOlderKind(kind, err)) return undefined;
        throw err;
      }),
    ),
  );
  return found.filter((b): b is KubeObject => b !== undefined);
}

/** "klutch.anynines.com" or "bind.klutch.dev": the binding's API group. */
export function groupOf(binding: KubeObject): string {
  return kindOf(binding).ref.group;
}

/** Whether the binding is of our older kind (bind.klutch.dev). */
export function isOlderKind(binding: KubeObject): boolean {
  return groupOf(binding) === refs.bindings.group;
}
