// Earlier steps' desired resources pass through as raw bytes; the response must decode exactly as
// if they had been decoded and encoded again.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { functionCodec } from "../../src/function/codec.ts";
import { rawDesiredEntries, splitDesiredResources } from "../../src/function/passthrough.ts";
import { serviceDefinition } from "../../src/function/proto.ts";
import { responseTo, setComposed } from "../../src/function/response.ts";
import { structToJson, type WireStruct } from "../../src/function/struct.ts";
import type { RunFunctionResponse } from "../../src/function/wire.ts";
import { request } from "../support/function-client.ts";

const service = "apiextensions.fn.proto.v1.FunctionRunnerService";
const method = serviceDefinition(service).RunFunction;
if (method === undefined) throw new Error("no RunFunction");
const codec = functionCodec(service);
const encodeRequest = (req: ReturnType<typeof request>) => method.requestSerialize(req);
const decodeResponse = (bytes: Buffer) => method.responseDeserialize(bytes) as RunFunctionResponse;
const json = (rsp: RunFunctionResponse) =>
  Object.fromEntries(
    Object.entries(rsp.desired?.resources ?? {}).map(([k, v]) => [
      k,
      [structToJson(v.resource as WireStruct), v.ready],
    ]),
  );

describe("desired resources passed through as raw bytes", () => {
  const earlier = {
    a: { apiVersion: "v1", kind: "ConfigMap", data: { v: "x".repeat(70_000), ü: "ünïcode" } },
    b: { apiVersion: "v1", kind: "Secret", metadata: { name: "b" } },
  };
  const bytes = encodeRequest(
    request({
      tag: "t",
      xr: { apiVersion: "x/v1", kind: "X" },
      desired: earlier,
      desiredComposite: { apiVersion: "x/v1", kind: "X", status: { s: 1 } },
    }),
  );

  it("hands the handler a request without them, and puts them back in the response", () => {
    const req = codec.decodeRequest(bytes);
    assert.deepEqual(Object.keys(req.desired?.resources ?? {}), []);
    assert.deepEqual([...(req.desired?.[rawDesiredEntries]?.keys() ?? [])], ["a", "b"]);
    assert.deepEqual(structToJson(req.desired?.composite?.resource as WireStruct), {
      apiVersion: "x/v1",
      kind: "X",
      status: { s: 1 },
    });
    const rsp = responseTo(req, 60);
    setComposed(rsp, "mine", { apiVersion: "v1", kind: "ConfigMap", data: { k: "v" } }, true);
    const back = decodeResponse(codec.encodeResponse(rsp));
    assert.deepEqual(json(back), {
      a: [earlier.a, undefined],
      b: [earlier.b, undefined],
      mine: [{ apiVersion: "v1", kind: "ConfigMap", data: { k: "v" } }, "READY_TRUE"],
    });
    assert.deepEqual(structToJson(back.desired.composite?.resource as WireStruct), {
      apiVersion: "x/v1",
      kind: "X",
      status: { s: 1 },
    });
    assert.equal(back.meta.tag, "t");
  });

  it("lets a resource the handler sets replace one of the same name", () => {
    const req = codec.decodeRequest(bytes);
    const rsp = responseTo(req, 60);
    setComposed(rsp, "b", { apiVersion: "v1", kind: "Secret", metadata: { name: "mine" } }, false);
    const back = json(decodeResponse(codec.encodeResponse(rsp)));
    assert.deepEqual(Object.keys(back).sort(), ["a", "b"]);
    assert.deepEqual(back.b?.[0], { apiVersion: "v1", kind: "Secret", metadata: { name: "mine" } });
  });

  it("keeps the last of two entries with the same name, as protobuf maps do", () => {
    const first = encodeRequest(request({ desired: { dup: { n: 1 } } }));
    const second = encodeRequest(request({ desired: { dup: { n: 2 } } }));
    const merged = Buffer.concat([first, second]); // two desired fields: protobuf merges them
    const { entries } = splitDesiredResources(merged);
    assert.deepEqual([...entries.keys()], ["dup"]);
    const back = json(decodeResponse(codec.encodeResponse(responseTo(codec.decodeRequest(merged), 60))));
    assert.deepEqual(back.dup?.[0], { n: 2 });
  });

  it("leaves a request without desired resources as it is, and refuses bytes that are not protobuf", () => {
    const plain = encodeRequest(request({ tag: "p" }));
    assert.equal(splitDesiredResources(plain).rest, plain);
    assert.throws(() => splitDesiredResources(Buffer.from([0x1a, 0xff, 0xff])), RangeError);
    assert.throws(() => codec.decodeRequest(Buffer.from([0x1a, 0xff, 0xff])));
  });
});
