// `klutch-bind status NAME` reads what it names by name: a binding's page of requests does not
// grow with the control plane's other bindings and cluster namespaces (before, it listed every
// labelled cluster namespace, up to 500, and read each one's ClusterBinding, then kept the named).
// Counted with the command's own client; the output is the table's, as without a name.

import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { clusterBindingName, pullApiVersion, pullLabels, pullRefs } from "../../src/api/pull-binding.ts";
import { refs } from "../../src/api/resources.ts";
import { showStatus } from "../../src/cli/status.ts";
import { KubeClient } from "../../src/kube/client.ts";
import type { Cluster } from "../support/cluster.ts";
import { clientConfig, onFileDone, testClusters, testNamespace } from "../support/clusters.ts";
import { applyCrds } from "../support/manifests.ts";

describe("klutch-bind status NAME", () => {
  let control: Cluster;
  let admin: KubeClient;
  let bindingNs: string;
  let clusterNs: string;

  /** a cluster namespace as the sync makes them: labelled for pull bindings */
  async function clusterNamespace(): Promise<string> {
    const ns = await testNamespace(control, "status-named");
    await admin.mergePatch(refs.namespaces, ns, undefined, {
      metadata: { labels: { [pullLabels.clusterNamespace]: "true" } },
    });
    return ns;
  }

  /** an AppClusterBinding of klutch-bind's kind in the bindings' namespace (no sync serves it) */
  async function binding(name: string): Promise<void> {
    await admin.create(refs.klutchBindings, {
      apiVersion: "klutch.anynines.com/v1alpha1",
      kind: "AppClusterBinding",
      metadata: { name, namespace: bindingNs },
      spec: {
        kubeconfigSecretRef: { name: `${name}-kubeconfig`, namespace: bindingNs, key: "kubeconfig" },
        apiExports: [{ group: "example.org", resource: "widgets" }],
      },
    });
  }

  before(async () => {
    control = (await testClusters()).control;
    admin = KubeClient.fromConfig(clientConfig(control));
    onFileDone(async () => admin.close());
    for (const crd of [
      "klutch-appclusterbinding",
      "appclusterbinding",
      "klutch-clusterbinding",
      "klutch-apiserviceexport",
    ])
      await applyCrds(control, `deploy/control-plane/${crd}-crd.yaml`);
    bindingNs = await testNamespace(control, "status-named-bindings");
    for (const name of ["mine", "other-a", "other-b"]) await binding(name);
    clusterNs = await clusterNamespace();
    await admin.create(pullRefs.clusterBindings, {
      apiVersion: pullApiVersion,
      kind: "ClusterBinding",
      metadata: { name: clusterBindingName, namespace: clusterNs },
      spec: { kubeconfigSecretRef: { name: "konnector", key: "kubeconfig" }, providerPrettyName: "test" },
    });
  });

  /** status with names, as the CLI runs it, on a client of its own: its output and the requests it sent */
  async function status(
    ...names: string[]
  ): Promise<{ code: number; stdout: string; stderr: string; requests: number }> {
    const client = KubeClient.fromConfig(clientConfig(control), { userAgent: "klutch-bind-cli" });
    let requests = 0;
    client.observeRequests(() => {
      requests++;
    });
    let stdout = "";
    let stderr = "";
    try {
      const code = await showStatus({ client, namespace: bindingNs }, names, {
        stdout: (text) => {
          stdout += text;
        },
        stderr: (text) => {
          stderr += text;
        },
      });
      return { code, stdout, stderr, requests };
    } finally {
      client.close();
    }
  }

  it("reads a binding and a pull binding by name: the same few requests however many others there are", async () => {
    const before = { binding: await status("mine"), pull: await status(clusterNs) };
    for (const shown of [before.binding, before.pull]) assert.equal(shown.stderr, "");
    assert.equal(before.binding.code, 0);
    assert.match(before.binding.stdout, /^NAME\s+CONNECTED\s+READY\s+OBJECTS\s+LAST SYNC\s+API GROUP$/m);
    assert.match(before.binding.stdout, /^mine\s+Unknown\s+Unknown\s+-\s+-\s+klutch\.anynines\.com$/m);
    assert.doesNotMatch(before.binding.stdout, /other-/);
    assert.doesNotMatch(before.binding.stdout, /PULL BINDING/, "mine is no cluster namespace");
    assert.equal(before.pull.code, 0);
    assert.match(before.pull.stdout, /^PULL BINDING\s+HEALTHY\s+LAST HEARTBEAT\s+KONNECTOR\s+EXPORTS$/m);
    assert.match(before.pull.stdout, new RegExp(`^${clusterNs}\\s+Unknown\\s+never\\s+-\\s+-$`, "m"));
    assert.doesNotMatch(before.pull.stdout, /^NAME/m, "no push binding of that name: its table alone");

    // more bindings and cluster namespaces on the control plane
    for (const name of ["other-c", "other-d", "other-e"]) await binding(name);
    for (let i = 0; i < 3; i++) await clusterNamespace();
    const after = { binding: await status("mine"), pull: await status(clusterNs) };
    assert.equal(after.binding.stdout, before.binding.stdout);
    assert.equal(after.pull.stdout, before.pull.stdout);

    // by name: a GET of each binding kind and of the namespace's ClusterBinding; a pull binding's exports listed
    assert.equal(after.binding.requests, before.binding.requests, "as many with more bindings and cluster namespaces");
    assert.equal(after.pull.requests, before.pull.requests, "as many with more bindings and cluster namespaces");
    assert.equal(before.binding.requests, 3, "a binding by name");
    assert.equal(before.pull.requests, 4, "a pull binding by name");
  });

  it("exits 1 for a name nothing has, having read only that name", async () => {
    const none = await status("nothing-here");
    assert.equal(none.code, 1);
    assert.equal(none.stdout, `no AppClusterBindings named nothing-here in namespace ${bindingNs}\n`);
    assert.equal(none.requests, 3);
  });
});
