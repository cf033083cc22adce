import { parseArgs } from "node:util";
import { KubeConfig } from "@kubernetes/client-node";
import { KubeClient } from "../kube/client.ts";
import { createLogger } from "../log.ts";
import { startSync } from "../sync/manager.ts";
import { UsageError } from "./usage.ts";

const flags = {
  kubeconfig: { type: "string" },
  namespace: { type: "string", short: "n" },
  workers: { type: "string", default: "8" },
  qps: { type: "string", default: "200" },
  burst: { type: "string", default: "400" },
  "status-interval": { type: "string", default: "15" },
  "metrics-address": { type: "string", default: ":8080" },
  "health-address": { type: "string", default: ":8081" },
  debug: { type: "boolean", short: "d", default: false },
} as const;

function positive(name: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new UsageError(`--${name} must be a positive whole number, got "${value}"`);
  return n;
}

/** `klutch-bind sync`: mirror every AppClusterBinding's exports until SIGTERM or SIGINT. */
export async function runSync(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: flags, strict: true });
  const logger = createLogger("sync", values.debug);
  const kc = new KubeConfig();
  const kubeconfig = values.kubeconfig ?? process.env.KUBECONFIG;
  if (kubeconfig) kc.loadFromFile(kubeconfig);
  else kc.loadFromCluster();
  const clientOptions = {
    qps: positive("qps", values.qps),
    burst: positive("burst", values.burst),
    userAgent: "klutch-bind-sync",
  };
  const control = KubeClient.fromKubeConfig(kc, clientOptions);
  const sync = await startSync({
    control,
    logger,
    workers: positive("workers", values.workers),
    ...(values.namespace ? { namespace: values.namespace } : {}),
    appClientOptions: clientOptions,
    ...(values["metrics-address"] ? { metricsAddress: values["metrics-address"] } : {}),
    ...(values["health-address"] ? { healthAddress: values["health-address"] } : {}),
    resyncMs: positive("status-interval", values["status-interval"]) * 1000,
  });
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, "shutting down");
      void sync.stop().then(() => {
        control.close();
        resolve();
      });
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
  return 0;
}
