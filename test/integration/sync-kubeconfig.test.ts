// A binding's kubeconfig Secret is written by users: the sync must not run its commands or read
// files it names (its own service account token, say).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { before, describe, it } from "node:test";
import { conditionOf } from "../../src/kube/conditions.ts";
import { refs } from "../../src/sync/resources.ts";
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
});
