// Applying YAML manifests to a test cluster, as `kubectl apply --server-side` would.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type KubernetesObject, KubernetesObjectApi, PatchStrategy } from "@kubernetes/client-node";
import { parseAllDocuments } from "yaml";
import type { KubeObject } from "../../src/kube/client.ts";
import { isEstablished } from "../../src/kube/conditions.ts";
import type { Cluster } from "./cluster.ts";
import { kubeConfig } from "./clusters.ts";
import { eventually } from "./eventually.ts";
import { repoRoot } from "./tools.ts";

export function readManifests(path: string): KubernetesObject[] {
  return parseAllDocuments(readFileSync(join(repoRoot, path), "utf8"))
    .map((doc) => doc.toJS() as KubernetesObject | null)
    .filter((obj): obj is KubernetesObject => obj !== null);
}

export async function apply(cluster: Cluster, objects: KubernetesObject[], fieldManager = "klutch-bind-test") {
  const api = KubernetesObjectApi.makeApiClient(kubeConfig(cluster));
  const applied: KubernetesObject[] = [];
  for (const obj of objects) {
    applied.push(await api.patch(obj, undefined, undefined, fieldManager, true, PatchStrategy.ServerSideApply));
  }
  return applied;
}

/** Applies CRDs and waits until each is established (served). */
export async function applyCrds(cluster: Cluster, path: string): Promise<void> {
  const crds = readManifests(path);
  await apply(cluster, crds);
  const api = KubernetesObjectApi.makeApiClient(kubeConfig(cluster));
  for (const crd of crds) {
    await eventually(`CRD ${crd.metadata?.name} established`, async () => {
      if (!isEstablished((await api.read(crd as never)) as unknown as KubeObject)) throw new Error("not yet");
    });
  }
}
