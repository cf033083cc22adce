// A real gRPC client of the function, built from our .proto files, for tests and benchmarks.
import {
  type ChannelCredentials,
  type Client,
  credentials,
  makeGenericClientConstructor,
  type ServiceError,
} from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { protoDir } from "../../src/function/proto.ts";
import { jsonToStruct, structToJson, type WireStruct } from "../../src/function/struct.ts";
import type { RunFunctionRequest, RunFunctionResponse, WireResource } from "../../src/function/wire.ts";

const definitions = loadSync(
  [
    "apiextensions/fn/proto/v1/run_function.proto",
    "apiextensions/fn/proto/v1beta1/run_function.proto",
    "grpc/health/v1/health.proto",
  ],
  { includeDirs: [protoDir], keepCase: true, enums: String, longs: Number, defaults: false, oneofs: true },
);

type Unary<Req, Rsp> = (req: Req, callback: (err: ServiceError | null, rsp: Rsp) => void) => void;
type FunctionStub = Client & { RunFunction: Unary<RunFunctionRequest, RunFunctionResponse> };
type HealthStub = Client & { Check: Unary<{ service?: string }, { status: string }> };

function stub<T>(service: string, address: string, creds: ChannelCredentials, options: object = {}): T {
  const definition = definitions[service];
  if (definition === undefined) throw new Error(`no service ${service}`);
  const Ctor = makeGenericClientConstructor(definition as never, service);
  return new Ctor(address, creds, options) as T;
}

export type FunctionClient = {
  run: (req: RunFunctionRequest) => Promise<RunFunctionResponse>;
  close: () => void;
};

export function functionClient(
  address: string,
  options: { version?: "v1" | "v1beta1"; creds?: ChannelCredentials; channelOptions?: object } = {},
): FunctionClient {
  const client = stub<FunctionStub>(
    `apiextensions.fn.proto.${options.version ?? "v1"}.FunctionRunnerService`,
    address,
    options.creds ?? credentials.createInsecure(),
    { "grpc.max_send_message_length": -1, ...options.channelOptions },
  );
  return {
    run: (req) =>
      new Promise((resolve, reject) => client.RunFunction(req, (err, rsp) => (err ? reject(err) : resolve(rsp)))),
    close: () => client.close(),
  };
}

export function healthCheck(address: string, service = ""): Promise<string> {
  const client = stub<HealthStub>("grpc.health.v1.Health", address, credentials.createInsecure());
  return new Promise((resolve, reject) =>
    client.Check({ service }, (err, rsp) => {
      client.close();
      if (err) reject(err);
      else resolve(rsp.status);
    }),
  );
}

const resource = (obj: Record<string, unknown>): WireResource => ({ resource: jsonToStruct(obj) });

/** A RunFunctionRequest from plain JSON. */
export function request(parts: {
  tag?: string;
  xr?: Record<string, unknown>;
  observed?: Record<string, Record<string, unknown>>;
  desired?: Record<string, Record<string, unknown>>;
  desiredComposite?: Record<string, unknown>;
  input?: Record<string, unknown>;
  required?: Record<string, Array<Record<string, unknown>>>;
  extra?: Record<string, Array<Record<string, unknown>>>;
}): RunFunctionRequest {
  const map = (m: Record<string, Record<string, unknown>> | undefined) =>
    m === undefined ? undefined : Object.fromEntries(Object.entries(m).map(([k, v]) => [k, resource(v)]));
  const items = (m: Record<string, Array<Record<string, unknown>>> | undefined) =>
    m === undefined
      ? undefined
      : Object.fromEntries(Object.entries(m).map(([k, v]) => [k, { items: v.map(resource) }]));
  return {
    meta: { tag: parts.tag ?? "" },
    observed: { ...(parts.xr ? { composite: resource(parts.xr) } : {}), resources: map(parts.observed) ?? {} },
    desired: {
      ...(parts.desiredComposite ? { composite: resource(parts.desiredComposite) } : {}),
      resources: map(parts.desired) ?? {},
    },
    ...(parts.input ? { input: jsonToStruct(parts.input) } : {}),
    ...(parts.required ? { required_resources: items(parts.required) } : {}),
    ...(parts.extra ? { extra_resources: items(parts.extra) } : {}),
  };
}

/** The desired composed resources of a response as plain JSON. */
export function desiredJson(rsp: RunFunctionResponse): Record<string, Record<string, unknown>> {
  return Object.fromEntries(
    Object.entries(rsp.desired?.resources ?? {}).map(([k, v]) => [k, structToJson(v.resource as WireStruct)]),
  );
}
