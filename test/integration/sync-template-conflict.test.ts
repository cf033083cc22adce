// Issue 24 point 13, on real API servers: two templates exporting the same API. Which one a
// binding followed (and so which claims applied) depended on the order of the informer's cache;
// now the binding refuses the export, naming both templates, and `klutch-bind exports` shows the
// conflict. With one of them gone, the binding is Ready again.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { describe, it } from "node:test";
import { promisify } from "node:util";
import { refs } from "../../src/api/resources.ts";
import { conditionOf } from "../../src/kube/conditions.ts";
import { eventually } from "../support/eventually.ts";
import { syncEnv } from "../support/sync-env.ts";
import { repoRoot } from "../support/tools.ts";

const run = promisify(execFile);

describe("two templates exporting the same API", () => {
  it("the binding refuses the export naming both, exports shows the conflict, and one removed it is Ready again", async () => {
    const env = await syncEnv();
    const { controlClient, bindingNamespace: ns } = env;
    const exportId = `postgresqlinstances.${env.ref.group}`;
    // the first template (env's, no claims), bound and Ready
    await env.bindWith("twice", env.appKubeconfig);
    await env.ready("twice");

    // a second one, with claims of its own
    await controlClient.create(refs.templates, {
      apiVersion: "example-backend.klutch.anynines.com/v1alpha1",
      kind: "APIServiceExportTemplate",
      metadata: { name: "postgresqlinstances-too", namespace: ns },
      spec: {
        APIServiceSelector: { group: env.ref.group, resource: "postgresqlinstances", version: "v1" },
        permissionClaims: [{ group: "", resource: "configmaps", version: "v1", selector: { owner: "Consumer" } }],
      },
    });
    const both = `templates ${ns}/postgresqlinstances and ${ns}/postgresqlinstances-too all export ${exportId}`;
    await eventually("refused, naming both templates", async () => {
      const read = await controlClient.get(refs.bindings, "twice", ns);
      const ready = conditionOf(read, "Ready");
      assert.equal(ready?.status, "False", JSON.stringify(read?.status));
      assert.equal(ready?.reason, "ExportsNotReady");
      assert.ok(ready?.message?.includes(both), ready?.message);
      assert.match(ready?.message ?? "", /refused until only one does/);
    });

    const listed = await run(
      process.execPath,
      [join(repoRoot, "src/cli/main.ts"), "exports", "--kubeconfig", env.control.kubeconfigPath, "-n", ns],
      { cwd: repoRoot },
    );
    assert.match(
      listed.stdout,
      new RegExp(`^${exportId.replaceAll(".", "\\.")}\\s+v1\\s+${ns}/postgresqlinstances\\s+0$`, "m"),
    );
    assert.match(
      listed.stdout,
      new RegExp(`^${exportId.replaceAll(".", "\\.")}\\s+v1\\s+${ns}/postgresqlinstances-too\\s+1$`, "m"),
    );
    assert.match(listed.stdout, /^CONFLICT:$/m);
    assert.ok(listed.stdout.includes(`  - ${both}: refused until only one does`), listed.stdout);

    await controlClient.delete(refs.templates, "postgresqlinstances-too", ns);
    await env.ready("twice");
  });
});
