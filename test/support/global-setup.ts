// node --test --test-global-setup: one pair of clusters for the whole run. Dev clusters from
// `make dev-clusters` are reused when up; otherwise a pair is started in a temporary folder and
// stopped at the end.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { refs } from "../../src/api/resources.ts";
import { KubeClient } from "../../src/kube/client.ts";
import { readKubeconfigFile } from "../../src/kube/kubeconfig.ts";
import {
  type Cluster,
  externalCluster,
  runningCluster,
  sharedClusterNames,
  startCluster,
  stopCluster,
  testClustersEnv,
} from "./cluster.ts";
import { crossplaneCrds } from "./crossplane-standin.ts";
import { devClusterDir, devCrossplaneUp } from "./tools.ts";

let ownedRoot: string | undefined;
const owned: Cluster[] = [];

export async function globalSetup(): Promise<void> {
  const progress = (line: string) => process.stderr.write(`[test clusters] ${line}\n`);
  const clusters = await Promise.all(
    sharedClusterNames.map(async (name) => {
      // a lane that must have its clusters to itself (make test's exclusive and timed lanes) asks
      // for its own pair: never the dev clusters or those KLB_TEST_*_KUBECONFIG name
      const own = process.env.KLB_TEST_OWN_CLUSTERS === "1";
      const external = own ? undefined : externalCluster(name);
      if (external !== undefined) {
        progress(`using ${name} from ${external.kubeconfigPath}`);
        return external;
      }
      const dev = own || devCrossplaneUp() ? undefined : await runningCluster(name, devClusterDir(name));
      if (dev === undefined && !own && devCrossplaneUp())
        progress(`not sharing dev cluster ${name}: make dev-crossplane runs on it`);
      if (dev !== undefined) {
        progress(`reusing dev cluster ${name} at ${dev.server}`);
        return dev;
      }
      ownedRoot ??= mkdtempSync(join(tmpdir(), "klb-test-"));
      const cluster = await startCluster(name, join(ownedRoot, name), { progress });
      owned.push(cluster);
      return cluster;
    }),
  );
  process.env[testClustersEnv] = JSON.stringify(clusters);
  const control = clusters[sharedClusterNames.indexOf("control")];
  if (control !== undefined) await installCrossplaneCrds(control, progress);
}

/**
 * A control plane runs Crossplane, so it serves Crossplane's APIs from the start; the garbage
 * collector, which learns new kinds only every 30 s, then knows XRDs before a test deletes one.
 */
async function installCrossplaneCrds(cluster: Cluster, progress: (line: string) => void): Promise<void> {
  const crds = crossplaneCrds();
  if (crds.length === 0) return;
  const client = KubeClient.fromConfig(readKubeconfigFile(cluster.kubeconfigPath));
  try {
    await Promise.all(crds.map((crd) => client.apply(refs.crds, crd, "klutch-bind-test", true)));
  } finally {
    client.close();
  }
  progress(`installed Crossplane's ${crds.length} CRDs on ${cluster.name}`);
}

export async function globalTeardown(): Promise<void> {
  await Promise.all(owned.map((c) => stopCluster(c.dir, { removeData: true })));
  if (ownedRoot !== undefined) rmSync(ownedRoot, { recursive: true, force: true });
}
