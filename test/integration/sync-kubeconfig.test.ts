// A binding's kubeconfig Secret is written by users: the sync must not run its commands or read
// files it names (its own service account token, say), and restarts a binding only when what its
// client is made of changed.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { refs } from "../../src/api/resources.ts";
import { conditionOf } from "../../src/kube/conditions.ts";
import { eventually } from "../support/eventually.ts";
import { type SyncEnv, syncEnv } from "../support/sync-env.ts";

describe("the sync and a binding's kubeconfig", () => {
  let env: SyncEnv;
  before(async () => {
    env = await syncEnv();
  });

  it("refuses an exec plugin or a file reference with InvalidKubeconfig, and runs nothing", async () => {
    const app = readFileSync(env.app.kubeconfigPath, "utf8");
    const marker = `/tmp/klb-exec-ran-${process.pid}`;
    const unsafe = app.replace(
      / {4}client-key-data: .*/,
      `    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/sh\n      args: [-c, "touch ${marker}"]`,
    );
    await env.bindWith("unsafe", unsafe);
    await eventually("InvalidKubeconfig reported", async () => {
      const read = await env.controlClient.get(refs.bindings, "unsafe", env.bindingNamespace);
      const connected = conditionOf(read, "Connected");
      assert.equal(connected?.reason, "InvalidKubeconfig");
      assert.match(connected?.message ?? "", /user "[^"]+" runs a command \(exec\)/);
    });
    assert.throws(() => readFileSync(marker), /ENOENT/, "the exec command never ran");
  });

  it("goes on through a change to its Secret that keeps the kubeconfig, and restarts for a new kubeconfig", async () => {
    await env.bindWith("steady", env.appKubeconfig);
    await env.ready("steady");
    const syncOf = () => env.sync?.controller.exportSyncs.find((s) => s.ctx.binding.name === "steady");
    const first = syncOf();
    assert.ok(first, "the binding's export runs");
    // someone labels the Secret: nothing its client is made of changed
    await env.controlClient.mergePatch(refs.secrets, "steady-kubeconfig", env.bindingNamespace, {
      metadata: { labels: { "example.com/team": "a" } },
    });
    await sleep(3000); // the test sync looks at every binding each second
    assert.equal(syncOf(), first, "the export went on, caches and watches kept");
    // the kubeconfig itself changed (the same cluster, written anew): a new client, a new start
    await env.controlClient.mergePatch(refs.secrets, "steady-kubeconfig", env.bindingNamespace, {
      data: { kubeconfig: Buffer.from(`${env.appKubeconfig}\n# rotated\n`).toString("base64") },
    });
    await eventually("restarted with the new kubeconfig", () => {
      const now = syncOf();
      assert.ok(now !== undefined && now !== first);
    });
    await env.ready("steady");
  });
});
