// A faster wire codec for RunFunction than @grpc/proto-loader's: requests are decoded into
// protobufjs messages and used as they are (no conversion to plain objects), and the response is
// encoded straight from what the handler returns. Desired resources passed through from earlier
// steps are therefore never copied: on a 1 MiB request that is most of the work.
import { join } from "node:path";
import protobuf from "protobufjs";
import { joinDesiredResources, rawDesiredEntries, splitDesiredResources } from "./passthrough.ts";
import { type functionServices, protobufRecursionLimit, protoDir } from "./proto.ts";
import type { RunFunctionRequest, RunFunctionResponse, WireResource } from "./wire.ts";

protobuf.util.recursionLimit = protobufRecursionLimit;
protobuf.Reader.recursionLimit = protobufRecursionLimit;

const root = new protobuf.Root();
root.loadSync(
  ["v1", "v1beta1"].map((v) => join(protoDir, `apiextensions/fn/proto/${v}/run_function.proto`)),
  { keepCase: true },
);

export type FunctionCodec = {
  decodeRequest: (bytes: Buffer) => RunFunctionRequest;
  encodeResponse: (rsp: RunFunctionResponse) => Buffer;
};

/** protobufjs's writer already gives a Buffer on Node: no copy then. */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function enumValues(pkg: string, name: string): Record<string, number> {
  return root.lookupEnum(`${pkg}.${name}`).values;
}

export function functionCodec(service: (typeof functionServices)[number]): FunctionCodec {
  const pkg = service.slice(0, service.lastIndexOf("."));
  const Request = root.lookupType(`${pkg}.RunFunctionRequest`);
  const Response = root.lookupType(`${pkg}.RunFunctionResponse`);
  const State = root.lookupType(`${pkg}.State`);
  const ready = enumValues(pkg, "Ready");
  const severity = enumValues(pkg, "Severity");
  const target = enumValues(pkg, "Target");
  const status = enumValues(pkg, "Status");
  // Our handler names enum values; the encoder wants their numbers. Messages passed through from
  // the request already carry numbers.
  const number = (values: Record<string, number>, value: unknown) =>
    typeof value === "string" ? values[value] : value;
  const resource = (r: WireResource | null | undefined) =>
    r && typeof r.ready === "string" ? { ...r, ready: number(ready, r.ready) } : r;
  return {
    decodeRequest: (bytes) => {
      let split: ReturnType<typeof splitDesiredResources> | undefined;
      try {
        split = splitDesiredResources(bytes);
      } catch (err) {
        if (!(err instanceof RangeError)) throw err;
      }
      // not well-formed: decode it whole, so protobufjs says what is wrong as it always does
      if (split === undefined) return Request.decode(bytes) as unknown as RunFunctionRequest;
      const req = Request.decode(split.rest) as unknown as RunFunctionRequest;
      if (split.entries.size > 0) {
        req.desired ??= {};
        req.desired[rawDesiredEntries] = split.entries;
      }
      return req;
    },
    encodeResponse: (rsp) => {
      const resources: Record<string, unknown> = {};
      for (const [key, r] of Object.entries(rsp.desired.resources ?? {})) resources[key] = resource(r);
      const wire = {
        ...rsp,
        desired: { ...rsp.desired, composite: resource(rsp.desired.composite), resources },
        results: rsp.results.map((r) => ({
          ...r,
          severity: number(severity, r.severity),
          target: number(target, r.target),
        })),
        conditions: rsp.conditions.map((c) => ({
          ...c,
          status: number(status, c.status),
          target: number(target, c.target),
        })),
      };
      const raw = rsp.desired[rawDesiredEntries];
      if (raw === undefined) return asBuffer(Response.encode(wire as unknown as protobuf.Message).finish());
      const { desired, ...withoutDesired } = wire;
      return joinDesiredResources(
        asBuffer(Response.encode(withoutDesired as unknown as protobuf.Message).finish()),
        asBuffer(State.encode(desired as unknown as protobuf.Message).finish()),
        raw,
        new Set(Object.keys(resources)),
      );
    },
  };
}
