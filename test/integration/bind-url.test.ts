// `klutch-bind bind URL`, the app team's side of a pull binding, for real: the CLI fetches the
// page's discovery document and prints the authorize URL; Chromium signs in at the page, picks the
// API and accepts its claims; the page sends the browser to the CLI's loopback callback with a
// one-time code, which the CLI trades with its PKCE verifier for the binding. The CLI then installs
// the konnector into a fresh app cluster of this file's own. There is no kubelet here: the test
// runs the konnector as the Deployment would (same arguments, the ServiceAccount's own token), so
// its rights are exactly those bind granted, and it must never be refused (403). Also: --dry-run
// creates nothing anywhere, the headless variant (a bearer token), and the page's code hand-off
// refusing a wrong verifier and a second use.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser } from "playwright-core";
import { parseAllDocuments } from "yaml";
import { bindingRef, pullRefs } from "../../src/api/pull-binding.ts";
import { refs } from "../../src/api/resources.ts";
import { clusterId } from "../../src/app-bind/install.ts";
import { KubeClient, type KubeObject } from "../../src/kube/client.ts";
import { clusterNamespaceName } from "../../src/provider/provision.ts";
import type { RunningWeb } from "../../src/web/server.ts";
import { type Account, grant, serviceAccount } from "../support/accounts.ts";
import {
  type DeployedKonnector,
  klutchBind,
  konnectorRequests,
  printed,
  startDeployedKonnector,
  startPullPage,
} from "../support/app-bind.ts";
import { launchChromium } from "../support/browser.ts";
import type { Cluster } from "../support/cluster.ts";
import { clientConfig, freshCluster, onFileDone } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";
import { type PullEnv, pullEnv } from "../support/pull-env.ts";
import { WebAgent } from "../support/web-agent.ts";

const configmapClaim = { group: "", resource: "configmaps", version: "v1", selector: { owner: "Consumer" } };
const secretClaim = { group: "", resource: "secrets", version: "v1", selector: { owner: "Provider" } };
const claimVerbs = ["get", "list", "watch", "create", "update", "patch", "delete"];

describe("klutch-bind bind URL: binding from the app cluster", () => {
  let env: PullEnv;
  let web: RunningWeb;
  let app: Cluster;
  let appClient: KubeClient;
  let browser: Browser;
  /** may bind from the tenant namespace */
  let dana: Account;
  /** may bind too: the dry runs are hers, so that they can be seen to leave nothing */
  let erin: Account;
  let apiId: string;
  let konnector: DeployedKonnector | undefined;

  before(async () => {
    [env, app] = await Promise.all([
      pullEnv({
        prefix: "bind-url",
        claims: [configmapClaim, secretClaim],
        claimsRules: [{ apiGroups: [""], resources: ["configmaps", "secrets"], verbs: claimVerbs }],
      }),
      freshCluster("bind-url-app"),
    ]);
    apiId = `postgresqlinstances.${env.api.group}`;
    appClient = KubeClient.fromConfig(clientConfig(app));
    onFileDone(async () => appClient.close());
    dana = await serviceAccount(env.admin, env.tenantNs, "dana");
    erin = await serviceAccount(env.admin, env.tenantNs, "erin");
    await grant(env.admin, dana, "klutch-bind:binder", env.tenantNs);
    await grant(env.admin, erin, "klutch-bind:binder", env.tenantNs);
    // the page runs as its own account with web-rbac.yaml's roles only: provisioning included
    web = await startPullPage(env);
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    for (const who of [dana, erin]) {
      const owned = await env.admin.list(refs.namespaces, { labelSelector: "bind.klutch.dev/pull-binding=true" });
      for (const ns of owned.items) {
        const owner = ns.metadata.annotations?.["example-backend.klutch.anynines.com/identity"] ?? "";
        if (owner.startsWith(`${who.username}#`)) await env.admin.delete(refs.namespaces, ns.metadata.name);
      }
    }
  });

  /** the app cluster's id as bind makes it */
  const clusterIdOf = () => clusterId(appClient);

  it("binds in Chromium, installs the konnector with least rights, and the binding becomes Ready", {
    timeout: 240_000,
  }, async () => {
    const run = klutchBind([
      "bind",
      `${web.url}/export/klutch`,
      "--kubeconfig",
      app.kubeconfigPath,
      "--no-browser",
      "--konnector-image",
      "klutch-bind:test",
      "--timeout",
      "180",
    ]);
    const authorize = (await printed(run, /^\s+http:\/\/127\.0\.0\.1:\d+\/authorize\?/)).trim();
    const url = new URL(authorize);
    assert.equal(url.searchParams.get("code_challenge_method"), "S256");
    assert.match(url.searchParams.get("u") ?? "", /^http:\/\/127\.0\.0\.1:\d+\/callback$/);

    const context = await browser.newContext();
    onFileDone(() => context.close());
    const page = await context.newPage();
    await page.goto(authorize);
    assert.match(page.url(), /\/login$/, "sign in first");
    await page.fill("#token", dana.token);
    await Promise.all([page.waitForURL(`${web.url}/cli-bind`), page.click("button[type=submit]")]);
    await page.check(`input[name=export][value="${apiId}"]`);
    // the Consumer-owned ConfigMaps accepted, the Provider's Secrets rejected
    await page.check(`input[name=claim][data-export="${apiId}"][data-claim="configmaps.core/Consumer"]`);
    await Promise.all([
      page.waitForURL(/^http:\/\/127\.0\.0\.1:\d+\/callback\?code=/),
      page.click("#cli-bind-form button[type=submit]"),
    ]);
    assert.match((await page.textContent("h1")) ?? "", /Bound/);
    assert.ok(!page.url().includes("kubeconfig") && !page.url().includes("response="), "no binding in the browser");

    // the page made the cluster namespace; this file's sync serves the ones it is told of
    const clusterNs = /cluster namespace (\S+) on /.exec(await printed(run, /bound .* as /))?.[1] ?? "";
    assert.equal(
      clusterNs,
      clusterNamespaceName(dana.username, clusterNs === "" ? "" : await clusterIdOf()),
      clusterNs,
    );
    await env.serve(clusterNs);
    await printed(run, /✓ Deployment klutch-bind\/klutch-bind-konnector/);
    konnector = await startDeployedKonnector(appClient, app, "klutch-bind");
    assert.equal(await run.exited, 0, run.out.join("\n"));
    assert.ok(
      run.out.some((l) => new RegExp(`✓ ${apiId.replaceAll(".", "\\.")} is Ready after`).test(l)),
      run.out.join("\n"),
    );

    // what it installed: no wildcard anywhere, the claims role holding only the accepted claim
    const roles = (
      await appClient.list(refs.clusterRoles, { labelSelector: "app.kubernetes.io/managed-by=klutch-bind" })
    ).items;
    const rules = roles.flatMap((r) => (r as KubeObject & { rules: Array<Record<string, string[]>> }).rules);
    assert.ok(rules.length > 0);
    for (const rule of rules) {
      for (const key of ["apiGroups", "resources", "verbs"]) assert.ok(!rule[key]?.includes("*"), JSON.stringify(rule));
    }
    const claims = roles.find((r) => r.metadata.name === "klutch-bind:app:konnector:claims") as
      | (KubeObject & { rules: Array<{ resources: string[] }> })
      | undefined;
    assert.deepEqual(
      claims?.rules.flatMap((r) => r.resources),
      ["configmaps"],
    );
    const binding = await appClient.get(bindingRef, apiId);
    const spec = binding?.spec as {
      kubeconfigSecretRef: { name: string; namespace: string };
      permissionClaims: unknown[];
    };
    assert.equal(spec.kubeconfigSecretRef.namespace, "klutch-bind");
    assert.deepEqual(spec.permissionClaims, [{ ...configmapClaim, state: "Accepted" }]);
    assert.ok(await appClient.get(refs.secrets, spec.kubeconfigSecretRef.name, "klutch-bind"));
  });

  it("mirrors through the konnector with only those rights: spec up, status and claims, never a 403", {
    timeout: 120_000,
  }, async () => {
    assert.ok(konnector, "the konnector of the first test runs");
    const appNs = "orders";
    await appClient.apply(refs.namespaces, { apiVersion: "v1", kind: "Namespace", metadata: { name: appNs } }, "test");
    const api = { ...env.api };
    await appClient.create(api, {
      apiVersion: `${api.group}/v1`,
      kind: "PostgresqlInstance",
      metadata: { name: "db", namespace: appNs },
      spec: { size: "small" },
    });
    await appClient.create(refs.configMaps, {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "db-settings", namespace: appNs },
      data: { a: "1" },
    });
    let providerNs = "";
    await eventually("the object's copy on the control plane", async () => {
      const copies = (await env.admin.list(api, { labelSelector: "" })).items.filter((o) => o.metadata.name === "db");
      assert.equal(copies.length, 1);
      assert.deepEqual(copies[0]?.spec, { size: "small" });
      providerNs = copies[0]?.metadata.namespace ?? "";
    });
    const status = { endpoint: "db.example", conditions: [{ type: "Ready", status: "True", reason: "Available" }] };
    const copy = await env.admin.get(api, "db", providerNs);
    assert.ok(copy);
    await env.admin.updateStatus(api, { ...copy, status });
    await eventually("status comes down", async () =>
      assert.deepEqual((await appClient.get(api, "db", appNs))?.status, status),
    );
    await eventually("the Consumer's ConfigMap goes up", async () => {
      const up = await env.admin.get(refs.configMaps, "db-settings", providerNs);
      assert.deepEqual((up as { data?: unknown } | undefined)?.data, { a: "1" });
    });
    // the claims role bound in the app namespace, by the konnector itself
    assert.ok(await appClient.get(refs.roleBindings, "klutch-bind:app:konnector:claims", appNs));
    const requests = await konnectorRequests(konnector.metricsPort);
    assert.ok(requests.total > 0, "the konnector made requests");
    assert.deepEqual(requests.forbidden, { app: 0, control: 0 });
  });

  it("--dry-run -o yaml prints every object and creates nothing, in the app cluster or on the control plane", async () => {
    const tokenFile = join(app.dir, "erin.token");
    writeFileSync(tokenFile, erin.token);
    const namespace = "klutch-bind-dry";
    // what the first test made and a dry run would apply again, cluster-wide whatever -n says (its
    // ClusterRoleBinding would name -n's account: applied, it would change)
    const clusterWide = async () =>
      Promise.all([
        appClient.get(refs.crds, `${bindingRef.resource}.${bindingRef.group}`),
        appClient.get(refs.clusterRoles, "klutch-bind:app:konnector"),
        appClient.get(refs.clusterRoles, "klutch-bind:app:konnector:claims"),
        appClient.get(refs.clusterRoleBindings, "klutch-bind:app:konnector"),
      ]).then((objects) => objects.map((o) => `${o?.metadata.name}@${o?.metadata.resourceVersion}`));
    // the APIServiceBinding's status is the running konnector's to write: its spec's generation
    const bindingGeneration = async () => (await appClient.get(bindingRef, apiId))?.metadata.generation;
    const generationBefore = await bindingGeneration();
    const before = await clusterWide();
    const run = klutchBind([
      "bind",
      `${web.url}/export/klutch`,
      "--kubeconfig",
      app.kubeconfigPath,
      "-n",
      namespace,
      "--token-file",
      tokenFile,
      "--api",
      apiId,
      "--from-namespace",
      env.tenantNs,
      "--accept-claims",
      "configmaps.core/Consumer",
      "--dry-run",
      "-o",
      "yaml",
    ]);
    assert.equal(await run.exited, 0, run.out.join("\n"));
    const yaml = run.out.filter((l) => !/^(✓|\(dry run)/.test(l)).join("\n");
    const kinds = parseAllDocuments(yaml).map((d) => (d.toJS() as KubeObject).kind);
    assert.deepEqual(kinds, [
      "CustomResourceDefinition",
      "Namespace",
      "Secret",
      "ServiceAccount",
      "ClusterRole",
      "ClusterRole",
      "ClusterRoleBinding",
      "Role",
      "RoleBinding",
      "Deployment",
      "APIServiceBinding",
    ]);
    assert.equal(await appClient.get(refs.namespaces, namespace), undefined, "nothing in the app cluster");
    assert.deepEqual(await clusterWide(), before, "no cluster-wide object written either");
    assert.equal(await bindingGeneration(), generationBefore, "nor the APIServiceBinding");
    const erinsNamespaces = (
      await env.admin.list(refs.namespaces, { labelSelector: "bind.klutch.dev/pull-binding=true" })
    ).items.filter((ns) =>
      (ns.metadata.annotations?.["example-backend.klutch.anynines.com/identity"] ?? "").startsWith(`${erin.username}#`),
    );
    assert.deepEqual(erinsNamespaces, [], "nothing on the control plane");
  });

  it("headless: refuses a token the control plane does not accept, and a claim that is not there, saying why", async () => {
    const bad = join(app.dir, "bad.token");
    writeFileSync(bad, "not-a-token");
    const common = [
      "bind",
      `${web.url}/export/klutch`,
      "--kubeconfig",
      app.kubeconfigPath,
      "--api",
      apiId,
      "--from-namespace",
      env.tenantNs,
    ];
    const refused = klutchBind([...common, "--token-file", bad, "--accept-claims", "none"]);
    assert.equal(await refused.exited, 1);
    assert.match(refused.out.join("\n"), /the page refused the bind \(401\): .*token/);
    const good = join(app.dir, "erin2.token");
    writeFileSync(good, erin.token);
    const unknownClaim = klutchBind([
      ...common,
      "--token-file",
      good,
      "--accept-claims",
      "leases.coordination.k8s.io",
      "--dry-run",
    ]);
    assert.equal(await unknownClaim.exited, 1);
    assert.match(unknownClaim.out.join("\n"), /matches no claim; the claims are: /);
  });

  it("hands the binding out once, and only for the verifier of the challenge", async () => {
    const verifier = randomBytes(32).toString("base64url");
    const challenge = createHash("sha256").update(verifier).digest("base64url");
    const session = "Sess0000000000000000000000000001";
    const code = async (): Promise<string> => {
      const agent = new WebAgent(web.url);
      const query = new URLSearchParams({
        client: "klutch",
        p: "40999",
        s: session,
        c: "handoff1",
        u: "http://127.0.0.1:40999/callback",
        code_challenge: challenge,
        code_challenge_method: "S256",
      });
      assert.equal((await agent.send("GET", `/authorize?${query}`)).status, 303);
      const csrf = await agent.signIn(dana.token);
      const shown = await agent.send("GET", "/cli-bind");
      const claims = [...shown.body.matchAll(/name="shown-claim" value="([^"]+)"/g)].map((m) => m[1] ?? "");
      const answer = await agent.send("POST", "/cli-bind", {
        _csrf: csrf,
        namespace: env.tenantNs,
        export: apiId,
        "shown-claim": claims,
      });
      assert.equal(answer.status, 303, answer.body);
      const location = new URL(answer.headers.get("location") ?? "");
      assert.equal(`${location.origin}${location.pathname}`, "http://127.0.0.1:40999/callback");
      assert.equal(location.searchParams.get("s"), session);
      assert.equal(location.searchParams.get("response"), null, "no binding in the browser's URL");
      return location.searchParams.get("code") ?? "";
    };
    const trade = (c: string, v: string) =>
      fetch(`${web.url}/cli-bind/token`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ code: c, code_verifier: v }),
      });
    const first = await code();
    const wrong = await trade(first, randomBytes(32).toString("base64url"));
    assert.equal(wrong.status, 400);
    assert.match(await wrong.text(), /does not match the code_challenge/);
    const afterWrong = await trade(first, verifier);
    assert.equal(afterWrong.status, 400, "a code is tried once, right or wrong");
    const second = await code();
    const right = await trade(second, verifier);
    assert.equal(right.status, 200);
    const response = (await right.json()) as { apiVersion: string; kubeconfig: string; authentication: unknown };
    assert.equal(response.apiVersion, "klutch.anynines.com/v1alpha1");
    assert.deepEqual(response.authentication, { oauth2CodeGrant: { sid: session, id: dana.username } });
    assert.match(
      Buffer.from(response.kubeconfig, "base64").toString(),
      new RegExp(clusterNamespaceName(dana.username, "handoff1")),
    );
    assert.equal((await trade(second, verifier)).status, 400, "used once");
    assert.ok(
      await env.admin.get(pullRefs.clusterBindings, "cluster", clusterNamespaceName(dana.username, "handoff1")),
    );
  });
});
