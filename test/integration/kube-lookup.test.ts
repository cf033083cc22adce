// A client's host name lookups go through the lookup it is given (lookup.ts), over HTTP/2 and
// HTTP/1.1, on a real API server reached by name.
import assert from "node:assert/strict";
import { lookup as systemLookup } from "node:dns";
import { readFileSync } from "node:fs";
import type { LookupFunction } from "node:net";
import { describe, it } from "node:test";
import { KubeClient } from "../../src/kube/client.ts";
import { LookupGate } from "../../src/kube/lookup.ts";
import { onFileDone, testClusters } from "../support/clusters.ts";

describe("a client's host name lookups", () => {
  for (const http2 of [true, false]) {
    it(`go through the gate it is given (${http2 ? "HTTP/2" : "HTTP/1.1"})`, async () => {
      const cluster = (await testClusters()).control;
      // the same server by name: its certificate names localhost
      const text = readFileSync(cluster.kubeconfigPath, "utf8").replace(
        /https:\/\/127\.0\.0\.1:/g,
        "https://localhost:",
      );
      assert.match(text, /https:\/\/localhost:\d+/);
      const asked: string[] = [];
      const counting = ((hostname: string, options: object, callback: never) => {
        asked.push(hostname);
        return systemLookup(hostname, options, callback);
      }) as unknown as LookupFunction;
      const gate = new LookupGate({ resolve: counting });
      const client = KubeClient.fromKubeconfigText(text, { http2, lookup: gate.lookupFor("tenant-a") });
      onFileDone(async () => client.close());
      assert.match((await client.serverVersion()).gitVersion, /^v1\./);
      const namespaces = await client.list({ group: "", version: "v1", resource: "namespaces", namespaced: false });
      assert.ok(namespaces.items.length > 0);
      assert.ok(asked.length >= 1 && asked.every((h) => h === "localhost"), asked.join(", "));
      assert.equal(gate.pending("tenant-a"), 0);
    });
  }
});
