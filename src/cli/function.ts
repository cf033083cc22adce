import { parseArgs } from "node:util";
import { runExportFunction } from "../function/export-function.ts";
import { startFunctionServer } from "../function/server.ts";
import { createLogger } from "../log.ts";
import type { CommandHelp, FlagDefinitions } from "./help.ts";
import { UsageError } from "./usage.ts";

export const functionFlags = {
  address: { type: "string", default: "0.0.0.0:9443", value: "HOST:PORT", description: "where to serve gRPC" },
  insecure: {
    type: "boolean",
    default: false,
    description: "serve without TLS; wins over --tls-certs-dir, as in Crossplane's own function SDKs",
  },
  "tls-certs-dir": {
    type: "string",
    value: "DIR",
    env: "TLS_SERVER_CERTS_DIR",
    description:
      "a directory holding tls.crt, tls.key and ca.crt: serve TLS and require client certificates signed by ca.crt " +
      "(one of this and --insecure is needed)",
  },
  debug: { type: "boolean", short: "d", default: false, description: "log each call (one line, with its tag)" },
  "max-recv-message-size": {
    type: "string",
    default: "4",
    value: "MIB",
    description: "the largest request accepted, in MiB",
  },
} as const satisfies FlagDefinitions;

export const functionHelp: CommandHelp = {
  usage: "function [flags]",
  description:
    "Serves the composition function (apiextensions.fn.proto.v1 and v1beta1, and grpc.health.v1.Health) " +
    "until SIGTERM or SIGINT, then finishes the calls in flight. The image runs it when started with only " +
    "flags, or with none and TLS_SERVER_CERTS_DIR set, as Crossplane starts functions.",
  flags: functionFlags,
  examples: [
    "klutch-bind function --tls-certs-dir /tls/server",
    "klutch-bind function --insecure --address 127.0.0.1:9443",
  ],
};

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
