// Issue 24 point 9, on real API servers: a kubeconfig Secret's mark names the binding's kind (API
// group), namespace and name. A binding of the other kind with the victim's name neither connects
// with the victim's Secret nor, when it is deleted, deletes that Secret or the app-side account
// its kubeconfig holds; with --kubeconfig-secrets same-namespace (where it may use the Secret) its
// deletion still takes neither.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { describe, it } from "node:test";
import { promisify } from "node:util";
import { kubeconfigForAnnotation, kubeconfigSecretMarks } from "../../src/api/kubeconfig-secret.ts";
import { finalizer } from "../../src/api/naming.ts";
import { refs } from "../../src/api/resources.ts";
import { accountFor, appAccessAnnotation, appAccessServiceAccount } from "../../src/app-access/account.ts";
import { removeAppAccount } from "../../src/app-access/namespace-access.ts";
import { grantAppAccess } from "../../src/bind/app-access.ts";
import { conditionOf } from "../../src/kube/conditions.ts";
import { dropFinalizers, onFileDone, uniqueSuffix } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";
import { klutchBinding, markedKubeconfigSecret } from "../support/klutch-binding.ts";
import { type SyncEnv, syncEnv } from "../support/sync-env.ts";
import { repoRoot } from "../support/tools.ts";

const run = promisify(execFile);

/** The victim: klutch-bind's AppClusterBinding NAME and its Secret, as bind writes them (a service account's token). */
async function victim(env: SyncEnv, name: string) {
  const { appClient, bindingNamespace: ns } = env;
  await env.template([]);
  const granted = await grantAppAccess(env.appKubeconfig, {
    bindingNamespace: ns,
    bindingName: name,
    exports: [{ group: env.ref.group, resource: env.ref.resource, claims: [] }],
    tokenSeconds: 600,
  });
  onFileDone(async () => {
    await removeAppAccount(appClient, granted.account);
  });
  const marks = kubeconfigSecretMarks({ group: refs.klutchBindings.group, namespace: ns, name });
  await markedKubeconfigSecret(env, name, granted.kubeconfig, {
    labels: marks.labels,
    annotations: { ...marks.annotations, [appAccessAnnotation]: appAccessServiceAccount },
  });
  await klutchBinding(env, name);
  await env.ready(name);
  return granted.account;
}

/** Our older kind's binding NAME, naming the victim's Secret, to be deleted with deletionPolicy Delete. */
async function impostor(env: SyncEnv, name: string) {
  await env.controlClient.create(refs.bindings, {
    apiVersion: "bind.klutch.dev/v1alpha1",
    kind: "AppClusterBinding",
    metadata: { name, namespace: env.bindingNamespace },
    spec: {
      kubeconfigSecretRef: { name: `${name}-kubeconfig` },
      exports: [{ group: env.ref.group, resource: env.ref.resource }],
      deletionPolicy: "Delete",
    },
  });
}

/** Deletes the impostor, waits until the sync let it go, and checks the victim kept its Secret, account and Ready. */
async function deleteImpostor(env: SyncEnv, name: string, account: { namespace: string; name: string }) {
  const { controlClient, appClient, bindingNamespace: ns } = env;
  // the sync's finalizer on it proves the sync looked at it, so its deletion goes through the release
  await eventually("the sync holds the impostor", async () => {
    const read = await controlClient.get(refs.bindings, name, ns);
    assert.ok(read?.metadata.finalizers?.includes(finalizer), JSON.stringify(read?.metadata));
  });
  await controlClient.delete(refs.bindings, name, ns);
  await eventually("the impostor released and gone", async () => {
    assert.equal(await controlClient.get(refs.bindings, name, ns), undefined);
  });
  assert.ok(await controlClient.get(refs.secrets, `${name}-kubeconfig`, ns), "the victim's Secret is kept");
  assert.ok(await appClient.get(refs.serviceAccounts, account.name, account.namespace), "the victim's account is kept");
  const read = await controlClient.get(refs.klutchBindings, name, ns);
  assert.equal(conditionOf(read, "SecretValid")?.status, "True", JSON.stringify(read?.status));
}

describe("a binding of the other kind with the victim's name", () => {
  it("does not connect with the victim's kubeconfig Secret, and its deletion deletes neither the Secret nor the app-side account", async () => {
    const env = await syncEnv();
    const name = `victim-${uniqueSuffix()}`;
    const account = await victim(env, name);
    await impostor(env, name);
    await eventually("refused: the Secret names klutch-bind's binding, not this one", async () => {
      const read = await env.controlClient.get(refs.bindings, name, env.bindingNamespace);
      const valid = conditionOf(read, "SecretValid");
      assert.equal(valid?.status, "False", JSON.stringify(read?.status));
      assert.equal(valid?.reason, "KubeconfigNotMarked");
      assert.match(
        valid?.message ?? "",
        new RegExp(`kubeconfig-for=bind\\.klutch\\.dev/${env.bindingNamespace}/${name}`),
      );
      assert.equal(conditionOf(read, "Connected")?.status, "False");
    });
    await deleteImpostor(env, name, account);
  });

  it("with --kubeconfig-secrets same-namespace: its deletion deletes neither the Secret nor the app-side account", async () => {
    const env = await syncEnv({ kubeconfigSecrets: "same-namespace" });
    const name = `victim-${uniqueSuffix()}`;
    const account = await victim(env, name);
    await impostor(env, name);
    // the opt-in lets any binding of the namespace use the Secret: it connects
    await eventually("the impostor connects (same-namespace)", async () => {
      const read = await env.controlClient.get(refs.bindings, name, env.bindingNamespace);
      assert.equal(conditionOf(read, "SecretValid")?.status, "True", JSON.stringify(read?.status));
    });
    await deleteImpostor(env, name, account);
  });
});

describe("a Secret with the old mark (NAME, before marks named the kind)", () => {
  it("serves no binding, the condition says how to re-mark, and klutch-bind bind re-marks it", async () => {
    const env = await syncEnv();
    const { controlClient, bindingNamespace: ns } = env;
    await env.template([]);
    const name = `upgraded-${uniqueSuffix()}`;
    await markedKubeconfigSecret(env, name, env.appKubeconfig, {
      labels: { "app.kubernetes.io/managed-by": "klutch-bind" },
      annotations: { [kubeconfigForAnnotation]: name },
    });
    await klutchBinding(env, name);
    onFileDone(async () => {
      await removeAppAccount(env.appClient, accountFor(ns, name));
      await dropFinalizers(controlClient, refs.klutchBindings, name, ns);
    });
    const mark = `klutch.anynines.com/${ns}/${name}`;
    await eventually("refused, saying how to re-mark", async () => {
      const read = await controlClient.get(refs.klutchBindings, name, ns);
      const valid = conditionOf(read, "SecretValid");
      assert.equal(valid?.reason, "KubeconfigNotMarked", JSON.stringify(read?.status));
      assert.match(valid?.message ?? "", /carries the old mark bind\.klutch\.dev\/kubeconfig-for/);
      assert.ok(valid?.message?.includes(`re-mark it bind.klutch.dev/kubeconfig-for=${mark}`), valid?.message);
      assert.match(valid?.message ?? "", /or run klutch-bind bind again/);
    });

    const exportId = `${env.ref.resource}.${env.ref.group}`;
    const cli = join(repoRoot, "src/cli/main.ts");
    const bound = await run(
      process.execPath,
      [
        cli,
        ...["bind", "--name", name, "--app-kubeconfig", env.app.kubeconfigPath, "--export", exportId],
        ...["--accept-claims", "--kubeconfig", env.control.kubeconfigPath, "-n", ns],
      ],
      { cwd: repoRoot },
    );
    assert.match(bound.stdout, new RegExp(`✓ ${name} is Ready after`));
    const secret = await controlClient.get(refs.secrets, `${name}-kubeconfig`, ns);
    assert.equal(secret?.metadata.annotations?.[kubeconfigForAnnotation], mark);
  });
});
