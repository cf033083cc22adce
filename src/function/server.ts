// The gRPC edge: serves the function over v1 and v1beta1, the health service, TLS, shutdown.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import {
  Server,
  ServerCredentials,
  type ServerUnaryCall,
  type ServerWritableStream,
  type sendUnaryData,
  status,
} from "@grpc/grpc-js";
import type { Logger } from "pino";
import { withSafeErrors } from "../log.ts";
import { ClientCertificateCheck, clientCertificateInterceptor, mtlsCredentials } from "./client-certs.ts";
import { functionCodec } from "./codec.ts";
import { functionServices, healthService, serviceDefinition } from "./proto.ts";
import type { WireValue } from "./struct.ts";
import type { RunFunctionRequest, RunFunctionResponse } from "./wire.ts";

export type FunctionHandler = (req: RunFunctionRequest) => RunFunctionResponse | Promise<RunFunctionResponse>;

export type FunctionServerOptions = {
  /** host:port; port 0 picks a free one */
  address: string;
  /** plaintext; otherwise mTLS from tlsCertsDir */
  insecure: boolean;
  /** holds tls.crt, tls.key and ca.crt; client certificates signed by ca.crt are required */
  tlsCertsDir?: string;
  maxRecvMessageBytes: number;
  logger: Logger;
};

export type RunningFunctionServer = {
  port: number;
  /** Stops accepting calls, finishes those in flight (up to graceMs), then closes. */
  shutdown: (graceMs?: number) => Promise<void>;
};

const healthStatus = { SERVING: "SERVING", NOT_SERVING: "NOT_SERVING" } as const;

export async function startFunctionServer(
  handler: FunctionHandler,
  options: FunctionServerOptions,
): Promise<RunningFunctionServer> {
  const log = withSafeErrors(options.logger);
  const tls = options.insecure ? undefined : await readTlsFiles(options.tlsCertsDir);
  const server = new Server({
    "grpc.max_receive_message_length": options.maxRecvMessageBytes,
    "grpc.max_send_message_length": -1,
    ...(tls ? { interceptors: [clientCertificateInterceptor(new ClientCertificateCheck(tls.ca))] } : {}),
  });
  let serving: keyof typeof healthStatus = "SERVING";
  const watchers = new Set<ServerWritableStream<{ service?: string }, { status: string }>>();

  const runFunction = (
    call: ServerUnaryCall<RunFunctionRequest, RunFunctionResponse>,
    callback: sendUnaryData<RunFunctionResponse>,
  ) => {
    const started = process.hrtime.bigint();
    const req = call.request;
    const answer = (rsp: RunFunctionResponse) => {
      callback(null, rsp);
      if (log.isLevelEnabled("debug")) {
        log.debug(
          {
            tag: req.meta?.tag,
            xr: compositeRef(req),
            method: call.getPath(),
            durationMs: Number(process.hrtime.bigint() - started) / 1e6,
            results: rsp.results.map((r) => `${r.severity}: ${r.message}`),
          },
          "RunFunction",
        );
      }
    };
    // A bug of ours must not end the call without an answer Crossplane understands.
    const failed = (err: unknown) => {
      log.error({ err, tag: req.meta?.tag }, "function failed");
      answer({
        meta: { tag: req.meta?.tag ?? "" },
        desired: req.desired ?? {},
        results: [{ severity: "SEVERITY_FATAL", message: `internal error in function-klutch-bind: ${String(err)}` }],
        conditions: [],
      });
    };
    try {
      const rsp = handler(req);
      if (rsp instanceof Promise) rsp.then(answer, failed);
      else answer(rsp);
    } catch (err) {
      failed(err);
    }
  };
  for (const name of functionServices) {
    const definition = serviceDefinition(name);
    const method = definition.RunFunction;
    if (method === undefined) throw new Error(`proto: ${name} has no RunFunction`);
    const codec = functionCodec(name);
    server.addService(
      {
        ...definition,
        RunFunction: { ...method, requestDeserialize: codec.decodeRequest, responseSerialize: codec.encodeResponse },
      },
      { RunFunction: runFunction },
    );
  }

  const knownServices = new Set<string>(["", ...functionServices]);
  server.addService(serviceDefinition(healthService), {
    Check: (
      call: ServerUnaryCall<{ service?: string }, { status: string }>,
      callback: sendUnaryData<{ status: string }>,
    ) => {
      const service = call.request.service ?? "";
      if (!knownServices.has(service)) {
        callback({ code: status.NOT_FOUND, details: `unknown service ${service}` });
        return;
      }
      callback(null, { status: serving });
    },
    Watch: (call: ServerWritableStream<{ service?: string }, { status: string }>) => {
      const service = call.request.service ?? "";
      call.write({ status: knownServices.has(service) ? serving : "SERVICE_UNKNOWN" });
      watchers.add(call);
      call.on("cancelled", () => watchers.delete(call));
    },
  });

  const credentials = tls ? mtlsCredentials(tls.ca, tls.cert, tls.key) : ServerCredentials.createInsecure();
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(options.address, credentials, (err, bound) => (err ? reject(err) : resolve(bound))),
  );
  log.info({ address: options.address, port, tls: !options.insecure }, "function server listening");

  return {
    port,
    shutdown: async (graceMs = 30_000) => {
      serving = "NOT_SERVING";
      for (const w of watchers) {
        w.write({ status: serving });
        w.end();
      }
      watchers.clear();
      const timer = setTimeout(() => {
        log.warn({ graceMs }, "calls still in flight after the grace period; closing them");
        server.forceShutdown();
      }, graceMs);
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      clearTimeout(timer);
      log.info("function server stopped");
    },
  };
}

async function readTlsFiles(dir: string | undefined): Promise<{ cert: Buffer; key: Buffer; ca: Buffer }> {
  if (dir === undefined || dir === "") {
    throw new Error(
      "TLS needs --tls-certs-dir (or TLS_SERVER_CERTS_DIR) holding tls.crt, tls.key and ca.crt; or pass --insecure",
    );
  }
  const read = async (file: string) => {
    try {
      return await readFile(join(dir, file));
    } catch (err) {
      throw new Error(`TLS: cannot read ${join(dir, file)}: ${(err as Error).message}`);
    }
  };
  const [cert, key, ca] = await Promise.all([read("tls.crt"), read("tls.key"), read("ca.crt")]);
  return { cert, key, ca };
}

/** "Kind/name" of the observed XR, read straight from the Struct. */
function compositeRef(req: RunFunctionRequest): string | undefined {
  const fields = req.observed?.composite?.resource?.fields;
  if (fields === undefined) return undefined;
  const text = (v: WireValue | undefined) => (v?.kind === "stringValue" ? v.stringValue : "?");
  const metadata = fields.metadata;
  const name = metadata?.kind === "structValue" ? metadata.structValue.fields?.name : undefined;
  return `${text(fields.kind)}/${text(name)}`;
}
