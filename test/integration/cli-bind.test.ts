// Binding from the command line, against real API servers with the sync running.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { before, describe, it } from "node:test";
import { promisify } from "node:util";
import { consent, parseRecorded } from "../../src/api/consent.ts";
import { finalizer, labels, providerNamespace } from "../../src/api/naming.ts";
import { refs } from "../../src/api/resources.ts";
import { runBind } from "../../src/cli/bind.ts";
import { parseClaims } from "../../src/export/claims.ts";
import type { PermissionClaim } from "../../src/export/types.ts";
import { conditionOf } from "../../src/kube/conditions.ts";
import { accountKubeconfig, serviceAccount } from "../support/accounts.ts";
import { kubeConfig, uniqueSuffix } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";
import { type SyncEnv, syncEnv } from "../support/sync-env.ts";
import { repoRoot } from "../support/tools.ts";

const run = promisify(execFile);

/** The CLI as a process, its stdin not a terminal (execFile's pipe). */
async function runCli(env: SyncEnv, kubeconfig: string, args: string[]) {
  return run(
    process.execPath,
    [join(repoRoot, "src/cli/main.ts"), ...args, "--kubeconfig", kubeconfig, "-n", env.bindingNamespace],
    { cwd: repoRoot },
  ).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (err: { code: number; stdout: string; stderr: string }) => ({
      code: err.code,
      stdout: err.stdout,
      stderr: err.stderr,
    }),
  );
}

describe("klutch-bind exports, bind, status, unbind", () => {
  let env: SyncEnv;
  let exportId: string;

  async function cli(...args: string[]) {
    return cliAs(env.control.kubeconfigPath, ...args);
  }

  async function cliAs(kubeconfig: string, ...args: string[]) {
    return runCli(env, kubeconfig, args);
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
      "--accept-claims",
    );
    assert.equal(code, 0, stderr);
    // the flag without a value accepts every claim, and says so per claim
    assert.match(stdout, /✓ accepted claim secrets\.core\/Provider of /);
    assert.match(stdout, /✓ accepted claim configmaps\.core\/Consumer of /);
    assert.match(stdout, /✓ app cluster https:\/\/127\.0\.0\.1:\d+ answers \(v1\.37\.2\)/);
    assert.match(stdout, /… Connected=/);
    assert.match(stdout, /✓ AppClusterBinding \S+\/cli \(klutch\.anynines\.com\/v1alpha1\) created/);
    assert.match(stdout, /✓ cli is Ready after/);
    // klutch-bind's AppClusterBinding, as its users write it, plus the recorded claims
    const binding = await env.controlClient.get(refs.klutchBindings, "cli", env.bindingNamespace);
    const spec = binding?.spec as Record<string, unknown>;
    assert.deepEqual(spec.kubeconfigSecretRef, {
      name: "cli-kubeconfig",
      namespace: env.bindingNamespace,
      key: "kubeconfig",
    });
    const apiExports = spec.apiExports as Array<Record<string, unknown>>;
    assert.deepEqual(
      apiExports.map((e) => [e.group, e.resource, (e.permissionClaims as unknown[]).length]),
      [[env.ref.group, "postgresqlinstances", 2]],
    );
    assert.equal(spec.exports, undefined);
    assert.equal(await env.controlClient.get(refs.bindings, "cli", env.bindingNamespace), undefined, "not ours");
    assert.equal(conditionOf(binding, "SecretValid")?.status, "True");
    const status = await cli("status");
    assert.match(status.stdout, /^NAME\s+CONNECTED\s+READY\s+OBJECTS\s+LAST SYNC\s+API GROUP$/m);
    assert.match(status.stdout, /^cli\s+True\s+True\s+\S+\s+\S+\s+klutch\.anynines\.com$/m);
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
    const unreachable = await cli(
      "bind",
      "--name",
      "x",
      "--app-kubeconfig",
      dead,
      "--export",
      exportId,
      "--accept-claims",
      "all",
    );
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
    const binding = await env.controlClient.get(refs.klutchBindings, "cli", env.bindingNamespace);
    const selector = `${labels.binding}=${binding?.metadata.uid}`;
    await eventually("provider copy", async () =>
      assert.equal((await env.controlClient.list(env.ref, { labelSelector: selector })).items.length, 1),
    );
    const { code, stdout } = await cli("unbind", "cli", "--orphan");
    assert.equal(code, 0);
    assert.match(stdout, /left in place \(orphaned\)/);
    assert.equal(await env.controlClient.get(refs.klutchBindings, "cli", env.bindingNamespace), undefined);
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
      "--accept-claims",
    );
    assert.equal(bound.code, 0, bound.stderr);
    const appNs = `delete-${uniqueSuffix()}`;
    await objectIn(appNs);
    const binding = await env.controlClient.get(refs.klutchBindings, "doomed", env.bindingNamespace);
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

// Per-claim consent, as klutch-bind's accept/reject: an API of its own (so its bindings do not meet
// the ones above), with a Provider-owned secrets claim and a Consumer-owned configmaps claim.
describe("klutch-bind bind: accepting and rejecting each claim", () => {
  let env: SyncEnv;
  let exportId: string;
  const secretsClaim: PermissionClaim = {
    group: "",
    resource: "secrets",
    version: "v1",
    selector: { owner: "Provider", names: ["*-credentials"] },
  };
  const configMapsClaim: PermissionClaim = {
    group: "",
    resource: "configmaps",
    version: "v1",
    selector: { owner: "Consumer", names: ["app-*"] },
  };
  const cli = (...args: string[]) => runCli(env, env.control.kubeconfigPath, args);
  /** What the binding records, as the sync reads it against the template: the claims accepted, rejected, pending. */
  const recorded = async (name: string) => {
    const binding = await env.controlClient.get(refs.klutchBindings, name, env.bindingNamespace);
    const template = await env.controlClient.get(refs.templates, "postgresqlinstances", env.bindingNamespace);
    const spec = binding?.spec as { apiExports?: Array<{ permissionClaims?: unknown }> } | undefined;
    const record = parseRecorded(spec?.apiExports?.[0]?.permissionClaims, "permissionClaims");
    assert.ok(record, "the binding records its claims");
    assert.equal(record.length, 2, "every claim the user was shown");
    const split = consent(
      parseClaims((template?.spec as { permissionClaims?: unknown } | undefined)?.permissionClaims, "permissionClaims"),
      record,
    );
    const resources = (claims: PermissionClaim[]) => claims.map((c) => c.resource);
    return {
      accepted: resources(split.accepted),
      rejected: resources(split.rejected),
      pending: resources(split.pending),
    };
  };

  before(async () => {
    env = await syncEnv();
    exportId = `postgresqlinstances.${env.ref.group}`;
    await env.template([secretsClaim, configMapsClaim]);
  });

  it("refuses to bind when neither a terminal nor --accept-claims says what to accept", async () => {
    const { code, stdout, stderr } = await cli(
      "bind",
      "--name",
      "chosen",
      "--app-kubeconfig",
      env.app.kubeconfigPath,
      "--export",
      exportId,
    );
    assert.equal(code, 2, stdout);
    assert.match(stderr, /^klutch-bind: bind: accept or reject the 2 permission claim\(s\) \(stdin is not a terminal/);
    assert.match(stderr, /secrets\.core\/Provider of \S+: it writes secrets named \*-credentials into your namespaces/);
    assert.match(stderr, /--accept-claims RESOURCE\.GROUP\/OWNER,\.\.\. +accept these/);
    assert.equal(await env.controlClient.get(refs.klutchBindings, "chosen", env.bindingNamespace), undefined);
    assert.equal(await env.controlClient.get(refs.secrets, "chosen-kubeconfig", env.bindingNamespace), undefined);

    const typo = await cli(
      "bind",
      "--name",
      "chosen",
      "--app-kubeconfig",
      env.app.kubeconfigPath,
      "--export",
      exportId,
      "--accept-claims",
      "secret/Provider",
    );
    assert.equal(typo.code, 2);
    assert.match(
      typo.stderr,
      /"secret\/Provider" matches no claim; the claims are: secrets\.core\/Provider, configmaps/,
    );
    assert.equal(await env.controlClient.get(refs.klutchBindings, "chosen", env.bindingNamespace), undefined);
  });

  it("records the selected claim Accepted and the other Rejected, and syncs only the accepted one", async () => {
    const { code, stdout, stderr } = await cli(
      "bind",
      "--name",
      "chosen",
      "--app-kubeconfig",
      env.app.kubeconfigPath,
      "--export",
      exportId,
      "--accept-claims",
      "secrets.core/Provider",
    );
    assert.equal(code, 0, stderr);
    assert.match(stdout, /claim secrets\.core\/Provider: it writes secrets named \*-credentials/);
    assert.match(stdout, /✓ accepted claim secrets\.core\/Provider of \S+: it writes secrets/);
    assert.match(stdout, /✗ rejected claim configmaps\.core\/Consumer of \S+: it will not read configmaps/);
    assert.match(stdout, /✓ chosen is Ready after/);
    assert.deepEqual(await recorded("chosen"), { accepted: ["secrets"], rejected: ["configmaps"], pending: [] });

    const binding = await env.controlClient.get(refs.klutchBindings, "chosen", env.bindingNamespace);
    const ns = `chosen-${uniqueSuffix()}`;
    await env.appObject(ns, "db");
    const pns = providerNamespace(binding?.metadata.uid ?? "", ns);
    await eventually("provider copy", async () => assert.ok(await env.controlClient.get(env.ref, "db", pns)));
    // the consumer's configmap stays home; the provider's secret comes down
    await env.appClient.create(refs.configMaps, {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "app-settings", namespace: ns },
      data: { plan: "gold" },
    });
    await env.controlClient.create(refs.secrets, {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "db-credentials", namespace: pns },
      data: { password: Buffer.from("s3cret").toString("base64") },
    });
    // made after the configmap: once its copy is down, the claims the sync runs have seen the configmap
    await eventually("the accepted claim's secret comes down", async () =>
      assert.ok(await env.appClient.get(refs.secrets, "db-credentials", ns)),
    );
    assert.equal(
      await env.controlClient.get(refs.configMaps, "app-settings", pns),
      undefined,
      "the rejected claim's configmap is not synced",
    );
    const read = await env.controlClient.get(refs.klutchBindings, "chosen", env.bindingNamespace);
    assert.equal(conditionOf(read, "Ready")?.status, "True");
  });

  it("asks claim by claim on a terminal, and a new answer changes what is synced", async () => {
    // the command in this process, its stdin a terminal stand-in the answers are typed into
    const stdin = Readable.from(["n\n", "y\n"]) as Readable & { isTTY?: boolean };
    stdin.isTTY = true;
    const stdout = new PassThrough();
    const chunks: Buffer[] = [];
    stdout.on("data", (c: Buffer) => chunks.push(c));
    const code = await runBind(
      [
        "--name",
        "chosen",
        "--app-kubeconfig",
        env.app.kubeconfigPath,
        "--export",
        exportId,
        "--kubeconfig",
        env.control.kubeconfigPath,
        "-n",
        env.bindingNamespace,
      ],
      { stdin, stdout },
    );
    const text = Buffer.concat(chunks).toString("utf8");
    assert.equal(code, 0, text);
    assert.match(
      text,
      /claim 1 of 2 \(secrets\.core\/Provider\):\n {2}it writes secrets named \*-credentials[^\n]*\n {2}accept\? \[y\/N\] /,
    );
    assert.match(text, /claim 2 of 2 \(configmaps\.core\/Consumer\):\n {2}it reads configmaps named app-\*/);
    assert.match(text, /✗ rejected claim secrets\.core\/Provider/);
    assert.match(text, /✓ accepted claim configmaps\.core\/Consumer/);
    assert.deepEqual(await recorded("chosen"), { accepted: ["configmaps"], rejected: ["secrets"], pending: [] });
    const binding = await env.controlClient.get(refs.klutchBindings, "chosen", env.bindingNamespace);
    const ns = `asked-${uniqueSuffix()}`;
    await env.appObject(ns, "db");
    const pns = providerNamespace(binding?.metadata.uid ?? "", ns);
    await env.appClient.create(refs.configMaps, {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "app-settings", namespace: ns },
      data: { plan: "silver" },
    });
    await eventually("the now accepted configmap goes up", async () => {
      const up = await env.controlClient.get(refs.configMaps, "app-settings", pns);
      assert.deepEqual(up?.data, { plan: "silver" });
    });
  });
});

// Bindings made before bind wrote klutch-bind's kind (bind.klutch.dev) keep working unchanged: status
// shows them, bind again updates them in place, unbind handles them; an API of its own.
describe("klutch-bind status, bind, unbind: bind.klutch.dev bindings made before", () => {
  let env: SyncEnv;
  let exportId: string;
  const cli = (...args: string[]) => runCli(env, env.control.kubeconfigPath, args);
  const bind = (name: string, ...more: string[]) =>
    cli("bind", "--name", name, "--app-kubeconfig", env.app.kubeconfigPath, "--export", exportId, ...more);

  before(async () => {
    env = await syncEnv();
    exportId = `postgresqlinstances.${env.ref.group}`;
  });

  it("shows, binds again and unbinds an older binding in its own kind", async () => {
    // the older kind, with a Secret as bind made it then
    await env.bindWith("legacy", env.appKubeconfig);
    await env.ready("legacy");
    const status = await cli("status", "legacy");
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /^legacy\s+True\s+True\s+\S+\s+\S+\s+bind\.klutch\.dev$/m);

    // bind again under its name: the older binding records the answers, no second binding appears
    const again = await bind("legacy", "--accept-claims", "none");
    assert.equal(again.code, 0, again.stderr);
    assert.match(
      again.stdout,
      /AppClusterBinding \S+\/legacy \(bind\.klutch\.dev\/v1alpha1, made before klutch-bind's kind\) updated/,
    );
    assert.match(again.stdout, /✓ legacy is Ready after/);
    assert.equal(await env.controlClient.get(refs.klutchBindings, "legacy", env.bindingNamespace), undefined);
    const older = await env.controlClient.get(refs.bindings, "legacy", env.bindingNamespace);
    const spec = (older?.spec ?? {}) as { exports?: Array<{ resource: string }>; apiExports?: unknown };
    assert.deepEqual(
      spec.exports?.map((e) => e.resource),
      ["postgresqlinstances"],
    );
    assert.equal(spec.apiExports, undefined);

    const unbound = await cli("unbind", "legacy", "--orphan");
    assert.equal(unbound.code, 0, unbound.stderr);
    assert.match(unbound.stdout, /✓ AppClusterBinding \S+\/legacy deleted/);
    assert.equal(await env.controlClient.get(refs.bindings, "legacy", env.bindingNamespace), undefined);
  });

  it("refuses to bind over a hand-written binding whose kubeconfigSecretRef (immutable) names another Secret", async () => {
    await env.controlClient.create(refs.klutchBindings, {
      apiVersion: "klutch.anynines.com/v1alpha1",
      kind: "AppClusterBinding",
      metadata: { name: "by-hand", namespace: env.bindingNamespace },
      spec: {
        kubeconfigSecretRef: { name: "their-kubeconfig", namespace: env.bindingNamespace, key: "kubeconfig" },
        apiExports: [{ group: env.ref.group, resource: "postgresqlinstances" }],
      },
    });
    const refused = await bind("by-hand", "--accept-claims");
    assert.equal(refused.code, 1);
    assert.match(
      refused.stderr,
      /AppClusterBinding \S+\/by-hand exists and reads its kubeconfig from Secret \S+\/their-kubeconfig \(immutable\): choose another binding name, or unbind it first/,
    );
    assert.equal(await env.controlClient.get(refs.secrets, "by-hand-kubeconfig", env.bindingNamespace), undefined);
    await env.controlClient.delete(refs.klutchBindings, "by-hand", env.bindingNamespace);
  });

  it("asks which one to unbind when both kinds have a binding of the name", async () => {
    await env.bindWith("twin", env.appKubeconfig);
    const bound = await bind("twin", "--accept-claims", "--no-wait");
    assert.equal(bound.code, 0, bound.stderr);
    // bind updated the older one rather than making a twin; make klutch-bind's by hand
    assert.equal(await env.controlClient.get(refs.klutchBindings, "twin", env.bindingNamespace), undefined);
    await env.controlClient.create(refs.klutchBindings, {
      apiVersion: "klutch.anynines.com/v1alpha1",
      kind: "AppClusterBinding",
      metadata: { name: "twin", namespace: env.bindingNamespace },
      spec: {
        kubeconfigSecretRef: { name: "twin-kubeconfig", namespace: env.bindingNamespace, key: "kubeconfig" },
        apiExports: [{ group: env.ref.group, resource: "postgresqlinstances" }],
      },
    });
    const status = await cli("status", "twin");
    assert.match(status.stdout, /^twin\s.*klutch\.anynines\.com$/m);
    assert.match(status.stdout, /^twin\s.*bind\.klutch\.dev$/m);

    const ambiguous = await cli("unbind", "twin", "--orphan");
    assert.equal(ambiguous.code, 2);
    assert.match(
      ambiguous.stderr,
      /both klutch\.anynines\.com and bind\.klutch\.dev have an AppClusterBinding twin: choose one with --api-group/,
    );
    const older = await cli("unbind", "twin", "--orphan", "--api-group", "bind.klutch.dev");
    assert.equal(older.code, 0, older.stderr);
    assert.equal(await env.controlClient.get(refs.bindings, "twin", env.bindingNamespace), undefined);
    assert.ok(await env.controlClient.get(refs.klutchBindings, "twin", env.bindingNamespace), "the other kind's stays");
  });
});
