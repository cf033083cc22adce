// A pull binding as its app team may see it on the control plane: the ClusterBinding of a cluster
// namespace, with the konnector's last heartbeat and the Healthy condition the sync derives from
// it (sync/pull/heartbeat.ts), and the APIServiceExports the sync answered its requests with. Read
// as whoever asks; what they may not read says so.
import { clusterBindingName, decodeExportApi, decodeHeartbeat, type Heartbeat, pullRefs } from "../api/pull-binding.ts";
import type { KubeClient, KubeObject } from "../kube/client.ts";
import { type Condition, conditionOf } from "../kube/conditions.ts";
import { onePage, type Part, part } from "./list-part.ts";

export type PullBindingView = {
  namespace: string;
  /** the heartbeat fields, or why they could not be read (the konnector writes them) */
  heartbeat: Heartbeat | { invalid: string };
  healthy: Condition | undefined;
  deleting: boolean;
  exports: Part<{ name: string; api: string; ready: Condition | undefined }>;
};

/** The cluster namespace's ClusterBinding as client sees it; undefined when there is none. Throws KubeApiError (403) when it may not read it. */
export async function readPullBinding(client: KubeClient, namespace: string): Promise<PullBindingView | undefined> {
  const binding = await client.get(pullRefs.clusterBindings, clusterBindingName, namespace);
  if (binding === undefined) return undefined;
  let heartbeat: PullBindingView["heartbeat"];
  try {
    heartbeat = decodeHeartbeat(binding);
  } catch (err) {
    heartbeat = { invalid: err instanceof Error ? err.message : String(err) };
  }
  const exports = await part("the APIServiceExports", async () => {
    const page = await onePage(client, pullRefs.exports, { namespace });
    const items = page.items.map((item) => {
      const e = item as KubeObject;
      let api: string;
      try {
        const parsed = decodeExportApi(e);
        api = `${parsed.resource}.${parsed.group}`;
      } catch (err) {
        api = err instanceof Error ? err.message : String(err);
      }
      return { name: String(e.metadata?.name ?? ""), api, ready: conditionOf(e, "Ready") };
    });
    return { items, more: page.more };
  });
  return {
    namespace,
    heartbeat,
    healthy: conditionOf(binding, "Healthy"),
    deleting: binding.metadata.deletionTimestamp !== undefined,
    exports,
  };
}
