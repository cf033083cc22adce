// A kubeconfig user with an exec plugin still authenticates against a real API server: kubeconfig.ts
// hands such users to @kubernetes/client-node, loaded only for them.
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parse, stringify } from "yaml";
import { KubeClient } from "../../src/kube/client.ts";
import { readKubeconfigFile } from "../../src/kube/kubeconfig.ts";
import { serviceAccount } from "../support/accounts.ts";
import { clientConfig, onFileDone, testClusters, testNamespace } from "../support/clusters.ts";

async function whoAmI(client: KubeClient): Promise<unknown> {
  const review = await client.request<{ status?: { userInfo?: { username?: unknown } } }>(
    "POST",
    "/apis/authentication.k8s.io/v1/selfsubjectreviews",
    { body: { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" } },
  );
  return review.status?.userInfo?.username;
}

describe("an exec plugin user", () => {
  it("authenticates with the token its plugin prints", async () => {
    const { control } = await testClusters();
    const admin = KubeClient.fromConfig(clientConfig(control));
    onFileDone(async () => admin.close());
    const namespace = await testNamespace(control, "exec");
    const account = await serviceAccount(admin, namespace, "exec-user");

    const dir = mkdtempSync(join(tmpdir(), "klb-exec-"));
    onFileDone(async () => rmSync(dir, { recursive: true, force: true }));
    const plugin = join(dir, "plugin.sh");
    // the token comes in through the plugin's env, as exec.env passes it
    writeFileSync(
      plugin,
      `#!/bin/sh\nprintf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"%s"}}' "$EXEC_TEST_TOKEN"\n`,
    );
    chmodSync(plugin, 0o755);
    const adminConfig = parse(readFileSync(control.kubeconfigPath, "utf8")) as {
      clusters: unknown[];
      contexts: Array<{ context: { cluster: string } }>;
      "current-context": string;
    };
    const kubeconfig = join(dir, "config");
    writeFileSync(
      kubeconfig,
      stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: adminConfig.clusters,
        users: [
          {
            name: "exec-user",
            user: {
              exec: {
                apiVersion: "client.authentication.k8s.io/v1",
                command: plugin,
                env: [{ name: "EXEC_TEST_TOKEN", value: account.token }],
                interactiveMode: "Never",
              },
            },
          },
        ],
        contexts: [{ name: "exec", context: { cluster: adminConfig.contexts[0]?.context.cluster, user: "exec-user" } }],
        "current-context": "exec",
      }),
    );

    const client = KubeClient.fromConfig(readKubeconfigFile(kubeconfig), { userAgent: "exec-test" });
    onFileDone(async () => client.close());
    assert.equal(await whoAmI(client), account.username);
    // an impersonating client of it keeps the plugin's credentials (and is refused: no impersonate verb)
    await assert.rejects(client.impersonating({ username: "someone" }).serverVersion(), /403/);
  });
});
