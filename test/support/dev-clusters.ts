// `make dev-clusters` / `make dev-clusters-down`: long-lived local clusters under .dev/.
import { copyFileSync, existsSync, readdirSync, rmSync } from "node:fs";
import { dirname } from "node:path";
import { startCluster, stopCluster } from "./cluster.ts";
import { down as devCrossplaneDown } from "./dev-crossplane.ts";
import { devClusterDir, devKubeconfig } from "./tools.ts";

const devClustersDir = dirname(devClusterDir("x"));

async function up(names: string[]): Promise<void> {
  const progress = (line: string) => console.log(`[dev-clusters] ${line}`);
  // one at a time: two cold API servers starting together on two cores take longer than in turn
  for (const name of names) {
    const cluster = await startCluster(name, devClusterDir(name), { progress });
    copyFileSync(cluster.kubeconfigPath, devKubeconfig(name));
    progress(`${name}: ${cluster.server}  kubeconfig .dev/${name}.kubeconfig`);
  }
  progress(`try: .dev/bin/kubectl --kubeconfig .dev/${names[0]}.kubeconfig get namespaces`);
}

async function down(): Promise<void> {
  // Crossplane and the sync of make dev-crossplane run against these clusters: they go first
  await devCrossplaneDown({ quiet: true });
  const names = existsSync(devClustersDir) ? readdirSync(devClustersDir) : [];
  for (const name of names) {
    await stopCluster(devClusterDir(name), { removeData: true });
    rmSync(devKubeconfig(name), { force: true });
    console.log(`[dev-clusters] ${name} stopped, data removed`);
  }
  if (names.length === 0) console.log("[dev-clusters] none running");
}

const [verb, ...names] = process.argv.slice(2);
if (verb === "up") {
  await up(names.length > 0 ? names : ["control", "app"]);
} else if (verb === "down") {
  await down();
} else {
  console.error("usage: node test/support/dev-clusters.ts up [NAME...] | down");
  process.exitCode = 2;
}
