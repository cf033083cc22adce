// Issue #13 point 4, on real API servers: bind keeps no admin credentials. The app cluster's
// admin kubeconfig is used once to create the binding's service account and roles; the sync
// then works with that account's short-lived token only (bound objects, provider- and
// consumer-owned claimed objects), gets 403 beyond its role, renews the token before it expires
// without a gap, and removes the account when the binding goes.
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { promisify } from "node:util";
import { pino } from "pino";
import { kubeconfigSecretMarks } from "../../src/api/kubeconfig-secret.ts";
import { providerNamespace } from "../../src/api/naming.ts";
import { refs } from "../../src/api/resources.ts";
import {
  accountFor,
  accountObjects,
  appAccessAnnotation,
  kubeconfigToken,
  tokenAccount,
  tokenTimes,
} from "../../src/app-access/account.ts";
import { grantAppAccess, printRbac } from "../../src/bind/app-access.ts";
import type { PermissionClaim } from "../../src/export/types.ts";
import { KubeApiError, KubeClient, type KubeObject } from "../../src/kube/client.ts";
import { conditionOf } from "../../src/kube/conditions.ts";
import { startSync } from "../../src/sync/manager.ts";
import { accountKubeconfig, serviceAccount } from "../support/accounts.ts";
import { kubeConfig, onFileDone, testNamespace, uniqueSuffix } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";
import { apply, readManifests } from "../support/manifests.ts";
import { type SyncEnv, syncEnv } from "../support/sync-env.ts";
import { repoRoot } from "../support/tools.ts";

const claims: PermissionClaim[] = [
  { group: "", resource: "secrets", version: "v1", selector: { owner: "Provider", names: ["db-*"] } },
  // a resource is claimed once per template: the consumer owns configmaps
  { group: "", resource: "configmaps", version: "v1", selector: { owner: "Consumer", names: ["app-*"] } },
];

async function forbidden(what: string, call: () => Promise<unknown>): Promise<void> {
  await assert.rejects(call, (err: unknown) => err instanceof KubeApiError && err.code === 403, `${what}: not 403`);
}

/** The kubeconfig text a binding's Secret holds. */
const storedKubeconfig = (obj: KubeObject | undefined): string =>
  Buffer.from(String((obj?.data as Record<string, string> | undefined)?.kubeconfig ?? ""), "base64").toString();

const secret = (name: string, namespace: string, value: string): KubeObject => ({
  apiVersion: "v1",
  kind: "Secret",
  metadata: { name, namespace },
  type: "Opaque",
  data: { value: Buffer.from(value).toString("base64") },
});

/** The kubeconfig Secret and the binding that names it, as bind writes them (renewed: marked for token renewal). */
async function storeBinding(env: SyncEnv, name: string, kubeconfig: string, { renewed }: { renewed: boolean }) {
  const { controlClient, bindingNamespace: namespace } = env;
  const marks = kubeconfigSecretMarks({ group: refs.bindings.group, namespace, name });
  await controlClient.create(refs.secrets, {
    apiVersion: "v1",
    kind: "Secret",
    metadata: {
      name: `${name}-kubeconfig`,
      namespace,
      labels: marks.labels,
      annotations: { ...marks.annotations, ...(renewed ? { [appAccessAnnotation]: "service-account" } : {}) },
    },
    data: { kubeconfig: Buffer.from(kubeconfig).toString("base64") },
  });
  await controlClient.create(refs.bindings, {
    apiVersion: "bind.klutch.dev/v1alpha1",
    kind: "AppClusterBinding",
    metadata: { name, namespace },
    spec: {
      kubeconfigSecretRef: { name: `${name}-kubeconfig` },
      exports: [{ group: env.ref.group, resource: env.ref.resource }],
    },
  });
}

describe("a binding through a service account of its own", () => {
  it("syncs with that account only, is refused beyond it, renews its token without a gap, and removes it on unbind", async () => {
    const env = await syncEnv({ inProcess: false });
    const { controlClient, appClient, bindingNamespace: ns } = env;
    const renewAt = 0.01; // of 600 s: every 6 s
    const sync = await startSync({
      control: controlClient,
      // the test's app clusters listen on 127.0.0.1
      allowLoopbackAppServers: true,
      logger: pino({ level: process.env.KLB_TEST_LOG ?? "silent" }),
      workers: 4,
      namespace: ns,
      resyncMs: 1000,
      appTokenRenewFraction: renewAt,
    });
    onFileDone(() => sync.stop());
    await env.template(claims);

    // bind: the admin kubeconfig once, a token kubeconfig stored
    const name = `acct-${uniqueSuffix()}`;
    const exports = [{ group: env.ref.group, resource: env.ref.resource, claims }];
    const granted = await grantAppAccess(env.appKubeconfig, {
      bindingNamespace: ns,
      bindingName: name,
      exports,
      tokenSeconds: 600,
    });
    const account = granted.account;
    const names = accountObjects(account);
    assert.equal(granted.selfIssued, false);
    assert.doesNotMatch(granted.kubeconfig, /client-key-data|client-certificate-data/);
    const firstToken = kubeconfigToken(granted.kubeconfig) ?? "";
    const times = tokenTimes(firstToken);
    assert.ok(times);
    const lifetime = (times.expires - times.issuedAt) / 1000;
    assert.ok(lifetime >= 600 && lifetime < 700, `token lifetime ${lifetime} s`);
    await storeBinding(env, name, granted.kubeconfig, { renewed: true });

    // the sync installs the CRD itself (create by name through server-side apply) and syncs
    const appNs = `acct-app-${uniqueSuffix()}`;
    await env.ready(name);
    await env.appObject(appNs, "db1");
    const mapped = providerNamespace((await controlClient.get(refs.bindings, name, ns))?.metadata.uid ?? "", appNs);
    await eventually("provider copy", async () => assert.ok(await controlClient.get(env.ref, "db1", mapped)));
    await eventually("claims role bound in the app namespace", async () =>
      assert.ok(await appClient.get(refs.roleBindings, names.claimsRoleBinding, appNs)),
    );
    await controlClient.create(refs.secrets, secret("db-creds", mapped, "from provider"));
    await appClient.create(refs.configMaps, {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "app-settings", namespace: appNs },
      data: { value: "from consumer" },
    });
    await eventually("provider-owned secret in the app namespace", async () =>
      assert.ok(await appClient.get(refs.secrets, "db-creds", appNs)),
    );
    await eventually("consumer-owned configmap in the provider namespace", async () =>
      assert.ok(await controlClient.get(refs.configMaps, "app-settings", mapped)),
    );

    // the account, beyond its role: 403
    const asAccount = KubeClient.fromKubeconfigText(granted.kubeconfig);
    onFileDone(async () => asAccount.close());
    const otherNs = `acct-other-${uniqueSuffix()}`;
    await appClient.create(refs.namespaces, { apiVersion: "v1", kind: "Namespace", metadata: { name: otherNs } });
    onFileDone(() => appClient.delete(refs.namespaces, otherNs).catch(() => undefined));
    await appClient.create(refs.secrets, secret("db-elsewhere", otherNs, "not bound"));
    await forbidden("a Secret in an unbound namespace", () => asAccount.get(refs.secrets, "db-elsewhere", otherNs));
    await forbidden("secrets cluster-wide", () => asAccount.list(refs.secrets));
    await forbidden("another CRD", () => asAccount.get(refs.crds, "appclusterbindings.bind.klutch.dev"));
    await forbidden("creating a ClusterRole", () =>
      asAccount.create(refs.clusterRoles, {
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "ClusterRole",
        metadata: { name: `acct-escalate-${uniqueSuffix()}` },
        rules: [],
      }),
    );
    await forbidden("a CRD by plain create", () =>
      asAccount.create(refs.crds, {
        apiVersion: "apiextensions.k8s.io/v1",
        kind: "CustomResourceDefinition",
        metadata: { name: `others.${env.ref.group}` },
      }),
    );
    await forbidden("a token for another account", () =>
      asAccount.request("POST", "/api/v1/namespaces/kube-system/serviceaccounts/default/token", {
        body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenRequest", spec: { expirationSeconds: 600 } },
      }),
    );
    await forbidden("the claims role in an unbound namespace, by a RoleBinding of another name", () =>
      asAccount.apply(
        refs.roleBindings,
        {
          apiVersion: "rbac.authorization.k8s.io/v1",
          kind: "RoleBinding",
          metadata: { name: "sneaky", namespace: otherNs },
          roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: names.claimsRole },
          subjects: [{ kind: "ServiceAccount", name: account.name, namespace: account.namespace }],
        },
        "test",
      ),
    );
    // and the control plane never holds the admin's credentials
    const stored = await controlClient.get(refs.secrets, `${name}-kubeconfig`, ns);
    const storedText = storedKubeconfig(stored);
    assert.notEqual(storedText, env.appKubeconfig);
    assert.doesNotMatch(storedText, /client-key-data/);

    // renewal: the Secret's token changes every ~6 s while objects created across it arrive
    const tokens = [kubeconfigToken(storedText) ?? ""];
    const renewedAt: number[] = [];
    const latencies: number[] = [];
    const started = Date.now();
    for (let i = 0; renewedAt.length < 3; i++) {
      assert.ok(Date.now() - started < 60_000, `only ${renewedAt.length} renewals in 60 s`);
      const created = Date.now();
      await env.appObject(appNs, `across-${i}`);
      await controlClient.create(refs.secrets, secret(`db-across-${i}`, mapped, `${i}`));
      await eventually(`object ${i} synced`, async () => {
        assert.ok(await controlClient.get(env.ref, `across-${i}`, mapped));
        assert.ok(await appClient.get(refs.secrets, `db-across-${i}`, appNs));
      });
      latencies.push(Date.now() - created);
      const now = await controlClient.get(refs.secrets, `${name}-kubeconfig`, ns);
      const token = kubeconfigToken(storedKubeconfig(now)) ?? "";
      if (token !== tokens.at(-1)) {
        tokens.push(token);
        renewedAt.push(Date.now() - started);
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    const last = tokenTimes(tokens.at(-1) ?? "");
    assert.ok(last && last.expires > Date.now() + 500_000, "the renewed token lives as long as the first");
    assert.equal(new Set(tokens).size, tokens.length);
    const connected = (await controlClient.get(refs.bindings, name, ns))?.status as {
      conditions?: Array<{ type: string; status: string }>;
    };
    assert.equal(connected.conditions?.find((c) => c.type === "Ready")?.status, "True");
    console.log(
      `renewals at ${renewedAt.map((ms) => (ms / 1000).toFixed(1)).join(", ")} s; ` +
        `sync latency across them max ${Math.max(...latencies)} ms over ${latencies.length} objects`,
    );
    assert.ok(Math.max(...latencies) < 10_000);

    // --print-rbac's YAML applies cleanly (server-side dry run)
    const yaml = printRbac({
      bindingNamespace: ns,
      bindingName: `${name}-p`,
      exports,
    });
    execFileSync(
      `${repoRoot}/.dev/bin/kubectl`,
      ["--kubeconfig", env.app.kubeconfigPath, "apply", "--dry-run=server", "-f", "-"],
      {
        input: yaml,
        stdio: ["pipe", "ignore", "inherit"],
      },
    );

    // unbind: the binding goes, and the account with it
    await controlClient.delete(refs.bindings, name, ns);
    await eventually(
      "account removed",
      async () => {
        assert.equal(await appClient.get(refs.clusterRoles, names.mainRole), undefined);
        assert.equal(await appClient.get(refs.serviceAccounts, account.name, account.namespace), undefined);
        assert.equal(await appClient.get(refs.clusterRoleBindings, names.clusterRoleBinding), undefined);
        assert.equal(await appClient.get(refs.clusterRoles, names.claimsRole), undefined);
        assert.equal(await appClient.get(refs.roleBindings, names.claimsRoleBinding, appNs), undefined);
      },
      60_000,
    );
    assert.equal(await controlClient.get(refs.bindings, name, ns), undefined);
  });
});

const run = promisify(execFile);

describe("an accepted claim the binding's account cannot reach", () => {
  it("says so on the binding (Connected=False, naming the claimed resource and namespace)", async () => {
    const env = await syncEnv({ inProcess: false });
    const { controlClient, bindingNamespace: ns } = env;
    const sync = await startSync({
      control: controlClient,
      // the test's app clusters listen on 127.0.0.1
      allowLoopbackAppServers: true,
      logger: pino({ level: process.env.KLB_TEST_LOG ?? "silent" }),
      workers: 4,
      namespace: ns,
      resyncMs: 1000,
    });
    onFileDone(() => sync.stop());
    await env.template([claims[0] as PermissionClaim]);
    // the account was made for no claims, while the binding records none, so the sync accepts the
    // template's claims on first sight: the app side refuses the claimed Secrets
    const name = `noclaims-${uniqueSuffix()}`;
    const granted = await grantAppAccess(env.appKubeconfig, {
      bindingNamespace: ns,
      bindingName: name,
      exports: [{ group: env.ref.group, resource: env.ref.resource, claims: [] }],
      tokenSeconds: 600,
    });
    await storeBinding(env, name, granted.kubeconfig, { renewed: false });
    await env.ready(name);
    const appNs = `noclaims-app-${uniqueSuffix()}`;
    await env.appObject(appNs, "db1");
    await eventually("Connected=False naming the claimed Secrets", async () => {
      const connected = conditionOf(await controlClient.get(refs.bindings, name, ns), "Connected");
      assert.equal(connected?.status, "False", JSON.stringify(connected));
      assert.match(connected?.message ?? "", new RegExp(`claimed secrets in namespace ${appNs}: .*forbidden`, "i"));
    });
  });
});

describe("klutch-bind bind and unbind with an app cluster service account", () => {
  it("bind stores the account's kubeconfig, --print-rbac applies for teams who bind with the account itself, unbind --delete removes objects and account", async () => {
    const env = await syncEnv();
    await env.template(claims);
    const exportId = `${env.ref.resource}.${env.ref.group}`;
    const cli = (...args: string[]) =>
      run(
        process.execPath,
        [
          join(repoRoot, "src/cli/main.ts"),
          ...args,
          "--kubeconfig",
          env.control.kubeconfigPath,
          "-n",
          env.bindingNamespace,
        ],
        { cwd: repoRoot },
      );
    const kubectl = (args: string[], input?: string) =>
      execFileSync(`${repoRoot}/.dev/bin/kubectl`, ["--kubeconfig", env.app.kubeconfigPath, ...args], {
        ...(input === undefined ? {} : { input }),
        encoding: "utf8",
        stdio: ["pipe", "pipe", "inherit"],
      });

    // a team's admins apply the printed RBAC and hand over a token of the account; bind with it
    const team = `team-${uniqueSuffix()}`;
    const printed = await cli("bind", "--name", team, "--export", exportId, "--accept-claims", "all", "--print-rbac");
    assert.match(printed.stdout, /^# The app cluster side of binding/);
    assert.doesNotMatch(printed.stdout, /✓/);
    kubectl(["apply", "--dry-run=server", "-f", "-"], printed.stdout);
    kubectl(["apply", "-f", "-"], printed.stdout);
    const teamAccount = accountFor(env.bindingNamespace, team);
    onFileDone(async () => {
      // applied by hand, so not owned by the main role: removed by name, as the team would
      const names = accountObjects(teamAccount);
      const gone = (p: Promise<unknown>) => p.catch(() => undefined);
      await gone(env.appClient.delete(refs.clusterRoles, names.mainRole));
      await gone(env.appClient.delete(refs.clusterRoles, names.claimsRole));
      await gone(env.appClient.delete(refs.clusterRoleBindings, names.clusterRoleBinding));
      await gone(env.appClient.delete(refs.serviceAccounts, teamAccount.name, teamAccount.namespace));
    });
    const token = kubectl([
      "create",
      "token",
      "-n",
      teamAccount.namespace,
      teamAccount.name,
      "--duration",
      "600s",
    ]).trim();
    const own = join(mkdtempSync(join(tmpdir(), "klb-acct-")), "kubeconfig");
    writeFileSync(own, accountKubeconfig(kubeConfig(env.app), { ...teamAccount, username: "", token }).exportConfig());
    const bound = await cli(
      "bind",
      "--name",
      team,
      "--app-kubeconfig",
      own,
      "--export",
      exportId,
      "--accept-claims",
      "all",
    );
    assert.match(bound.stdout, new RegExp(`✓ service account klutch-bind/${teamAccount.name} in the app cluster`));
    assert.match(bound.stdout, /is Ready after/);
    const teamSecret = await env.controlClient.get(refs.secrets, `${team}-kubeconfig`, env.bindingNamespace);
    const teamToken = kubeconfigToken(storedKubeconfig(teamSecret)) ?? "";
    assert.notEqual(teamToken, token, "bind asked for a token of its own");
    assert.deepEqual(tokenAccount(teamToken), teamAccount);

    // one binding per app cluster and API: let go of the team's first (its hand-applied main role goes)
    await cli("unbind", team, "--orphan");
    assert.equal(await env.appClient.get(refs.clusterRoles, accountObjects(teamAccount).mainRole), undefined);

    // an admin kubeconfig: used once, never stored; unbind --delete removes the account too
    const doomed = `doomed-${uniqueSuffix()}`;
    const made = await cli(
      "bind",
      "--name",
      doomed,
      "--app-kubeconfig",
      env.app.kubeconfigPath,
      "--export",
      exportId,
      "--accept-claims",
      "all",
    );
    assert.match(made.stdout, /✓ the account's kubeconfig stored as Secret \S+ \(--app-kubeconfig is not stored\)/);
    const account = accountFor(env.bindingNamespace, doomed);
    const stored = storedKubeconfig(
      await env.controlClient.get(refs.secrets, `${doomed}-kubeconfig`, env.bindingNamespace),
    );
    assert.deepEqual(tokenAccount(kubeconfigToken(stored) ?? ""), account);
    assert.doesNotMatch(stored, /client-key-data/);
    const appNs = `doomed-${uniqueSuffix()}`;
    await env.appObject(appNs, "db");
    const uid = (await env.controlClient.get(refs.klutchBindings, doomed, env.bindingNamespace))?.metadata.uid ?? "";
    await eventually("provider copy", async () =>
      assert.ok(await env.controlClient.get(env.ref, "db", providerNamespace(uid, appNs))),
    );
    const unbound = await cli("unbind", doomed, "--delete");
    assert.match(unbound.stdout, /✓ 1 app cluster object\(s\) of \S+ deleted/);
    assert.equal(await env.appClient.get(env.ref, "db", appNs), undefined);
    assert.equal(await env.controlClient.get(env.ref, "db", providerNamespace(uid, appNs)), undefined);
    await eventually("account removed", async () => {
      assert.equal(await env.appClient.get(refs.clusterRoles, accountObjects(account).mainRole), undefined);
      assert.equal(await env.appClient.get(refs.serviceAccounts, account.name, account.namespace), undefined);
    });
  });
});

describe("the sync's control-plane RBAC and renewed tokens", () => {
  it("deploy/'s kubeconfig Role lets the sync write a renewed token into a binding's Secret, and create none", async () => {
    const env = await syncEnv({ inProcess: false });
    const ns = await testNamespace(env.control, "kubeconfigs");
    const role = readManifests("deploy/control-plane/sync-rbac.yaml").find((o) => o.kind === "Role");
    assert.ok(role);
    await apply(env.control, [{ ...role, metadata: { ...role.metadata, namespace: ns } }] as never);
    const sync = await serviceAccount(env.controlClient, ns, `sync-${uniqueSuffix()}`);
    const roleBinding = {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: "klutch-bind:sync-kubeconfigs", namespace: ns },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: role.metadata?.name ?? "" },
      subjects: [{ kind: "ServiceAccount", name: sync.name, namespace: ns }],
    };
    await apply(env.control, [roleBinding] as never);
    const asSync = KubeClient.fromKubeconfigText(accountKubeconfig(kubeConfig(env.control), sync).exportConfig());
    onFileDone(async () => asSync.close());
    await env.controlClient.create(refs.secrets, secret("b-kubeconfig", ns, "old token"));
    await eventually("the sync may update the Secret", async () => {
      const read = await asSync.get(refs.secrets, "b-kubeconfig", ns);
      assert.ok(read);
      await asSync.update(refs.secrets, { ...read, data: { value: Buffer.from("new token").toString("base64") } });
    });
    await forbidden("creating a Secret", () => asSync.create(refs.secrets, secret("other", ns, "x")));
  });
});
