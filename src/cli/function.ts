import { parseArgs } from "node:util";
import { runExportFunction } from "../function/export-function.ts";
import { startFunctionServer } from "../function/server.ts";
import { createLogger } from "../log.ts";
import { UsageError } from "./usage.ts";

export const functionFlags = {
  address: { type: "string", default: "0.0.0.0:9443" },
  insecure: { type: "boolean", default: false },
  "tls-certs-dir": { type: "string" },
  debug: { type: "boolean", short: "d", default: false },
  "max-recv-message-size": { type: "string", default: "4" },
} as const;

/** `klutch-bind function`: serve the composition function until SIGTERM or SIGINT. */
export async function runFunction(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: functionFlags, strict: true });
  const maxMiB = Number(values["max-recv-message-size"]);
  if (!Number.isFinite(maxMiB) || maxMiB <= 0) {
    throw new UsageError(
      `--max-recv-message-size must be a positive number of MiB, got "${values["max-recv-message-size"]}"`,
    );
  }
  const tlsCertsDir = values["tls-certs-dir"] ?? process.env.TLS_SERVER_CERTS_DIR;
  const logger = createLogger("function", values.debug);
  const server = await startFunctionServer(runExportFunction, {
    address: values.address,
    // as Crossplane's own SDKs do: --insecure wins over certificates
    insecure: values.insecure,
    tlsCertsDir,
    maxRecvMessageBytes: Math.round(maxMiB * 1024 * 1024),
    logger,
  });
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, "shutting down: finishing calls in flight");
      void server.shutdown().then(resolve);
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
  return 0;
}
