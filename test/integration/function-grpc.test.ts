// The function over real gRPC on loopback: both protocol versions, the requirements round trip,
// pass-through, mTLS, message limits, health, bad input, shutdown.
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { credentials, status } from "@grpc/grpc-js";
import { pino } from "pino";
import { composedKeys } from "../../src/function/composed-keys.ts";
import { runExportFunction } from "../../src/function/export-function.ts";
import { type FunctionHandler, type RunningFunctionServer, startFunctionServer } from "../../src/function/server.ts";
import { structToJson, type WireStruct } from "../../src/function/struct.ts";
import type { RunFunctionResponse } from "../../src/function/wire.ts";
import { seedClaims, xrd } from "../fixtures/xrds.ts";
import { makePki } from "../support/certs.ts";
import { desiredJson, functionClient, healthCheck, request } from "../support/function-client.ts";

const silent = pino({ level: "silent" });
const xr = {
  apiVersion: "bind.klutch.dev/v1alpha1",
  kind: "ServiceExport",
  metadata: { name: "postgresql" },
  spec: { xrd: "postgresqlinstances.anynines.com", permissionClaims: seedClaims },
};
const sampleXrd = xrd({});

async function serve(handler: FunctionHandler = runExportFunction, extra: { maxRecvMessageBytes?: number } = {}) {
  const server = await startFunctionServer(handler, {
    address: "127.0.0.1:0",
    insecure: true,
    maxRecvMessageBytes: extra.maxRecvMessageBytes ?? 4 * 1024 * 1024,
    logger: silent,
  });
  return { server, address: `127.0.0.1:${server.port}` };
}

function grpcCode(err: unknown): number | undefined {
  return typeof err === "object" && err !== null && "code" in err ? (err.code as number) : undefined;
}

describe("the function over gRPC", () => {
  let server: RunningFunctionServer;
  let address: string;
  before(async () => ({ server, address } = await serve()));
  after(() => server.shutdown());

  for (const version of ["v1", "v1beta1"] as const) {
    it(`answers on ${version}: asks for the XRD, then composes template and RBAC`, async () => {
      const client = functionClient(address, { version });
      try {
        const first = await client.run(request({ tag: "t-1", xr }));
        assert.equal(first.meta.tag, "t-1");
        assert.deepEqual({ nanos: 0, ...first.meta.ttl }, { seconds: 60, nanos: 0 });
        assert.deepEqual(first.requirements?.resources?.xrd, {
          api_version: "apiextensions.crossplane.io/v2",
          kind: "CompositeResourceDefinition",
          match_name: "postgresqlinstances.anynines.com",
          match: "match_name",
        });
        assert.deepEqual(first.desired.resources ?? {}, {}, "nothing composed before the XRD is known");

        const second = await client.run(request({ tag: "t-2", xr, required: { xrd: [sampleXrd] } }));
        assert.equal(second.meta.tag, "t-2");
        assert.deepEqual(second.requirements, first.requirements, "requirements are stable");
        const desired = desiredJson(second);
        assert.deepEqual(Object.keys(desired).sort(), Object.values(composedKeys).sort());
        assert.deepEqual(desired[composedKeys.template]?.spec, {
          APIServiceSelector: { group: "anynines.com", resource: "postgresqlinstances", version: "v1" },
          permissionClaims: seedClaims,
        });
        const exported = second.conditions.find((c) => c.type === "Exported");
        assert.equal(exported?.status, "STATUS_CONDITION_TRUE");
        const composite = structToJson(second.desired.composite?.resource as WireStruct);
        assert.deepEqual(composite.status, {
          exported: {
            group: "anynines.com",
            resource: "postgresqlinstances",
            version: "v1",
            kind: "PostgresqlInstance",
            scope: "Namespaced",
          },
          template: { name: "postgresql", namespace: "crossplane-system" },
        });
        assert.equal(composite.spec, undefined, "never sets the XR's spec");
      } finally {
        client.close();
      }
    });
  }

  it("reads the XRD from the deprecated extra_resources too", async () => {
    const client = functionClient(address);
    const rsp = await client.run(request({ xr, extra: { xrd: [sampleXrd] } }));
    client.close();
    assert.equal(rsp.conditions.find((c) => c.type === "Exported")?.status, "STATUS_CONDITION_TRUE");
  });

  it("passes the desired state of earlier steps through untouched", async () => {
    const earlier = {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "earlier" },
      data: { n: "1.5", nested: "x" },
    };
    const client = functionClient(address);
    const rsp = await client.run(
      request({
        xr,
        required: { xrd: [sampleXrd] },
        desired: { earlier },
        desiredComposite: { apiVersion: xr.apiVersion, kind: xr.kind, status: { fromEarlierStep: true } },
      }),
    );
    client.close();
    assert.deepEqual(desiredJson(rsp).earlier, earlier);
    const composite = structToJson(rsp.desired.composite?.resource as WireStruct);
    assert.equal((composite.status as Record<string, unknown>).fromEarlierStep, true);
  });

  it("marks composed resources ready once Crossplane observed them", async () => {
    const client = functionClient(address);
    const rsp = await client.run(
      request({
        xr,
        required: { xrd: [sampleXrd] },
        observed: { [composedKeys.template]: { apiVersion: "x/v1", kind: "T" } },
      }),
    );
    client.close();
    assert.equal(rsp.desired.resources?.[composedKeys.template]?.ready, "READY_TRUE");
    assert.notEqual(rsp.desired.resources?.[composedKeys.clusterRole]?.ready, "READY_TRUE");
  });

  it("reports a missing XRD as Exported=False XRDNotFound with a warning, composing nothing", async () => {
    const client = functionClient(address);
    const rsp = await client.run(request({ xr, required: { xrd: [] } }));
    client.close();
    const condition = rsp.conditions.find((c) => c.type === "Exported");
    assert.equal(condition?.status, "STATUS_CONDITION_FALSE");
    assert.equal(condition?.reason, "XRDNotFound");
    assert.deepEqual(
      rsp.results.map((r) => r.severity),
      ["SEVERITY_WARNING"],
    );
    assert.deepEqual(rsp.desired.resources ?? {}, {});
  });

  it("answers invalid input with a fatal result naming field and value", async () => {
    const client = functionClient(address);
    const bad = {
      ...xr,
      spec: {
        xrd: xr.spec.xrd,
        permissionClaims: [{ group: "", resource: "secrets", version: "v1", selector: { owner: "Nobody" } }],
      },
    };
    const rsp = await client.run(request({ xr: bad, required: { xrd: [sampleXrd] } }));
    const badVersion = await client.run(
      request({ xr: { ...xr, spec: { xrd: xr.spec.xrd, version: "v7" } }, required: { xrd: [sampleXrd] } }),
    );
    const badInput = await client.run(
      request({ xr, input: { apiVersion: "bind.klutch.dev/v1alpha1", kind: "Input", ttlSeconds: -1 } }),
    );
    client.close();
    assert.deepEqual(
      rsp.results.map((r) => [r.severity, r.message]),
      [
        [
          "SEVERITY_FATAL",
          'spec.permissionClaims[0].selector.owner: must be one of "Provider", "Consumer", got "Nobody"',
        ],
      ],
    );
    assert.match(badVersion.results[0]?.message ?? "", /^spec\.version: .*got "v7"$/);
    assert.match(badInput.results[0]?.message ?? "", /input\.ttlSeconds: must be a positive whole number, got -1/);
  });

  it("takes defaults from its input", async () => {
    const client = functionClient(address);
    const rsp = await client.run(
      request({
        xr,
        required: { xrd: [sampleXrd] },
        input: {
          apiVersion: "bind.klutch.dev/v1alpha1",
          kind: "Input",
          ttlSeconds: 15,
          templateNamespace: "klutch",
          syncServiceAccount: { name: "syncer", namespace: "klutch" },
        },
      }),
    );
    client.close();
    assert.deepEqual({ nanos: 0, ...rsp.meta.ttl }, { seconds: 15, nanos: 0 });
    const desired = desiredJson(rsp);
    assert.equal((desired[composedKeys.template]?.metadata as { namespace?: string } | undefined)?.namespace, "klutch");
    assert.deepEqual(desired[composedKeys.clusterRoleBinding]?.subjects, [
      { kind: "ServiceAccount", name: "syncer", namespace: "klutch" },
    ]);
  });

  it("reports SERVING on the health service", async () => {
    assert.equal(await healthCheck(address), "SERVING");
    assert.equal(await healthCheck(address, "apiextensions.fn.proto.v1.FunctionRunnerService"), "SERVING");
    await assert.rejects(healthCheck(address, "no.such.Service"), (err: unknown) => grpcCode(err) === status.NOT_FOUND);
  });

  it("survives malformed requests and serves the next one", async () => {
    const { Client } = await import("@grpc/grpc-js");
    const raw = new Client(address, credentials.createInsecure());
    const garbage = [Buffer.from([0xff, 0xff, 0xff]), Buffer.from("not a protobuf at all"), Buffer.alloc(1000, 0x0a)];
    for (const bytes of garbage) {
      await new Promise<void>((resolve) => {
        raw.makeUnaryRequest(
          "/apiextensions.fn.proto.v1.FunctionRunnerService/RunFunction",
          (b: Buffer) => b,
          (b: Buffer) => b,
          bytes,
          () => resolve(),
        );
      });
    }
    raw.close();
    const client = functionClient(address);
    const rsp = await client.run(request({ tag: "after-garbage", xr }));
    client.close();
    assert.equal(rsp.meta.tag, "after-garbage");
  });
});

describe("message size limits", () => {
  // ~5 MiB of earlier desired state, as a long pipeline would send
  const big = request({
    xr,
    desired: Object.fromEntries(
      Array.from({ length: 40 }, (_, i) => [
        `blob-${i}`,
        { apiVersion: "v1", kind: "ConfigMap", data: { v: "x".repeat(128 * 1024) } },
      ]),
    ),
  });

  it("refuses a 5 MiB request at the default 4 MiB limit with RESOURCE_EXHAUSTED", async () => {
    const { server, address } = await serve();
    const client = functionClient(address);
    await assert.rejects(client.run(big), (err: unknown) => {
      assert.equal(grpcCode(err), status.RESOURCE_EXHAUSTED);
      assert.match(String(err), /larger than max/);
      return true;
    });
    client.close();
    await server.shutdown();
  });

  it("accepts it when the limit is raised", async () => {
    const { server, address } = await serve(runExportFunction, { maxRecvMessageBytes: 8 * 1024 * 1024 });
    const client = functionClient(address, { channelOptions: { "grpc.max_receive_message_length": -1 } });
    const rsp = await client.run(big);
    client.close();
    await server.shutdown();
    assert.equal(Object.keys(rsp.desired.resources ?? {}).length, 40);
  });
});

describe("mutual TLS", () => {
  const pki = makePki();
  let server: RunningFunctionServer;
  let address: string;
  before(async () => {
    server = await startFunctionServer(runExportFunction, {
      address: "127.0.0.1:0",
      insecure: false,
      tlsCertsDir: pki.serverDir,
      maxRecvMessageBytes: 4 * 1024 * 1024,
      logger: silent,
    });
    address = `127.0.0.1:${server.port}`;
  });
  after(() => server.shutdown());

  it("accepts a client certificate from its CA", async () => {
    const client = functionClient(address, { creds: credentials.createSsl(pki.ca, pki.client.key, pki.client.cert) });
    const rsp = await client.run(request({ tag: "tls", xr }));
    client.close();
    assert.equal(rsp.meta.tag, "tls");
  });

  it("accepts the client certificate Crossplane issues, which OpenSSL alone calls self-signed", async () => {
    const pem = pki.crossplaneLikeClient.cert.toString();
    assert.equal(new X509Certificate(pem).subject, new X509Certificate(pki.ca).subject, "subject is the CA's");
    const client = functionClient(address, {
      creds: credentials.createSsl(pki.ca, pki.crossplaneLikeClient.key, pki.crossplaneLikeClient.cert),
    });
    const rsp = await client.run(request({ tag: "crossplane", xr }));
    client.close();
    assert.equal(rsp.meta.tag, "crossplane");
  });

  it("refuses a client without a certificate, or with one from another CA, before reading its request", async () => {
    for (const [creds, reason] of [
      [credentials.createSsl(pki.ca), /a client certificate is required/],
      [
        credentials.createSsl(pki.ca, pki.foreignClient.key, pki.foreignClient.cert),
        /client certificate \(CN=foreign-client\) is not signed by a CA of ca\.crt/,
      ],
    ] as const) {
      const client = functionClient(address, { creds });
      await assert.rejects(client.run(request({ xr })), (err: unknown) => {
        assert.equal(grpcCode(err), status.UNAUTHENTICATED);
        assert.match(String((err as Error).message), reason);
        return true;
      });
      client.close();
    }
  });

  it("refuses a plaintext client", async () => {
    const client = functionClient(address);
    await assert.rejects(client.run(request({ xr })), (err: unknown) => grpcCode(err) === status.UNAVAILABLE);
    client.close();
  });
});

describe("graceful shutdown", () => {
  it("finishes a call in flight, then refuses new ones", async () => {
    let received!: () => void;
    const gotCall = new Promise<void>((resolve) => {
      received = resolve;
    });
    const slow: FunctionHandler = async (req) => {
      received();
      await new Promise((r) => setTimeout(r, 500));
      return runExportFunction(req);
    };
    const { server, address } = await serve(slow);
    const client = functionClient(address);
    const inFlight = client.run(request({ tag: "in-flight", xr }));
    await gotCall;
    const stopped = server.shutdown();
    const rsp: RunFunctionResponse = await inFlight;
    assert.equal(rsp.meta.tag, "in-flight");
    await stopped;
    await assert.rejects(client.run(request({ xr })), (err: unknown) => grpcCode(err) === status.UNAVAILABLE);
    client.close();
  });
});
