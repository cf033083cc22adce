// Binding from the command line, against real API servers with the sync running.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { promisify } from "node:util";
import { finalizer, labels } from "../../src/sync/naming.ts";
import { refs } from "../../src/sync/resources.ts";
import { accountKubeconfig, serviceAccount } from "../support/accounts.ts";
import { kubeConfig, uniqueSuffix } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";
import { type SyncEnv, syncEnv } from "../support/sync-env.ts";
import { repoRoot } from "../support/tools.ts";

const run = promisify(execFile);

describe("klutch-bind exports, bind, status, unbind", () => {
  let env: SyncEnv;
  let exportId: string;

  async function cli(...args: string[]) {
    return cliAs(env.control.kubeconfigPath, ...args);
  }

  async function cliAs(kubeconfig: string, ...args: string[]) {
    return run(
      process.execPath,
      [join(repoRoot, "src/cli/main.ts"), ...args, "--kubeconfig", kubeconfig, "-n", env.bindingNamespace],
      {
        cwd: repoRoot,
      },
    ).then(
      (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
      (err: { code: number; stdout: string; stderr: string }) => ({
        code: err.code,
        stdout: err.stdout,
        stderr: err.stderr,
      }),
    );
  }

  async function objectIn(appNs: string) {
    await env.appObject(appNs, "db");
  }

  before(async () => {
    env = await syncEnv();
    exportId = `postgresqlinstances.${env.ref.group}`;
    await env.template([
      { group: "", resource: "secrets", version: "v1", selector: { owner: "Provider", names: ["*-credentials"] } },
      { group: "", resource: "configmaps", version: "v1", selector: { owner: "Consumer" } },
    ]);
  });

  it("lists the bindable APIs with their claims in words", async () => {
    const { code, stdout } = await cli("exports");
    assert.equal(code, 0);
    assert.match(
      stdout,
      new RegExp(`^${exportId.replaceAll(".", "\\.")}\\s+v1\\s+${env.bindingNamespace}/postgresqlinstances\\s+2$`, "m"),
    );
    assert.match(stdout, /writes secrets named \*-credentials into your namespaces/);
    assert.match(stdout, /reads configmaps from your namespaces and copies them to the provider/);
  });

  it("binds, waits until Ready with progress, and shows it in status", async () => {
    const { code, stdout, stderr } = await cli(
      "bind",
      "--name",
      "cli",
      "--app-kubeconfig",
      env.app.kubeconfigPath,
      "--export",
      exportId,
    );
    assert.equal(code, 0, stderr);
    assert.match(stdout, /✓ app cluster https:\/\/127\.0\.0\.1:\d+ answers \(v1\.37\.2\)/);
    assert.match(stdout, /… Connected=/);
    assert.match(stdout, /✓ cli is Ready after/);
    const status = await cli("status");
    assert.match(status.stdout, /^cli\s+True\s+True\s+/m);
  });

  it("names the cause: unknown export, unreachable app cluster, missing choice", async () => {
    const unknown = await cli(
      "bind",
      "--name",
      "x",
      "--app-kubeconfig",
      env.app.kubeconfigPath,
      "--export",
      "nothing.example.org",
    );
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /unknown export "nothing\.example\.org"; bindable: .*postgresqlinstances/);

    const dead = join(mkdtempSync(join(tmpdir(), "klb-dead-")), "kubeconfig");
    writeFileSync(
      dead,
      "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1', insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n",
    );
    const unreachable = await cli("bind", "--name", "x", "--app-kubeconfig", dead, "--export", exportId);
    assert.equal(unreachable.code, 1);
    assert.match(unreachable.stderr, /app cluster https:\/\/127\.0\.0\.1:1 unreachable/);

    const noChoice = await cli("unbind", "cli");
    assert.equal(noChoice.code, 2);
    assert.match(noChoice.stderr, /--delete\s+delete the provider copies/);
  });

  it("says so when the user has no permission", async () => {
    const nobody = await serviceAccount(env.controlClient, env.bindingNamespace, `nobody-${uniqueSuffix()}`);
    const kubeconfig = join(mkdtempSync(join(tmpdir(), "klb-nobody-")), "kubeconfig");
    writeFileSync(kubeconfig, accountKubeconfig(kubeConfig(env.control), nobody).exportConfig());
    const denied = await cliAs(
      kubeconfig,
      "bind",
      "--name",
      "x",
      "--app-kubeconfig",
      env.app.kubeconfigPath,
      "--export",
      exportId,
    );
    assert.equal(denied.code, 1);
    assert.match(
      denied.stderr,
      /no permission to list the bindable APIs in namespace \S+ of https:\/\/127\.0\.0\.1:\d+/,
    );
  });

  it("unbinds with --orphan: objects stay on both sides, unsynced", async () => {
    const appNs = `orphan-${uniqueSuffix()}`;
    await objectIn(appNs);
    const binding = await env.controlClient.get(refs.bindings, "cli", env.bindingNamespace);
    const selector = `${labels.binding}=${binding?.metadata.uid}`;
    await eventually("provider copy", async () =>
      assert.equal((await env.controlClient.list(env.ref, { labelSelector: selector })).items.length, 1),
    );
    const { code, stdout } = await cli("unbind", "cli", "--orphan");
    assert.equal(code, 0);
    assert.match(stdout, /left in place \(orphaned\)/);
    assert.equal(await env.controlClient.get(refs.bindings, "cli", env.bindingNamespace), undefined);
    assert.equal(await env.controlClient.get(refs.secrets, "cli-kubeconfig", env.bindingNamespace), undefined);
    assert.equal(
      (await env.controlClient.list(env.ref, { labelSelector: selector })).items.length,
      1,
      "provider copy kept",
    );
    const app = await env.appClient.get(env.ref, "db", appNs);
    assert.ok(app, "app object kept");
    assert.ok(!app.metadata.finalizers?.includes(finalizer), "and released");
  });

  it("unbinds with --delete: provider copies, app objects and provider namespaces go", async () => {
    const bound = await cli(
      "bind",
      "--name",
      "doomed",
      "--app-kubeconfig",
      env.app.kubeconfigPath,
      "--export",
      exportId,
    );
    assert.equal(bound.code, 0, bound.stderr);
    const appNs = `delete-${uniqueSuffix()}`;
    await objectIn(appNs);
    const binding = await env.controlClient.get(refs.bindings, "doomed", env.bindingNamespace);
    const selector = `${labels.binding}=${binding?.metadata.uid}`;
    await eventually("provider copy", async () =>
      assert.ok((await env.controlClient.list(env.ref, { labelSelector: selector })).items.length >= 1),
    );
    const { code, stdout, stderr } = await cli("unbind", "doomed", "--delete");
    assert.equal(code, 0, stderr);
    assert.match(stdout, /provider copies of .* gone/);
    assert.equal((await env.controlClient.list(env.ref, { labelSelector: selector })).items.length, 0);
    await eventually("app object deleted", async () =>
      assert.equal(await env.appClient.get(env.ref, "db", appNs), undefined),
    );
    assert.match(stdout, /✓ [1-9]\d* provider namespace\(s\) deleted/);
    const left = (await env.controlClient.list(refs.namespaces, { labelSelector: selector })).items;
    assert.ok(
      left.every((ns) => ns.metadata.deletionTimestamp !== undefined),
      `provider namespaces still live: ${left.map((n) => n.metadata.name)}`,
    );
  });
});
