import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** Where `make tools` links kube-local, kubectl and crossplane. */
export const binDir = process.env.KLB_BIN_DIR ?? join(repoRoot, ".dev", "bin");

export function tool(
  name:
    | "kube-local"
    | "kubectl"
    | "crossplane"
    | "crossplane-core"
    | "crane"
    | "sample-function"
    | "kubectl-bind"
    | "konnector",
): string {
  const path = join(binDir, name);
  if (!existsSync(path)) {
    throw new Error(`${path} is missing: run "make tools" first (it builds the real binaries from Go modules)`);
  }
  return path;
}

/**
 * `make dev-clusters` keeps its clusters here; tests reuse them when they are up. KLB_DEV_DIR moves
 * it (the demo's test runs `make dev-crossplane`'s program and the demo on clusters of its own).
 */
export const devDir = process.env.KLB_DEV_DIR ?? join(repoRoot, ".dev");

export function devClusterDir(name: string): string {
  return join(devDir, "clusters", name);
}

export function devKubeconfig(name: string): string {
  return join(devDir, `${name}.kubeconfig`);
}

/**
 * Why the Crossplane CLI is missing, when it is: `make tools` records the Go module proxy's
 * refusal in .dev/bin/crossplane.unavailable. Tests that need it pass this as their skip reason.
 */
export function crossplaneUnavailable(): string | undefined {
  if (existsSync(join(binDir, "crossplane"))) return undefined;
  const recorded = join(binDir, "crossplane.unavailable");
  const first = existsSync(recorded) ? readFileSync(recorded, "utf8").split("\n")[0] : undefined;
  return `Crossplane CLI unavailable: ${first ?? "not built; run make tools"}`;
}

/**
 * Why kube-bind's own kubectl-bind and konnector (the peers `make tools` builds from
 * github.com/kube-bind/kube-bind) are missing, when they are: the Go module proxy's refusal is
 * recorded in .dev/bin/kubectl-bind.unavailable. Tests that run them pass this as their skip reason.
 */
export function kubeBindUnavailable(): string | undefined {
  if (existsSync(join(binDir, "kubectl-bind")) && existsSync(join(binDir, "konnector"))) return undefined;
  const recorded = join(binDir, "kubectl-bind.unavailable");
  const first = existsSync(recorded) ? readFileSync(recorded, "utf8").split("\n")[0] : undefined;
  return `kube-bind's kubectl-bind unavailable: ${first ?? "not built; run make tools"}`;
}

/**
 * Whether `make dev-crossplane` runs against the dev clusters: then they have Crossplane's core and
 * a sync of their own, and the tests start clusters of their own instead of sharing those.
 */
export function devCrossplaneUp(): boolean {
  return existsSync(join(devDir, "crossplane", "pids"));
}
