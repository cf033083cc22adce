// The konnector's pure parts (issue 26): klutch-bind's APIServiceBinding decoded strictly, the
// claims it accepted, and the control plane's kubeconfig read from its Secret (bounded,
// self-contained, naming the cluster namespace).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { maxKubeconfigBytes } from "../../src/api/pull-binding.ts";
import type { PermissionClaim } from "../../src/export/types.ts";
import {
  acceptedClaims,
  boundExportName,
  decodeBindingSpec,
  deletionPolicyOf,
} from "../../src/konnector/binding-spec.ts";
import { isProblem, providerKubeconfig } from "../../src/konnector/kubeconfig-secret.ts";
import type { KubeObject } from "../../src/kube/client.ts";

const ref = { name: "kc", namespace: "klutch-bind", key: "kubeconfig" };

function binding(spec: unknown, name = "postgresqlinstances.example.org"): KubeObject {
  return { apiVersion: "klutch.anynines.com/v1alpha1", kind: "APIServiceBinding", metadata: { name }, spec };
}

function secret(text: string | undefined): KubeObject {
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: "kc", namespace: "klutch-bind" },
    ...(text === undefined ? {} : { data: { kubeconfig: Buffer.from(text).toString("base64") } }),
  };
}

function kubeconfig(context: Record<string, unknown>, user: Record<string, unknown> = { token: "t" }): string {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "c", cluster: { server: "https://control.example:6443" } }],
    users: [{ name: "u", user }],
    contexts: [{ name: "c", context: { cluster: "c", user: "u", ...context } }],
    "current-context": "c",
  });
}

describe("APIServiceBinding", () => {
  it("decodes the Secret reference and the claims' states", () => {
    const spec = decodeBindingSpec(
      binding({
        kubeconfigSecretRef: ref,
        permissionClaims: [
          { resource: "secrets", version: "v1", state: "Accepted" },
          { group: "example.org", resource: "widgets", version: "v1", state: "Rejected" },
        ],
      }),
    );
    assert.deepEqual(spec.kubeconfigSecretRef, ref);
    assert.deepEqual(spec.claims, [
      { group: "", resource: "secrets", state: "Accepted" },
      { group: "example.org", resource: "widgets", state: "Rejected" },
    ]);
  });

  it("names the field that is wrong", () => {
    assert.throws(() => decodeBindingSpec(binding({})), /spec\.kubeconfigSecretRef: /);
    assert.throws(
      () => decodeBindingSpec(binding({ kubeconfigSecretRef: { ...ref, namespace: "" } })),
      /spec\.kubeconfigSecretRef\.namespace/,
    );
    assert.throws(
      () =>
        decodeBindingSpec(
          binding({ kubeconfigSecretRef: ref, permissionClaims: [{ resource: "secrets", state: "Maybe" }] }),
        ),
      /spec\.permissionClaims\[0\]\.state/,
    );
    assert.throws(() => boundExportName(binding({}, "nodots")), /metadata\.name: must be the APIServiceExport/);
  });

  it("syncs only the export's claims the binding accepted", () => {
    const claim = (group: string, resource: string): PermissionClaim => ({
      group,
      resource,
      version: "v1",
      selector: {},
    });
    const exported = [claim("", "secrets"), claim("", "configmaps"), claim("example.org", "widgets")];
    const spec = decodeBindingSpec(
      binding({
        kubeconfigSecretRef: ref,
        permissionClaims: [
          { resource: "secrets", version: "v1", state: "Accepted" },
          { resource: "configmaps", version: "v1", state: "Rejected" },
        ],
      }),
    );
    assert.deepEqual(
      acceptedClaims(exported, spec).map((c) => c.resource),
      ["secrets"],
    );
  });

  it("reads its deletion policy from its annotation: Orphan unless it says Delete, another value named", () => {
    const annotated = (value?: string): KubeObject => ({
      apiVersion: "klutch.anynines.com/v1alpha1",
      kind: "APIServiceBinding",
      metadata: {
        name: "widgets.example.org",
        ...(value === undefined ? {} : { annotations: { "bind.klutch.dev/deletion-policy": value } }),
      },
    });
    assert.equal(deletionPolicyOf(annotated()), "Orphan");
    assert.equal(deletionPolicyOf(annotated("Orphan")), "Orphan");
    assert.equal(deletionPolicyOf(annotated("Delete")), "Delete");
    assert.throws(
      () => deletionPolicyOf(annotated("delete")),
      /metadata\.annotations\["bind\.klutch\.dev\/deletion-policy"\]: must be Delete or Orphan, got "delete"/,
    );
  });
});

describe("the control plane's kubeconfig from its Secret", () => {
  it("gives the text, the cluster namespace of its context, and a hash per content", () => {
    const a = providerKubeconfig(secret(kubeconfig({ namespace: "cluster-abc" })), ref);
    assert.ok(!isProblem(a));
    assert.equal(a.namespace, "cluster-abc");
    const b = providerKubeconfig(secret(kubeconfig({ namespace: "cluster-abc" }, { token: "renewed" })), ref);
    assert.ok(!isProblem(b));
    assert.notEqual(a.hash, b.hash, "a new token is a new connection");
  });

  it("says what is wrong: missing, no key, too large, no namespace, an exec plugin", () => {
    const problem = (s: KubeObject | undefined) => {
      const got = providerKubeconfig(s, ref);
      assert.ok(isProblem(got));
      return `${got.reason}: ${got.message}`;
    };
    assert.equal(problem(undefined), "KubeconfigMissing: secret klutch-bind/kc does not exist");
    assert.equal(problem(secret(undefined)), 'KubeconfigMissing: secret klutch-bind/kc has no key "kubeconfig"');
    assert.match(problem(secret("x".repeat(maxKubeconfigBytes + 10))), /^KubeconfigInvalid: .*larger than 64 KiB/);
    assert.match(problem(secret(kubeconfig({}))), /^KubeconfigInvalid: .*names no namespace/);
    assert.match(
      problem(secret(kubeconfig({ namespace: "n" }, { exec: { command: "/bin/sh", apiVersion: "x" } }))),
      /^KubeconfigInvalid: .*exec/,
    );
    assert.match(problem(secret("{not yaml")), /^KubeconfigInvalid: /);
  });
});
