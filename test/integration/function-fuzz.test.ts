// Bad input never takes the function server down: a bounded fuzz run in every `make test`
// (bench/fuzz-function.ts runs 100,000 cases).
import assert from "node:assert/strict";
import { it } from "node:test";
import { Client, credentials } from "@grpc/grpc-js";
import { pino } from "pino";
import { runExportFunction } from "../../src/function/export-function.ts";
import { startFunctionServer } from "../../src/function/server.ts";
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
    let answered = 0;
    let refused = 0;
    for (let seed = 1; seed <= 2000; seed++) {
      const outcome = await new Promise<"answered" | "refused">((resolve) =>
        raw.makeUnaryRequest(runFunctionPath, identity, identity, fuzzCase(seed), (err) =>
          resolve(err ? "refused" : "answered"),
        ),
      );
      if (outcome === "answered") answered++;
      else refused++;
    }
    raw.close();
    assert.equal(answered + refused, 2000, "every request got an answer or a gRPC status");
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
