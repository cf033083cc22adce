// Where a binding's kubeconfig may send the sync: not to this host (loopback), link-local addresses
// (cloud metadata) or the service network, unless --allow-loopback-app-servers allows loopback.
// A loopback listener counts the connections made: a refused binding makes none.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { refs } from "../../src/api/resources.ts";
import { type Condition, conditionOf } from "../../src/kube/conditions.ts";
import { onFileDone } from "../support/clusters.ts";
import { type CountingListener, countingListener } from "../support/counting-listener.ts";
import { eventually } from "../support/eventually.ts";
import { stopProcess, testSyncFlags } from "../support/processes.ts";
import { type SyncEnv, syncEnv } from "../support/sync-env.ts";
import { repoRoot } from "../support/tools.ts";

/** The app cluster's kubeconfig with another server URL. */
function pointedAt(env: SyncEnv, server: string): string {
  const text = env.appKubeconfig.replace(/server: \S+/, `server: ${server}`);
  assert.ok(text.includes(`server: ${server}`));
  return text;
}

async function connected(env: SyncEnv, name: string): Promise<Condition | undefined> {
  const binding = await env.controlClient.get(refs.bindings, name, env.bindingNamespace);
  return conditionOf(binding, "Connected");
}

describe("app cluster servers the sync must not reach", () => {
  let strict: SyncEnv;
  let allowing: SyncEnv;
  let listener: CountingListener;

  before(async () => {
    listener = await countingListener();
    strict = await syncEnv({ allowLoopbackAppServers: false });
    allowing = await syncEnv();
  });

  it("refuses 127.0.0.1, a name resolving to it and 169.254.169.254 by default: Connected=False naming the flag, no connection", async () => {
    const cases: Array<[string, string, RegExp]> = [
      [
        "literal",
        `https://127.0.0.1:${listener.port}`,
        /127\.0\.0\.1, a loopback address.*--allow-loopback-app-servers/,
      ],
      [
        "named",
        `https://localhost:${listener.port}`,
        /localhost resolves to (127\.0\.0\.1|::1), a loopback address.*--allow-loopback-app-servers/,
      ],
      ["mapped", `https://[::ffff:127.0.0.1]:${listener.port}`, /a loopback address.*--allow-loopback-app-servers/],
      ["metadata", "https://169.254.169.254", /169\.254\.169\.254, a link-local address.*always refused/],
      // the real app cluster, which answers: refused all the same
      ["real", "", /127\.0\.0\.1, a loopback address/],
    ];
    for (const [name, server] of cases) {
      await strict.bindWith(name, server === "" ? strict.appKubeconfig : pointedAt(strict, server));
    }
    for (const [name, , why] of cases) {
      await eventually(`${name}: Connected=False, ServerAddressRefused`, async () => {
        const condition = await connected(strict, name);
        assert.equal(condition?.reason, "ServerAddressRefused", JSON.stringify(condition));
        assert.equal(condition?.status, "False");
        assert.match(condition?.message ?? "", why);
      });
    }
    // every binding was looked at (its condition says so): no connection was made
    assert.equal(listener.accepted(), 0, "no connection to the loopback listener");
  });

  it("with --allow-loopback-app-servers, binds the loopback app cluster and connects there; link-local stays refused", async () => {
    await allowing.bind("real", []);
    await allowing.ready("real");
    for (const [name, server] of [
      ["literal", `https://127.0.0.1:${listener.port}`],
      ["named", `https://localhost:${listener.port}`],
    ] as const) {
      const before = listener.accepted();
      await allowing.bindWith(name, pointedAt(allowing, server));
      await eventually(`${name}: the sync connects to the listener`, () => {
        assert.ok(listener.accepted() > before, `${listener.accepted()} connections`);
      });
    }
    await allowing.bindWith("metadata", pointedAt(allowing, "https://169.254.169.254"));
    await eventually("metadata: ServerAddressRefused", async () => {
      const condition = await connected(allowing, "metadata");
      assert.equal(condition?.reason, "ServerAddressRefused", JSON.stringify(condition));
      assert.match(condition?.message ?? "", /link-local/);
    });
  });

  it("klutch-bind sync --service-cidr refuses servers in the service network, loopback allowed or not", async () => {
    const env = await syncEnv({ inProcess: false });
    const sync = spawn(
      process.execPath,
      [
        join(repoRoot, "src/cli/main.ts"),
        "sync",
        "--kubeconfig",
        env.control.kubeconfigPath,
        "--namespace",
        env.bindingNamespace,
        ...testSyncFlags,
        // the test's app cluster stands in for a service of the control plane's cluster
        "--service-cidr",
        "10.96.0.0/12,127.0.0.0/8",
      ],
      { stdio: ["ignore", "ignore", "inherit"] },
    );
    onFileDone(() => stopProcess(sync));
    await env.bind("service", []);
    await eventually(
      "Connected=False, ServerAddressRefused naming the service network",
      async () => {
        const condition = await connected(env, "service");
        assert.equal(condition?.reason, "ServerAddressRefused", JSON.stringify(condition));
        assert.match(
          condition?.message ?? "",
          /127\.0\.0\.1, in the control plane's service network 127\.0\.0\.0\/8.*--service-cidr/,
        );
      },
      60_000,
    );
  });
});
