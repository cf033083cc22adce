// Bad input never takes the function server down: a bounded fuzz run in every `make test`
// (bench/fuzz-function.ts runs 100,000 cases).
import assert from "node:assert/strict";
import { it } from "node:test";
import { Client, credentials, status } from "@grpc/grpc-js";
import { pino } from "pino";
import { runExportFunction } from "../../src/function/export-function.ts";
import { serviceDefinition } from "../../src/function/proto.ts";
import { startFunctionServer } from "../../src/function/server.ts";
import type { RunFunctionResponse } from "../../src/function/wire.ts";
import { functionClient, request } from "../support/function-client.ts";
import { fuzzCase, runFunctionPath } from "../support/fuzz.ts";

it("answers 2,000 random and mutated requests and still serves a good one", async () => {
  const server = await startFunctionServer(runExportFunction, {
    address: "127.0.0.1:0",
    insecure: true,
    maxRecvMessageBytes: 4 * 1024 * 1024,
    logger: pino({ level: "silent" }),
  });
  const address = `127.0.0.1:${server.port}`;
  try {
    const raw = new Client(address, credentials.createInsecure(), { "grpc.max_send_message_length": -1 });
    const identity = (b: Buffer) => b;
    const method = serviceDefinition("apiextensions.fn.proto.v1.FunctionRunnerService").RunFunction;
    assert.ok(method);
    let answered = 0;
    const crashes: string[] = [];
    const oddRefusals: string[] = [];
    for (let seed = 1; seed <= 2000; seed++) {
      await new Promise<void>((resolve) =>
        raw.makeUnaryRequest(runFunctionPath, identity, identity, fuzzCase(seed), (err, bytes) => {
          if (err) {
            // bytes that are not a RunFunctionRequest, or too big: refused by gRPC, as it should be
            if (
              !(err.code === status.INTERNAL && /deserializ/i.test(err.details)) &&
              err.code !== status.RESOURCE_EXHAUSTED
            )
              oddRefusals.push(`seed ${seed}: ${err.code} ${err.details}`);
          } else {
            answered++;
            // a bug of ours is answered as an internal error: none may be
            const rsp = method.responseDeserialize(bytes as Buffer) as RunFunctionResponse;
            for (const r of rsp.results ?? []) {
              if (r.message.startsWith("internal error")) crashes.push(`seed ${seed}: ${r.message}`);
            }
          }
          resolve();
        }),
      );
    }
    raw.close();
    assert.deepEqual(crashes, [], "the handler never failed on its own");
    assert.deepEqual(oddRefusals, [], "every refusal is a decode or size refusal");
    assert.ok(answered > 500, `most well-formed protobufs are answered (${answered})`);
    const client = functionClient(address);
    const rsp = await client.run(
      request({
        tag: "still-alive",
        xr: {
          apiVersion: "bind.klutch.dev/v1alpha1",
          kind: "ServiceExport",
          metadata: { name: "ok" },
          spec: { xrd: "a.b" },
        },
      }),
    );
    client.close();
    assert.equal(rsp.meta.tag, "still-alive");
  } finally {
    await server.shutdown(1000);
  }
});
