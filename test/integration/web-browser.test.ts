// The web page in real headless Chromium against the real API servers: sign in with a token,
// bind an app cluster and see it become Ready; refusals for a user without rights and for forged
// form posts; unbinding it from its page. Screenshots go to .dev/screenshots/.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { refs } from "../../src/api/resources.ts";
import { accountFor, kubeconfigToken, tokenAccount } from "../../src/app-access/account.ts";
import { isBindingSecret } from "../../src/bind/binding.ts";
import { KubeClient } from "../../src/kube/client.ts";
import { type RunningWeb, startWebServer } from "../../src/web/server.ts";
import { type Account, accountKubeconfig, grant, serviceAccount } from "../support/accounts.ts";
import { launchChromium, screenshotDir } from "../support/browser.ts";
import { kubeConfig, onFileDone, testNamespace } from "../support/clusters.ts";
import { apply, readManifests } from "../support/manifests.ts";
import { type SyncEnv, syncEnv } from "../support/sync-env.ts";

describe("the web page, in Chromium", () => {
  let env: SyncEnv;
  let web: RunningWeb;
  let browser: Browser;
  let alice: Account;
  let bob: Account;
  let exportId: string;
  let appKubeconfig: string;

  before(async () => {
    env = await syncEnv();
    exportId = `postgresqlinstances.${env.ref.group}`;
    await env.template([
      { group: "", resource: "secrets", version: "v1", selector: { owner: "Provider" } },
      { group: "", resource: "configmaps", version: "v1", selector: { owner: "Consumer", names: ["app-*"] } },
    ]);
    appKubeconfig = readFileSync(env.app.kubeconfigPath, "utf8");

    // the page runs as its own service account with only deploy/control-plane/web-rbac.yaml's role
    await apply(
      env.control,
      readManifests("deploy/control-plane/web-rbac.yaml").filter((o) => o.kind === "ClusterRole"),
    );
    const accounts = await testNamespace(env.control, "web-users");
    const webAccount = await serviceAccount(env.controlClient, accounts, "klutch-bind-web");
    await grant(env.controlClient, webAccount, "klutch-bind:web");
    const webClient = KubeClient.fromKubeconfigText(
      accountKubeconfig(kubeConfig(env.control), webAccount).exportConfig(),
    );
    onFileDone(async () => webClient.close());

    // alice may bind in the bindings namespace; bob may only look at what is exported
    alice = await serviceAccount(env.controlClient, accounts, "alice");
    await grant(env.controlClient, alice, "klutch-bind:binder", env.bindingNamespace);
    bob = await serviceAccount(env.controlClient, accounts, "bob");
    await grant(env.controlClient, bob, "view", env.bindingNamespace);
    await env.controlClient.apply(
      refs.clusterRoles,
      {
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "ClusterRole",
        metadata: { name: "klutch-bind-test:templates-reader" },
        rules: [
          {
            apiGroups: ["example-backend.klutch.anynines.com"],
            resources: ["apiserviceexporttemplates"],
            verbs: ["get", "list"],
          },
        ],
      },
      "test",
    );
    await grant(env.controlClient, bob, "klutch-bind-test:templates-reader", env.bindingNamespace);

    web = await startWebServer({
      allowLoopbackAppServers: true,
      control: webClient,
      logger: pino({ level: process.env.KLB_TEST_LOG ?? "silent" }),
      address: "127.0.0.1:0",
      defaultNamespace: env.bindingNamespace,
    });
    onFileDone(() => web.stop());
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
  });

  async function signIn(account: Account): Promise<{ context: BrowserContext; page: Page }> {
    const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
    const page = await context.newPage();
    await page.goto(web.url);
    assert.match(page.url(), /\/login$/, "an anonymous visitor is sent to the sign-in page");
    await page.fill("#token", account.token);
    await Promise.all([page.waitForURL(`${web.url}/`), page.click("button[type=submit]")]);
    assert.equal(await page.textContent("#user"), account.username);
    return { context, page };
  }

  async function fillBindForm(page: Page, name: string) {
    await page.fill("#name", name);
    await page.fill("#kubeconfig", appKubeconfig);
    await page.check(`input[name=export][value="${exportId}"]`);
    // one claim accepted, by clicking its checkbox; the other left as it comes: unchecked
    await page.click(claimBox("secrets.core/Provider"));
  }

  const claimBox = (claim: string) => `input[name=claim][data-export="${exportId}"][data-claim="${claim}"]`;

  it("refuses a token the control plane does not accept", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${web.url}/login`);
    await page.fill("#token", "not-a-token");
    const [response] = await Promise.all([page.waitForResponse(`${web.url}/login`), page.click("button[type=submit]")]);
    assert.equal(response.status(), 401);
    assert.match((await page.textContent("[role=alert]")) ?? "", /did not accept this token/);
    await context.close();
  });

  it("lets a user with rights bind an app cluster and shows it becoming Ready", async () => {
    const { context, page } = await signIn(alice);
    // the bindable API with its claims in words
    const apis = (await page.textContent("#apis")) ?? "";
    assert.ok(apis.includes(exportId), apis);
    assert.match(apis, /secrets/);
    await page.screenshot({ path: join(screenshotDir, "web-1-dashboard.png"), fullPage: true });

    // a checkbox per claim, saying what it means, none checked to begin with
    const claims = (await page.textContent("#claims")) ?? "";
    assert.match(claims, /secrets\.core\/Provider: the provider writes secrets into your namespaces/);
    assert.match(claims, /configmaps\.core\/Consumer: the provider reads configmaps named app-\* from your namespaces/);
    assert.equal(await page.isChecked(claimBox("secrets.core/Provider")), false);
    await fillBindForm(page, "alice-app");
    assert.equal(await page.isChecked(claimBox("secrets.core/Provider")), true);
    assert.equal(await page.isChecked(claimBox("configmaps.core/Consumer")), false);
    await page.locator("#claims").screenshot({ path: join(screenshotDir, "web-1b-claims.png") });
    const pagePath = `/bindings/${env.bindingNamespace}/alice-app`;
    const asked: string[] = [];
    page.on("request", (r) => {
      const path = new URL(r.url()).pathname;
      if (path.startsWith(pagePath)) asked.push(`${r.resourceType()} ${path}`);
    });
    await Promise.all([page.waitForURL(`${web.url}${pagePath}`), page.click("#bind-form button[type=submit]")]);
    // the page follows the sync until it reports Ready: its status part alone, then the whole page once
    await page.locator("#ready", { hasText: "True" }).waitFor({ timeout: 60_000 });
    const loads = asked.filter((a) => a === `document ${pagePath}`).length;
    assert.ok(loads <= 2, `the whole page loaded at most twice (the first time, once Ready): ${asked.join(", ")}`);
    assert.ok(await page.locator("#bound-objects").isVisible(), "with its contents");
    await page.screenshot({ path: join(screenshotDir, "web-2-ready.png"), fullPage: true });

    // made as alice, through impersonation, and the kubeconfig never came back to the browser
    const binding = await env.controlClient.get(refs.klutchBindings, "alice-app", env.bindingNamespace);
    const managers = (binding?.metadata.managedFields ?? []) as Array<{ manager?: string }>;
    assert.ok(managers.some((m) => m.manager === "klutch-bind-web"));
    // the clicked claim accepted, the other rejected
    type Spec = {
      kubeconfigSecretRef?: unknown;
      apiExports?: Array<{ permissionClaims?: Array<{ resource: string; state: string }> }>;
    };
    const spec = binding?.spec as Spec | undefined;
    // klutch-bind's AppClusterBinding, its Secret named with its namespace
    assert.deepEqual(spec?.kubeconfigSecretRef, {
      name: "alice-app-kubeconfig",
      namespace: env.bindingNamespace,
      key: "kubeconfig",
    });
    const recorded = spec?.apiExports?.[0]?.permissionClaims;
    assert.deepEqual(
      recorded?.map((c) => [c.resource, c.state]),
      [
        ["secrets", "Accepted"],
        ["configmaps", "Rejected"],
      ],
    );
    const secret = await env.controlClient.get(refs.secrets, "alice-app-kubeconfig", env.bindingNamespace);
    assert.ok(isBindingSecret(secret), "klutch-bind unbind will clean it up, as it does the CLI's");
    // not the pasted kubeconfig: the binding's own service account, with a token the sync renews
    const stored = Buffer.from(
      (secret?.data as Record<string, string> | undefined)?.kubeconfig ?? "",
      "base64",
    ).toString("utf8");
    assert.notEqual(stored, appKubeconfig);
    assert.doesNotMatch(stored, /client-key-data/);
    assert.deepEqual(tokenAccount(kubeconfigToken(stored) ?? ""), accountFor(env.bindingNamespace, "alice-app"));
    await page.goto(web.url);
    const row = (await page.textContent('tr[data-binding="alice-app"]')) ?? "";
    assert.match(row, /True/);
    const keyData = /client-key-data: (\S+)/.exec(appKubeconfig)?.[1];
    assert.ok(keyData);
    assert.ok(!(await page.content()).includes(keyData));
    await context.close();
  });

  it("refuses a user without rights, saying why, and creates nothing", async () => {
    const { context, page } = await signIn(bob);
    await fillBindForm(page, "bob-app");
    const [response] = await Promise.all([
      page.waitForResponse(`${web.url}/bind`),
      page.click("#bind-form button[type=submit]"),
    ]);
    assert.equal(response.status(), 403);
    const error = (await page.textContent("#bind-error")) ?? "";
    assert.match(error, /no permission to store the app kubeconfig as Secret bob-app-kubeconfig/);
    assert.ok(error.includes(bob.username), error);
    // the form comes back without the kubeconfig
    assert.equal(await page.inputValue("#kubeconfig"), "");
    assert.equal(await page.inputValue("#name"), "bob-app");
    await page.screenshot({ path: join(screenshotDir, "web-3-refused.png"), fullPage: true });
    assert.equal(await env.controlClient.get(refs.klutchBindings, "bob-app", env.bindingNamespace), undefined);
    assert.equal(await env.controlClient.get(refs.secrets, "bob-app-kubeconfig", env.bindingNamespace), undefined);
    await context.close();
  });

  it("refuses forged form posts: from another site, and without the session's CSRF token", async () => {
    const { context, page } = await signIn(alice);
    // another site on this machine whose page posts a bind form to ours as soon as it loads
    const evil: Server = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "text/html" }).end(`<!doctype html><body>
<form id="f" method="post" action="${web.url}/bind">
<input name="name" value="forged"><input name="namespace" value="${env.bindingNamespace}">
<input name="export" value="${exportId}"><input name="claim" value="${exportId}/x">
<textarea name="kubeconfig">${appKubeconfig}</textarea></form>
<script>document.getElementById("f").submit()</script></body>`);
    });
    await new Promise<void>((resolve) => evil.listen(0, "127.0.0.1", resolve));
    onFileDone(() => new Promise((resolve) => evil.close(resolve)));
    const address = evil.address();
    assert.ok(typeof address === "object" && address !== null);
    const [response] = await Promise.all([
      page.waitForResponse(`${web.url}/bind`),
      page.goto(`http://127.0.0.1:${address.port}/`),
    ]);
    assert.equal(response.status(), 403);
    await page.waitForURL(`${web.url}/bind`);
    assert.match((await page.textContent("[role=alert]")) ?? "", /sent from another site/);
    await page.screenshot({ path: join(screenshotDir, "web-4-forged.png"), fullPage: true });

    // the same post from the page's own origin, with alice's cookie, but no or a wrong token
    const form = {
      name: "forged",
      namespace: env.bindingNamespace,
      export: exportId,
      claim: `${exportId}/x`,
      kubeconfig: appKubeconfig,
    };
    for (const csrf of [undefined, "a-guessed-token"]) {
      const direct = await context.request.post(`${web.url}/bind`, {
        form: csrf ? { ...form, _csrf: csrf } : form,
        maxRedirects: 0,
      });
      assert.equal(direct.status(), 403);
      assert.match(await direct.text(), /CSRF token is missing or wrong/);
    }
    assert.equal(await env.controlClient.get(refs.klutchBindings, "forged", env.bindingNamespace), undefined);
    await context.close();
  });

  it("unbinds alice-app from its page: the policy chosen, the name typed, then the binding gone", async () => {
    const { context, page } = await signIn(alice);
    await page.goto(`${web.url}/bindings/${env.bindingNamespace}/alice-app`);
    await Promise.all([
      page.waitForURL(`${web.url}/bindings/${env.bindingNamespace}/alice-app/unbind`),
      page.click("#unbind-link"),
    ]);
    assert.equal(await page.isChecked('input[name=policy][value="Orphan"]'), true, "the binding's own policy");
    await page.fill("#confirm", "alice-app");
    await page.screenshot({ path: join(screenshotDir, "web-5-unbind.png"), fullPage: true });
    await page.click("#unbind-form button[type=submit]");
    // the binding's page follows it until the sync has let go of the binding, then loads again
    await page.locator("#unbound").waitFor({ timeout: 60_000 });
    assert.equal(await env.controlClient.get(refs.klutchBindings, "alice-app", env.bindingNamespace), undefined);
    await context.close();
  });
});
