// The pull bindings a person may read on the control plane, for `klutch-bind status`: the cluster
// namespaces labelled bind.klutch.dev/pull-binding=true, each read as that person through
// pull-binding-view.ts (the web page's reader). Someone who may not list namespaces (a team that
// reads only its own cluster namespace) gets the namespace they named, if it is one; a ClusterBinding
// they may not read is left out, since status shows only what is theirs to see.
import { pullLabels } from "../api/pull-binding.ts";
import { refs } from "../api/resources.ts";
import { KubeApiError, type KubeClient } from "../kube/client.ts";
import { maxShown } from "./list-part.ts";
import { type PullBindingView, readPullBinding } from "./pull-binding-view.ts";

/** cluster namespaces read at once */
const concurrency = 8;

export type ReadablePullBindings = {
  views: PullBindingView[] /** labelled namespaces not looked at (over maxShown) */;
  more: number;
};

export async function readablePullBindings(
  client: KubeClient,
  fallbackNamespace: string,
): Promise<ReadablePullBindings> {
  let namespaces: string[];
  let more = 0;
  try {
    const answer = await client.list(refs.namespaces, { labelSelector: `${pullLabels.clusterNamespace}=true` });
    const all = answer.items.map((n) => n.metadata.name).sort();
    namespaces = all.slice(0, maxShown);
    more = all.length - namespaces.length;
  } catch (err) {
    if (!(err instanceof KubeApiError && err.code === 403)) throw err;
    namespaces = [fallbackNamespace];
  }
  const views: Array<PullBindingView | undefined> = new Array(namespaces.length);
  let next = 0;
  const worker = async () => {
    while (next < namespaces.length) {
      const i = next++;
      try {
        views[i] = await readPullBinding(client, namespaces[i] as string);
      } catch (err) {
        if (!(err instanceof KubeApiError && err.code === 403)) throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, namespaces.length) }, worker));
  return { views: views.filter((v): v is PullBindingView => v !== undefined), more };
}
