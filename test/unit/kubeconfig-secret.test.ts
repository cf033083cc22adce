// Which Secrets may hold a binding's kubeconfig, under each --kubeconfig-secrets policy.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { KubeObject } from "../../src/kube/client.ts";
import { kubeconfigSecretMarks, notMarkedFor } from "../../src/sync/kubeconfig-secret.ts";

const secret = (namespace: string, marks: Partial<KubeObject["metadata"]> = {}): KubeObject => ({
  apiVersion: "v1",
  kind: "Secret",
  metadata: { name: "kc", namespace, ...marks },
});

describe("kubeconfig Secret marks", () => {
  it("marked (the default): an unmarked Secret serves no binding, and the refusal names the marks and the flag", () => {
    const why = notMarkedFor(secret("team-a"), "b", "team-a");
    assert.match(why ?? "", /secret team-a\/kc is not a klutch-bind kubeconfig Secret/);
    assert.match(why ?? "", /app\.kubernetes\.io\/managed-by=klutch-bind/);
    assert.match(why ?? "", /bind\.klutch\.dev\/kubeconfig-for=b/);
    assert.match(why ?? "", /--kubeconfig-secrets same-namespace/);
    assert.equal(notMarkedFor(secret("team-a", kubeconfigSecretMarks("b")), "b", "team-a"), undefined);
    assert.match(notMarkedFor(secret("team-a", kubeconfigSecretMarks("other")), "b", "team-a") ?? "", /not marked for/);
  });

  it("same-namespace: an unmarked Secret of the binding's namespace serves it", () => {
    assert.equal(notMarkedFor(secret("team-a"), "b", "team-a", "same-namespace"), undefined);
    assert.equal(
      notMarkedFor(secret("team-a", kubeconfigSecretMarks("other")), "b", "team-a", "same-namespace"),
      undefined,
    );
  });

  it("same-namespace: a Secret of another namespace must still be marked NAMESPACE/NAME", () => {
    const why = notMarkedFor(secret("shared"), "b", "team-a", "same-namespace");
    assert.match(why ?? "", /secret shared\/kc is not a klutch-bind kubeconfig Secret/);
    assert.match(why ?? "", /kubeconfig-for=team-a\/b/);
    assert.match(why ?? "", /must be marked, also with --kubeconfig-secrets same-namespace/);
    // marked for a binding of the same name in its own namespace: not this one
    assert.ok(notMarkedFor(secret("shared", kubeconfigSecretMarks("b")), "b", "team-a", "same-namespace"));
    assert.equal(
      notMarkedFor(secret("shared", kubeconfigSecretMarks("team-a/b")), "b", "team-a", "same-namespace"),
      undefined,
    );
  });
});
