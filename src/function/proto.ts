// The service definitions, loaded once from our .proto files.
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import type { ServiceDefinition } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";

export const protoDir = fileURLToPath(new URL("../../proto", import.meta.url));

export const functionServices = [
  "apiextensions.fn.proto.v1.FunctionRunnerService",
  "apiextensions.fn.proto.v1beta1.FunctionRunnerService",
] as const;
export const healthService = "grpc.health.v1.Health";

// protobufjs stops at 100 levels of message nesting, which a google.protobuf.Struct reaches at a
// JSON depth of about 48 (each level is a Struct and a Value). Crossplane's Go side allows 10,000.
// The server's RunFunction codec (codec.ts) raises the limit of our protobufjs to a JSON depth of
// ~500 that JavaScript's stack still handles. Here the same is done for the protobufjs copy that
// @grpc/proto-loader codes with: it serves the other methods here and every client made from these
// definitions (the tests' and the benchmarks').
const protobufOfProtoLoader = createRequire(import.meta.resolve("@grpc/proto-loader"))("protobufjs") as {
  util: { recursionLimit: number };
  Reader: { recursionLimit: number };
};
export const protobufRecursionLimit = 1000;
protobufOfProtoLoader.util.recursionLimit = protobufRecursionLimit;
protobufOfProtoLoader.Reader.recursionLimit = protobufRecursionLimit;

const definitions = loadSync(
  [
    "apiextensions/fn/proto/v1/run_function.proto",
    "apiextensions/fn/proto/v1beta1/run_function.proto",
    "grpc/health/v1/health.proto",
  ],
  { includeDirs: [protoDir], keepCase: true, enums: String, longs: Number, defaults: false, oneofs: true },
);

export function serviceDefinition(name: (typeof functionServices)[number] | typeof healthService): ServiceDefinition {
  const definition = definitions[name];
  if (definition === undefined || !("RunFunction" in definition || "Check" in definition)) {
    throw new Error(`proto: service ${name} is not defined in ${protoDir}`);
  }
  return definition as ServiceDefinition;
}
