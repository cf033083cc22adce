// One client, two tenants: a flood of one tenant's requests that the server holds leaves the other's
// request a connection (KubeClient.forTenant, tenant-share.ts).
import assert from "node:assert/strict";
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { it } from "node:test";
import { KubeClient } from "../../src/kube/client.ts";
import { eventually } from "../support/eventually.ts";

it("answers another tenant's request while one tenant's flood is held by the server", async (t) => {
  const held: ServerResponse[] = [];
  let reached = 0;
  const server = createServer((req, res) => {
    reached++;
    const reply = () => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ ok: true }));
    if (req.url?.startsWith("/flood")) held.push(res);
    else reply();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  const port = (server.address() as AddressInfo).port;
  const client = KubeClient.fromKubeconfigText(
    `apiVersion: v1
kind: Config
clusters: [{name: fake, cluster: {server: "http://127.0.0.1:${port}", insecure-skip-tls-verify: true}}]
users: [{name: fake, user: {token: t}}]
contexts: [{name: fake, context: {cluster: fake, user: fake}}]
current-context: fake
`,
    { maxConnections: 4, maxRequestsPerTenant: 2, timeoutMs: 60_000 },
  );
  t.after(() => client.close());
  const flooding = client.forTenant("tenant-a");
  const flood = Array.from({ length: 20 }, (_, i) => flooding.request("GET", `/flood-${i}`));
  // tenant a's share is out; the rest of its flood waits on our side, not at the server
  await eventually("the flood's first requests at the server", () => assert.equal(held.length, 2));
  const answered = await Promise.race([
    client.forTenant("tenant-b").request<{ ok: boolean }>("GET", "/other"),
    new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 20_000).unref()),
  ]);
  assert.deepEqual(answered, { ok: true }, "tenant b's request waited behind tenant a's flood");
  assert.equal(reached, 3, "tenant a had two requests at the server, b one");
  // the flood goes on, two at a time, as its requests are answered
  for (let answeredFlood = 0; answeredFlood < 20; ) {
    await eventually("a flood request at the server", () => assert.ok(held.length > 0));
    const res = held.shift();
    res?.writeHead(200, { "content-type": "application/json" }).end("{}");
    answeredFlood++;
  }
  await Promise.all(flood);
});
