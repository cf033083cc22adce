// An answer fuzzer: real list and watch answers of a real API server, mutated thousands of ways
// (cut, bytes flipped, keys dropped, kinds and versions changed, HTML around them, invalid UTF-8)
// and served to the client. Property: every answer is either refused with one of the client's two
// errors, or decoded into objects that are all well-formed objects of the listed resource, none
// invented; an item is only ever missing from a result when the mutation removed it (or broke its
// name). What stays possible, a valid answer that lies, is why the sync deletes nothing without a
// NotFound from a direct GET (sync-hostile.test.ts). The process never dies (an unhandled
// rejection fails the run).
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { refs } from "../../src/api/resources.ts";
import { KubeApiError, KubeClient, KubeDecodeError, type ResourceRef } from "../../src/kube/client.ts";
import { type Mutation, mutators } from "../support/answer-mutations.ts";
import { clientConfig, onFileDone, testClusters, testNamespace } from "../support/clusters.ts";
import { random } from "../support/fuzz.ts";
import { loopbackKubeconfig } from "../support/hostile-cluster.ts";

const cases = Number(process.env.KLB_FUZZ_ANSWERS ?? 3000);

describe("answers of a real API server, mutated", () => {
  let server: Server;
  let serve: Mutation = { body: Buffer.alloc(0), contentType: "application/json", dropped: new Set() };
  let client: KubeClient;
  let realList = "";
  let realWatch = "";
  let namespace = "";
  const names: string[] = [];
  const unhandled: unknown[] = [];
  const onUnhandled = (err: unknown) => unhandled.push(err);

  before(async () => {
    process.on("unhandledRejection", onUnhandled);
    const { app } = await testClusters();
    const real = KubeClient.fromConfig(clientConfig(app));
    onFileDone(async () => real.close());
    namespace = await testNamespace(app, "fuzz");
    for (let i = 0; i < 6; i++) {
      const name = `cm-${i}`;
      names.push(name);
      await real.create(refs.configMaps, {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name, namespace, labels: { fuzz: "yes" } },
        data: { n: String(i), text: "é✓".repeat(i) },
      });
    }
    // the answers exactly as the API server sent them
    realList = await real
      .request<unknown>("GET", `/api/v1/namespaces/${namespace}/configmaps?labelSelector=fuzz%3Dyes`)
      .then((b) => JSON.stringify(b));
    const listed = await real.list(refs.configMaps, { namespace, labelSelector: "fuzz=yes" });
    const lines: string[] = [];
    const abort = new AbortController();
    const watching = real.watch(
      refs.configMaps,
      { namespace, resourceVersion: "0", labelSelector: "fuzz=yes", allowBookmarks: false },
      (e) => {
        lines.push(JSON.stringify(e));
        if (lines.length === listed.items.length) abort.abort();
      },
      abort.signal,
    );
    await watching;
    realWatch = `${lines.join("\n")}\n`;

    server = createServer((_req, res) => {
      res.writeHead(200, { "content-type": serve.contentType });
      res.end(serve.body);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    client = KubeClient.fromKubeconfigText(loopbackKubeconfig((server.address() as AddressInfo).port), { qps: 0 });
  });

  after(async () => {
    client?.close();
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
    process.off("unhandledRejection", onUnhandled);
  });

  const ref: ResourceRef = refs.configMaps;

  it(`lists: ${cases} mutated answers, each refused or decoded whole`, async () => {
    const outcomes = { refused: 0, decoded: 0 };
    for (let seed = 1; seed <= cases; seed++) {
      const rng = random(seed);
      const mutated = rng.pick(mutators)(rng, realList);
      serve = { ...mutated, dropped: mutated.dropped ?? new Set() };
      try {
        // the kind as an informer knows it after its first list
        const { items } = await client.list(ref, { namespace, labelSelector: "fuzz=yes", kind: "ConfigMap" });
        outcomes.decoded++;
        for (const item of items) {
          assert.equal(item.apiVersion, "v1", `seed ${seed}`);
          assert.equal(item.kind, "ConfigMap", `seed ${seed}`);
          assert.equal(item.metadata.namespace, namespace, `seed ${seed}`);
          assert.ok(typeof item.metadata.name === "string" && item.metadata.name !== "", `seed ${seed}`);
        }
        const got = new Set(items.map((i) => i.metadata.name));
        const body = serve.body.toString("utf8");
        for (const name of got) assert.ok(body.includes(`"name":"${name}"`), `seed ${seed}: ${name} invented`);
        for (const name of names) {
          // lost only when the mutation took it out (or broke its name)
          const intact = !serve.dropped.has(name) && body.includes(`"name":"${name}"`);
          assert.ok(got.has(name) || !intact, `seed ${seed}: ${name} lost though the answer held it`);
        }
      } catch (err) {
        assert.ok(err instanceof KubeDecodeError || err instanceof KubeApiError, `seed ${seed}: ${String(err)}`);
        outcomes.refused++;
      }
    }
    process.stderr.write(
      `[answer fuzz] lists: ${cases} cases, ${outcomes.refused} refused, ${outcomes.decoded} decoded\n`,
    );
    assert.ok(outcomes.refused > cases / 2, "most mutations are refused");
    assert.deepEqual(unhandled, []);
  });

  it(`watches: ${cases} mutated streams, each refused or decoded event by event`, async () => {
    let refused = 0;
    for (let seed = 1; seed <= cases; seed++) {
      const rng = random(seed + 1_000_000);
      const mutator = rng.pick(mutators.slice(0, 5));
      serve = { ...mutator(rng, realWatch), dropped: new Set() };
      const seen: string[] = [];
      try {
        await client.watch(
          ref,
          { namespace, resourceVersion: "1", kind: "ConfigMap" },
          (e) => {
            assert.ok(["ADDED", "MODIFIED", "DELETED"].includes(e.type), `seed ${seed}`);
            assert.equal(e.object.kind, "ConfigMap", `seed ${seed}`);
            assert.equal(e.object.metadata.namespace, namespace, `seed ${seed}`);
            seen.push(e.object.metadata.name);
          },
          new AbortController().signal,
        );
      } catch (err) {
        assert.ok(err instanceof KubeDecodeError || err instanceof KubeApiError, `seed ${seed}: ${String(err)}`);
        refused++;
      }
      const body = serve.body.toString("utf8");
      for (const name of seen)
        assert.ok(body.includes(`"name":"${name}"`), `seed ${seed}: an event for ${name} invented`);
    }
    process.stderr.write(`[answer fuzz] watches: ${cases} cases, ${refused} refused\n`);
    assert.deepEqual(unhandled, []);
  });
});
