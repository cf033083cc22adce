// Issue 26's proof, end to end: two app clusters bound from the app side with `klutch-bind bind URL`,
// the person signing in at the page with OpenID Connect in Chromium (panva's oidc-provider on
// loopback; a control plane of this file's own whose API server trusts it), each konnector run as
// its Deployment would be. The control plane's sync is given no route to either app cluster: it
// makes no request to them and no app kubeconfig exists on the control plane. Then the lifecycle in
// both clusters (spec up, status down, claims both ways, deletion), a konnector killed with -9 and
// restarted, and the control plane away for a minute.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Browser } from "playwright-core";
import { clusterBindingName, pullRefs } from "../../src/api/pull-binding.ts";
import { refs } from "../../src/api/resources.ts";
import { KubeClient, type KubeObject } from "../../src/kube/client.ts";
import { conditionOf } from "../../src/kube/conditions.ts";
import type { RunningWeb } from "../../src/web/server.ts";
import {
  type DeployedKonnector,
  klutchBind,
  konnectorRequests,
  printed,
  startDeployedKonnector,
  startPullPage,
} from "../support/app-bind.ts";
import { launchChromium } from "../support/browser.ts";
import { type Cluster, startCluster, stopCluster } from "../support/cluster.ts";
import { clientConfig, freshCluster, onFileDone } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";
import { freePort } from "../support/net.ts";
import { type OidcProvider, startOidcProvider } from "../support/oidc-provider.ts";
import { type PullEnv, pullEnv } from "../support/pull-env.ts";

const clientId = "klutch-bind-web";
const clientSecret = "a-client-secret-of-the-test";
const secretClaim = { group: "", resource: "secrets", version: "v1", selector: { owner: "Provider" } };
const configMapClaim = { group: "", resource: "configmaps", version: "v1", selector: { owner: "Consumer" } };
const verbs = ["get", "list", "watch", "create", "update", "patch", "delete"];
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

type Side = { name: string; cluster: Cluster; client: KubeClient; konnector?: DeployedKonnector; clusterNs: string };

describe("pull bindings end to end: two app clusters bound from their side, the control plane reaching neither", () => {
  let provider: OidcProvider;
  let control: Cluster;
  let controlArgs: string[];
  let env: PullEnv;
  let web: RunningWeb;
  let browser: Browser;
  let apiId: string;
  const sides: Side[] = [];

  before(async () => {
    const webPort = await freePort();
    provider = await startOidcProvider({ alice: "alice-password" }, [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: [`http://127.0.0.1:${webPort}/oidc/callback`],
        grant_types: ["authorization_code"],
        response_types: ["code"],
      },
    ]);
    onFileDone(() => provider.stop());
    controlArgs = [
      `--oidc-issuer-url=${provider.issuer}`,
      `--oidc-client-id=${clientId}`,
      `--oidc-ca-file=${provider.caFile}`,
      "--oidc-username-claim=sub",
      "--oidc-username-prefix=oidc:",
    ];
    const [made, app1, app2] = await Promise.all([
      freshCluster("life-control", { apiserverArgs: controlArgs }),
      freshCluster("life-app1"),
      freshCluster("life-app2"),
    ]);
    control = made;
    for (const [name, cluster] of [
      ["app1", app1],
      ["app2", app2],
    ] as const) {
      const client = KubeClient.fromConfig(clientConfig(cluster));
      onFileDone(async () => client.close());
      sides.push({ name, cluster, client, clusterNs: "" });
    }
    await eventually("the API server read the provider's discovery document", () => {
      assert.ok(provider.discoveries() > 0);
    });
    env = await pullEnv({
      prefix: "life",
      control,
      claims: [secretClaim, configMapClaim],
      claimsRules: [{ apiGroups: [""], resources: ["secrets", "configmaps"], verbs }],
    });
    apiId = `postgresqlinstances.${env.api.group}`;
    await env.admin.apply(
      refs.roleBindings,
      {
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "RoleBinding",
        metadata: { name: "oidc-alice-binder", namespace: env.tenantNs },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "klutch-bind:binder" },
        subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: "oidc:alice" }],
      },
      "test",
    );
    web = await startPullPage(env, {
      address: `127.0.0.1:${webPort}`,
      oidc: { issuerUrl: provider.issuer, clientId, clientSecret, ca: provider.ca },
      tokenSignIn: false,
    });
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
  });

  /** The provider copy of app object name: in whichever provider namespace the control plane granted. */
  async function copyOf(name: string): Promise<KubeObject | undefined> {
    const copies = (await env.admin.list(env.api)).items.filter((o) => o.metadata.name === name);
    assert.ok(copies.length <= 1, `${copies.length} copies of ${name}`);
    return copies[0];
  }

  it("binds both app clusters from their side: OpenID Connect sign-in in Chromium, bind URL installs each konnector", {
    timeout: 300_000,
  }, async () => {
    for (const side of sides) {
      const run = klutchBind([
        "bind",
        `${web.url}/export/klutch`,
        "--kubeconfig",
        side.cluster.kubeconfigPath,
        "--no-browser",
        "--konnector-image",
        "klutch-bind:test",
        "--timeout",
        "180",
      ]);
      const authorize = (await printed(run, /^\s+http:\/\/127\.0\.0\.1:\d+\/authorize\?/)).trim();
      const context = await browser.newContext({ ignoreHTTPSErrors: true });
      onFileDone(() => context.close());
      const page = await context.newPage();
      await page.goto(authorize);
      assert.match(page.url(), /\/login$/);
      await Promise.all([page.waitForURL(`${provider.issuer}/interaction/**`), page.click("#oidc-sign-in")]);
      await page.fill("#provider-login", "alice");
      await page.fill("#provider-password", "alice-password");
      // back at the page, signed in, and on to the kubectl bind that waits
      await Promise.all([page.waitForURL(`${web.url}/cli-bind`), page.click("#provider-submit")]);
      await page.check(`input[name=export][value="${apiId}"]`);
      for (const claim of ["secrets.core/Provider", "configmaps.core/Consumer"]) {
        await page.check(`input[name=claim][data-export="${apiId}"][data-claim="${claim}"]`);
      }
      await Promise.all([
        page.waitForURL(/^http:\/\/127\.0\.0\.1:\d+\/callback\?code=/),
        page.click("#cli-bind-form button[type=submit]"),
      ]);
      side.clusterNs = /cluster namespace (\S+) on /.exec(await printed(run, /bound .* as oidc:alice/))?.[1] ?? "";
      assert.ok(side.clusterNs, run.out.join("\n"));
      await env.serve(side.clusterNs);
      await printed(run, /✓ Deployment klutch-bind\/klutch-bind-konnector/);
      side.konnector = await startDeployedKonnector(
        side.client,
        side.cluster,
        "klutch-bind",
        `${side.name}-konnector-0`,
        ["--heartbeat-interval", "5", "--lease-duration", "6"],
      );
      assert.equal(await run.exited, 0, run.out.join("\n"));
    }
    assert.notEqual(sides[0]?.clusterNs, sides[1]?.clusterNs, "one cluster namespace per app cluster");
  });

  it("the control plane holds no credential for either app cluster, and its sync sent them nothing", async () => {
    const secrets = (await env.admin.list(refs.secrets)).items;
    for (const side of sides) {
      const server = side.cluster.server;
      const holding = secrets.filter((s) =>
        Object.values((s as { data?: Record<string, string> }).data ?? {}).some((v) =>
          Buffer.from(v, "base64").toString().includes(server),
        ),
      );
      assert.deepEqual(
        holding.map((s) => `${s.metadata.namespace}/${s.metadata.name}`),
        [],
        `${side.name}'s server`,
      );
    }
    const metrics = await env.sync.metrics.registry.metrics();
    assert.doesNotMatch(metrics, /klutch_bind_api_request_seconds_count\{[^}]*cluster="app"/);
  });

  it("the lifecycle in both clusters: spec up, status down, claims both ways, deletion", {
    timeout: 120_000,
  }, async () => {
    for (const side of sides) {
      const ns = `shop-${side.name}`;
      const name = `db-${side.name}`;
      await side.client.apply(refs.namespaces, { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } }, "test");
      await side.client.create(env.api, {
        apiVersion: `${env.api.group}/v1`,
        kind: "PostgresqlInstance",
        metadata: { name, namespace: ns },
        spec: { size: "small" },
      });
      let copy: KubeObject | undefined;
      await eventually(`${name} up`, async () => {
        copy = await copyOf(name);
        assert.deepEqual(copy?.spec, { size: "small" });
      });
      assert.ok(copy);
      const providerNs = copy.metadata.namespace ?? "";
      const status = {
        endpoint: `${name}.example`,
        conditions: [{ type: "Ready", status: "True", reason: "Available" }],
      };
      await env.admin.updateStatus(env.api, { ...copy, status });
      await env.admin.create(refs.secrets, {
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: `${name}-credentials`, namespace: providerNs },
        stringData: { password: side.name },
      });
      await side.client.create(refs.configMaps, {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: `${name}-settings`, namespace: ns },
        data: { from: side.name },
      });
      await eventually(`${name}: status and the Secret down, the ConfigMap up`, async () => {
        assert.deepEqual((await side.client.get(env.api, name, ns))?.status, status);
        const secret = await side.client.get(refs.secrets, `${name}-credentials`, ns);
        assert.equal(
          Buffer.from(String((secret?.data as Record<string, string>)?.password), "base64").toString(),
          side.name,
        );
        assert.deepEqual((await env.admin.get(refs.configMaps, `${name}-settings`, providerNs))?.data, {
          from: side.name,
        });
      });
    }
    const [first] = sides;
    assert.ok(first);
    await first.client.create(env.api, {
      apiVersion: `${env.api.group}/v1`,
      kind: "PostgresqlInstance",
      metadata: { name: "gone", namespace: "shop-app1" },
      spec: { size: "small" },
    });
    await eventually("copied", async () => assert.ok(await copyOf("gone")));
    await first.client.delete(env.api, "gone", "shop-app1");
    await eventually("the copy and the app object are gone", async () => {
      assert.equal(await copyOf("gone"), undefined);
      assert.equal(await first.client.get(env.api, "gone", "shop-app1"), undefined);
    });
  });

  it("a konnector killed with -9 and restarted: the changes made meanwhile arrive, nothing twice", {
    timeout: 120_000,
  }, async () => {
    const [first] = sides;
    assert.ok(first?.konnector);
    first.konnector.child.kill("SIGKILL");
    await first.konnector.exited;
    await first.client.mergePatch(env.api, "db-app1", "shop-app1", { spec: { size: "huge" } });
    await first.client.create(env.api, {
      apiVersion: `${env.api.group}/v1`,
      kind: "PostgresqlInstance",
      metadata: { name: "db-app1-b", namespace: "shop-app1" },
      spec: { size: "small" },
    });
    first.konnector = await startDeployedKonnector(first.client, first.cluster, "klutch-bind", "app1-konnector-1", [
      "--heartbeat-interval",
      "5",
      "--lease-duration",
      "6",
    ]);
    await eventually(
      "in sync again",
      async () => {
        assert.deepEqual((await copyOf("db-app1"))?.spec, { size: "huge" });
        assert.deepEqual((await copyOf("db-app1-b"))?.spec, { size: "small" });
      },
      60_000,
    );
  });

  it("the control plane away for a minute: both konnectors wait, then converge and heartbeat again", {
    timeout: 240_000,
  }, async () => {
    for (const side of sides) {
      const requests = await konnectorRequests(side.konnector?.metricsPort ?? 0);
      assert.deepEqual(requests.forbidden, { app: 0, control: 0 }, `${side.name}: no request refused so far`);
    }
    await stopCluster(control.dir, { removeData: false, holdPorts: true });
    const stoppedAt = Date.now();
    for (const side of sides) {
      await side.client.create(env.api, {
        apiVersion: `${env.api.group}/v1`,
        kind: "PostgresqlInstance",
        metadata: { name: `during-${side.name}`, namespace: `shop-${side.name}` },
        spec: { size: "medium" },
      });
    }
    await sleep(Math.max(0, 60_000 - (Date.now() - stoppedAt)));
    for (const side of sides) assert.equal(side.konnector?.child.exitCode, null, `${side.name}'s konnector still runs`);
    await startCluster(control.name, control.dir, { apiserverArgs: controlArgs });
    await eventually(
      "what was made meanwhile arrives, and both bindings are Healthy",
      async () => {
        for (const side of sides) {
          assert.deepEqual((await copyOf(`during-${side.name}`))?.spec, { size: "medium" });
          const cluster = await env.admin.get(pullRefs.clusterBindings, clusterBindingName, side.clusterNs);
          assert.equal(conditionOf(cluster, "Healthy")?.status, "True", JSON.stringify(cluster?.status));
        }
      },
      120_000,
    );
    // an API server answers a few requests 403 while its authorizer's caches fill after a start:
    // the rights are shown enough by what follows, with no 403 at all
    const settled = await Promise.all(sides.map((side) => konnectorRequests(side.konnector?.metricsPort ?? 0)));
    for (const side of sides) {
      await side.client.mergePatch(env.api, `during-${side.name}`, `shop-${side.name}`, { spec: { size: "large" } });
    }
    await eventually("a change after the restart arrives", async () => {
      for (const side of sides) assert.deepEqual((await copyOf(`during-${side.name}`))?.spec, { size: "large" });
    });
    for (const [i, side] of sides.entries()) {
      const now = await konnectorRequests(side.konnector?.metricsPort ?? 0);
      assert.deepEqual(now.forbidden, settled[i]?.forbidden, `${side.name}: no request refused once it converged`);
    }
  });
});
