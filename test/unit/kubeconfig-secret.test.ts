// Which Secrets may hold a binding's kubeconfig, under each --kubeconfig-secrets policy.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  kubeconfigForAnnotation,
  kubeconfigSecretMarks,
  type MarkedBinding,
  markedForOnly,
  notMarkedFor,
  remarked,
} from "../../src/api/kubeconfig-secret.ts";
import type { KubeObject } from "../../src/kube/client.ts";

const secret = (namespace: string, marks: Partial<KubeObject["metadata"]> = {}): KubeObject => ({
  apiVersion: "v1",
  kind: "Secret",
  metadata: { name: "kc", namespace, ...marks },
});
const ours = (namespace: string, name: string): MarkedBinding => ({ group: "bind.klutch.dev", namespace, name });
const klutch = (namespace: string, name: string): MarkedBinding => ({ group: "klutch.anynines.com", namespace, name });
/** a Secret with the label and the annotation as given (the old mark, or anything) */
const annotated = (namespace: string, value: string) =>
  secret(namespace, {
    labels: { "app.kubernetes.io/managed-by": "klutch-bind" },
    annotations: { [kubeconfigForAnnotation]: value },
  });

describe("kubeconfig Secret marks", () => {
  it("marked (the default): an unmarked Secret serves no binding, and the refusal names the marks and the flag", () => {
    const why = notMarkedFor(secret("team-a"), ours("team-a", "b"));
    assert.match(why ?? "", /secret team-a\/kc is not a klutch-bind kubeconfig Secret/);
    assert.match(why ?? "", /app\.kubernetes\.io\/managed-by=klutch-bind/);
    assert.match(why ?? "", /bind\.klutch\.dev\/kubeconfig-for=bind\.klutch\.dev\/team-a\/b/);
    assert.match(why ?? "", /--kubeconfig-secrets same-namespace/);
    assert.equal(
      notMarkedFor(secret("team-a", kubeconfigSecretMarks(ours("team-a", "b"))), ours("team-a", "b")),
      undefined,
    );
    assert.match(
      notMarkedFor(secret("team-a", kubeconfigSecretMarks(ours("team-a", "other"))), ours("team-a", "b")) ?? "",
      /not marked for AppClusterBinding team-a\/b \(bind\.klutch\.dev\)/,
    );
  });

  it("the mark names the binding's kind: a binding of the other kind with the same name is not served", () => {
    const victims = secret("team-a", kubeconfigSecretMarks(klutch("team-a", "b")));
    assert.equal(notMarkedFor(victims, klutch("team-a", "b")), undefined);
    const why = notMarkedFor(victims, ours("team-a", "b"));
    assert.match(why ?? "", /not marked for AppClusterBinding team-a\/b \(bind\.klutch\.dev\)/);
    assert.match(why ?? "", /kubeconfig-for=bind\.klutch\.dev\/team-a\/b/);
    // and the other way round
    assert.ok(notMarkedFor(secret("team-a", kubeconfigSecretMarks(ours("team-a", "b"))), klutch("team-a", "b")));
  });

  it("the old mark (NAME, NAMESPACE/NAME) serves no binding, and the refusal says how to re-mark", () => {
    for (const [where, value] of [
      ["team-a", "b"],
      ["team-a", "team-a/b"],
      ["shared", "team-a/b"],
    ] as const) {
      const why = notMarkedFor(annotated(where, value), klutch("team-a", "b"));
      assert.match(why ?? "", /carries the old mark bind\.klutch\.dev\/kubeconfig-for/, `${where}: ${value}`);
      assert.match(why ?? "", /re-mark it bind\.klutch\.dev\/kubeconfig-for=klutch\.anynines\.com\/team-a\/b/);
      assert.match(why ?? "", /or run klutch-bind bind again/);
    }
    // an old entry of another namespace's binding is just not a mark for this one
    assert.match(notMarkedFor(annotated("shared", "b"), klutch("team-a", "b")) ?? "", /is not marked for/);
  });

  it("a Secret goes with a binding only when its mark names that binding alone", () => {
    const b = klutch("team-a", "b");
    assert.equal(markedForOnly(secret("team-a", kubeconfigSecretMarks(b)), b), true);
    assert.equal(markedForOnly(secret("team-a", kubeconfigSecretMarks(b)), ours("team-a", "b")), false);
    assert.equal(markedForOnly(secret("team-a", kubeconfigSecretMarks(b, klutch("team-a", "c"))), b), false);
    assert.equal(markedForOnly(annotated("team-a", "b"), b), false, "the old mark is no proof");
    assert.equal(markedForOnly(annotated("team-a", `${"klutch.anynines.com/team-a/b"},b`), b), false);
    assert.equal(markedForOnly(secret("team-a"), b), false, "unmarked (same-namespace)");
    assert.equal(
      markedForOnly(secret("team-a", { annotations: kubeconfigSecretMarks(b).annotations }), b),
      false,
      "without the label",
    );
  });

  it("re-marking adds the binding's entry, drops its old one and keeps the others", () => {
    const b = klutch("team-a", "b");
    assert.equal(remarked(annotated("team-a", "b"), b), "klutch.anynines.com/team-a/b");
    assert.equal(remarked(annotated("shared", "team-a/b,c"), b), "c,klutch.anynines.com/team-a/b");
    assert.equal(
      remarked(annotated("team-a", "bind.klutch.dev/team-a/b,klutch.anynines.com/team-a/b"), b),
      "bind.klutch.dev/team-a/b,klutch.anynines.com/team-a/b",
    );
    assert.equal(remarked(secret("team-a"), b), "klutch.anynines.com/team-a/b");
  });

  it("same-namespace: an unmarked Secret of the binding's namespace serves it", () => {
    assert.equal(notMarkedFor(secret("team-a"), ours("team-a", "b"), "same-namespace"), undefined);
    assert.equal(
      notMarkedFor(
        secret("team-a", kubeconfigSecretMarks(ours("team-a", "other"))),
        ours("team-a", "b"),
        "same-namespace",
      ),
      undefined,
    );
  });

  it("same-namespace: a Secret of another namespace must still be marked GROUP/NAMESPACE/NAME", () => {
    const why = notMarkedFor(secret("shared"), ours("team-a", "b"), "same-namespace");
    assert.match(why ?? "", /secret shared\/kc is not a klutch-bind kubeconfig Secret/);
    assert.match(why ?? "", /kubeconfig-for=bind\.klutch\.dev\/team-a\/b/);
    assert.match(why ?? "", /must be marked, also with --kubeconfig-secrets same-namespace/);
    // marked for a binding of the same name in another namespace, or of the other kind: not this one
    assert.ok(
      notMarkedFor(secret("shared", kubeconfigSecretMarks(ours("shared", "b"))), ours("team-a", "b"), "same-namespace"),
    );
    assert.ok(
      notMarkedFor(
        secret("shared", kubeconfigSecretMarks(klutch("team-a", "b"))),
        ours("team-a", "b"),
        "same-namespace",
      ),
    );
    assert.equal(
      notMarkedFor(secret("shared", kubeconfigSecretMarks(ours("team-a", "b"))), ours("team-a", "b"), "same-namespace"),
      undefined,
    );
  });
});
