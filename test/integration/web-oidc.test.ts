// The web page's OpenID Connect sign-in, for real: panva's oidc-provider on loopback over HTTPS, a
// control plane of this file's own whose kube-apiserver trusts that issuer (--oidc-*), and Chromium
// signing in at the provider. The API server's RBAC decides what the person may bind; a forged or
// replayed callback is refused; the ID token shows up in no page and no log line.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { ServerResponse } from "node:http";
import { Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { refs } from "../../src/api/resources.ts";
import { KubeClient } from "../../src/kube/client.ts";
import { type RunningWeb, startWebServer } from "../../src/web/server.ts";
import { accountKubeconfig, grant, serviceAccount } from "../support/accounts.ts";
import { launchChromium } from "../support/browser.ts";
import type { Cluster } from "../support/cluster.ts";
import { freshCluster, kubeConfig, onFileDone, testNamespace } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";
import { apply, readManifests } from "../support/manifests.ts";
import { freePort } from "../support/net.ts";
import { type OidcProvider, startOidcProvider, type Tamper } from "../support/oidc-provider.ts";
import { type SyncEnv, syncEnv } from "../support/sync-env.ts";
import { WebAgent } from "../support/web-agent.ts";

const clientId = "klutch-bind-web";
const clientSecret = "a-client-secret-of-the-test";
const usernamePrefix = "oidc:";

/**
 * Records the body of every answer this process's HTTP servers on ports send, as they send it: a
 * browser's copy of a page may be gone once it has moved on (the sign-in's page refreshes at once).
 */
function recordBodies(ports: number[], into: string[]): void {
  const end = ServerResponse.prototype.end;
  ServerResponse.prototype.end = function (this: ServerResponse, ...args: unknown[]) {
    const [chunk] = args;
    if (ports.includes(this.req?.socket.localPort ?? 0) && (typeof chunk === "string" || Buffer.isBuffer(chunk))) {
      into.push(chunk.toString());
    }
    return Reflect.apply(end, this, args);
  } as typeof end;
  onFileDone(async () => {
    ServerResponse.prototype.end = end;
  });
}

describe("the web page's OpenID Connect sign-in, in Chromium", () => {
  let provider: OidcProvider;
  let control: Cluster;
  let env: SyncEnv;
  let web: RunningWeb;
  /** a page whose client ID the API server does not trust */
  let untrusted: RunningWeb;
  let browser: Browser;
  let exportId: string;
  let appKubeconfig: string;
  /** every line the pages logged */
  const logLines: string[] = [];
  /** every body the pages sent */
  const bodies: string[] = [];

  before(async () => {
    // the pages' ports first: the provider's clients name their redirect URLs, and the API server
    // must find the provider serving when it starts
    const [webPort, untrustedPort] = [await freePort(), await freePort()];
    const callback = (port: number) => `http://127.0.0.1:${port}/oidc/callback`;
    provider = await startOidcProvider({ alice: "alice-password", bob: "bob-password", carol: "carol-password" }, [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: [callback(webPort)],
        grant_types: ["authorization_code"],
        response_types: ["code"],
      },
      {
        client_id: "another-client",
        token_endpoint_auth_method: "none",
        redirect_uris: [callback(untrustedPort)],
        grant_types: ["authorization_code"],
        response_types: ["code"],
      },
    ]);
    onFileDone(() => provider.stop());
    recordBodies([webPort, untrustedPort], bodies);
    control = await freshCluster("oidc-control", {
      apiserverArgs: [
        `--oidc-issuer-url=${provider.issuer}`,
        `--oidc-client-id=${clientId}`,
        `--oidc-ca-file=${provider.caFile}`,
        "--oidc-username-claim=sub",
        `--oidc-username-prefix=${usernamePrefix}`,
      ],
    });
    // the API server reads the issuer's discovery document in the background: ready for ID tokens after
    await eventually("the API server read the provider's discovery document", () => {
      assert.ok(provider.discoveries() > 0);
    });
    env = await syncEnv({ control });
    exportId = `postgresqlinstances.${env.ref.group}`;
    await env.template([{ group: "", resource: "secrets", version: "v1", selector: { owner: "Provider" } }]);
    appKubeconfig = readFileSync(env.app.kubeconfigPath, "utf8");

    // the page runs as its own service account with only deploy/control-plane/web-rbac.yaml's role
    await apply(
      control,
      readManifests("deploy/control-plane/web-rbac.yaml").filter((o) => o.kind === "ClusterRole"),
    );
    const accounts = await testNamespace(control, "web-users");
    const webAccount = await serviceAccount(env.controlClient, accounts, "klutch-bind-web");
    await grant(env.controlClient, webAccount, "klutch-bind:web");
    const webClient = () =>
      KubeClient.fromKubeconfigText(accountKubeconfig(kubeConfig(control), webAccount).exportConfig());

    // alice may bind; bob may look at what is exported but not bind; carol has no role at all
    await grantUser("alice", "klutch-bind:binder");
    await grantUser("bob", "view");
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
    await grantUser("bob", "klutch-bind-test:templates-reader");

    const logger = pino(
      { level: "debug" },
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          logLines.push(chunk.toString("utf8"));
          done();
        },
      }),
    );
    const common = {
      allowLoopbackAppServers: true,
      logger,
      defaultNamespace: env.bindingNamespace,
      closeControl: true,
    };
    web = await startWebServer({
      ...common,
      address: `127.0.0.1:${webPort}`,
      control: webClient(),
      oidc: { issuerUrl: provider.issuer, clientId, clientSecret, ca: provider.ca },
    });
    onFileDone(() => web.stop());
    untrusted = await startWebServer({
      ...common,
      address: `127.0.0.1:${untrustedPort}`,
      control: webClient(),
      oidc: { issuerUrl: provider.issuer, clientId: "another-client", ca: provider.ca },
      tokenSignIn: false,
    });
    onFileDone(() => untrusted.stop());
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
  });

  async function grantUser(name: string, clusterRole: string): Promise<void> {
    await env.controlClient.apply(
      refs.roleBindings,
      {
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "RoleBinding",
        metadata: { name: `oidc-${name}-${clusterRole.replaceAll(":", "-")}`, namespace: env.bindingNamespace },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: clusterRole },
        subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: `${usernamePrefix}${name}` }],
      },
      "test",
    );
  }

  /** A browser of its own. */
  async function newBrowser(): Promise<{ context: BrowserContext; page: Page }> {
    // the provider's certificate is the test's own CA's; the page checks it with --oidc-ca-file's CA
    const context = await browser.newContext({ viewport: { width: 1200, height: 900 }, ignoreHTTPSErrors: true });
    onFileDone(() => context.close());
    return { context, page: await context.newPage() };
  }

  /** From the sign-in page of base to the provider's form, filled in and sent. */
  async function atProvider(page: Page, base: string, user: string): Promise<void> {
    await page.goto(base);
    assert.match(page.url(), /\/login$/, "an anonymous visitor is sent to the sign-in page");
    await Promise.all([page.waitForURL(`${provider.issuer}/interaction/**`), page.click("#oidc-sign-in")]);
    await page.fill("#provider-login", user);
    await page.fill("#provider-password", provider.users[user] ?? "");
  }

  async function signIn(user: string): Promise<{ context: BrowserContext; page: Page }> {
    const { context, page } = await newBrowser();
    await atProvider(page, web.url, user);
    await Promise.all([page.waitForURL(`${web.url}/`), page.click("#provider-submit")]);
    return { context, page };
  }

  async function fillBindForm(page: Page, name: string) {
    await page.fill("#name", name);
    await page.fill("#kubeconfig", appKubeconfig);
    await page.check(`input[name=export][value="${exportId}"]`);
  }

  it("signs a person in at the provider, as the user the API server makes of the ID token", async () => {
    const { page } = await signIn("alice");
    assert.equal(await page.textContent("#user"), "oidc:alice");
    // the API server's own view of the last ID token: the same user
    const idToken = provider.idTokens().at(-1);
    assert.ok(idToken);
    const asAlice = KubeClient.fromKubeconfigText(
      accountKubeconfig(kubeConfig(control), {
        name: "alice",
        namespace: "",
        username: "",
        token: idToken,
      }).exportConfig(),
    );
    try {
      const review = await asAlice.request<{ status: { userInfo: { username: string } } }>(
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        { body: { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" } },
      );
      assert.equal(review.status.userInfo.username, "oidc:alice");
    } finally {
      asAlice.close();
    }
    const session = web.sessions().find((s) => s.user.username === "oidc:alice");
    assert.ok(session, "a session for alice");
    const claims: { exp: number } = JSON.parse(Buffer.from(idToken.split(".")[1] ?? "", "base64url").toString("utf8"));
    const expires = claims.exp * 1000;
    assert.equal(session.ends, Math.min(session.created + 8 * 60 * 60_000, expires), "it ends with the ID token");
    assert.ok(
      logLines.some((l) => l.includes('"msg":"signed in"') && l.includes('"via":"oidc"') && l.includes("oidc:alice")),
    );
  });

  it("lets a person with rights bind an app cluster, as themselves", async () => {
    const { page } = await signIn("alice");
    await fillBindForm(page, "alice-oidc");
    await Promise.all([
      page.waitForURL(`${web.url}/bindings/${env.bindingNamespace}/alice-oidc`),
      page.click("#bind-form button[type=submit]"),
    ]);
    await env.ready("alice-oidc");
    await page.locator("#ready", { hasText: "True" }).waitFor({ timeout: 60_000 });
    const binding = await env.controlClient.get(refs.klutchBindings, "alice-oidc", env.bindingNamespace);
    assert.ok(binding, "the binding exists");
  });

  it("refuses to bind for a person without rights: the API server says no to them", async () => {
    const { page } = await signIn("bob");
    assert.equal(await page.textContent("#user"), "oidc:bob");
    await fillBindForm(page, "bob-oidc");
    const [response] = await Promise.all([
      page.waitForResponse(`${web.url}/bind`),
      page.click("#bind-form button[type=submit]"),
    ]);
    assert.equal(response.status(), 403);
    const error = (await page.textContent("#bind-error")) ?? "";
    assert.match(error, /no permission to store the app kubeconfig as Secret bob-oidc-kubeconfig/);
    assert.ok(error.includes("oidc:bob"), error);
    assert.equal(await env.controlClient.get(refs.klutchBindings, "bob-oidc", env.bindingNamespace), undefined);

    // carol has no role: the page shows her what the API server refused, nothing else
    const carol = await signIn("carol");
    assert.equal(await carol.page.textContent("#user"), "oidc:carol");
    assert.match((await carol.page.textContent("main")) ?? "", /forbidden|no permission|not allowed/i);
  });

  /**
   * Signs in at the provider as user but holds its answer back before it reaches the page: the
   * redirects (the login form's to the authorization endpoint, that one's to the page) are followed
   * by hand, in this browser. The callback URL the page would have been sent to.
   */
  async function heldBackAnswer(context: BrowserContext, page: Page, user: string): Promise<string> {
    await atProvider(page, web.url, user);
    let answer = "";
    await page.route(`${provider.issuer}/interaction/**`, async (route) => {
      const resume = (await route.fetch({ maxRedirects: 0 })).headers().location ?? "";
      const back = await context.request.get(new URL(resume, provider.issuer).href, { maxRedirects: 0 });
      answer = back.headers().location ?? "";
      await route.fulfill({ status: 200, contentType: "text/plain", body: "held back" });
    });
    await Promise.all([page.waitForResponse(`${provider.issuer}/interaction/**`), page.click("#provider-submit")]);
    await page.unrouteAll();
    assert.match(answer, /^http:\/\/127\.0\.0\.1:\d+\/oidc\/callback\?.*code=/);
    return answer;
  }

  /** 401, the reason shown, nobody signed in. */
  async function refusedWith(on: Page, url: string, why: RegExp): Promise<void> {
    const response = await on.goto(url);
    assert.equal(response?.status(), 401, url);
    assert.match((await on.textContent("[role=alert]")) ?? "", why);
    assert.equal(await on.locator("#user").count(), 0, "nobody is signed in");
  }

  it("refuses a callback with an altered state, from another browser, or a second time", async () => {
    const { context, page } = await newBrowser();
    const answer = await heldBackAnswer(context, page, "alice");
    const tampered = new URL(answer);
    tampered.searchParams.set("state", `${tampered.searchParams.get("state")}x`);

    await refusedWith(page, tampered.href, /matches no sign-in in progress in this browser/);
    const other = await newBrowser();
    await refusedWith(other.page, answer, /matches no sign-in in progress in this browser/);

    // the answer itself is still good, in the browser that began the sign-in, once
    const sessionsBefore = web.sessions().length;
    await Promise.all([page.waitForURL(`${web.url}/`), page.goto(answer)]);
    assert.equal(await page.textContent("#user"), "oidc:alice");
    assert.equal(web.sessions().length, sessionsBefore + 1);
    await refusedWith(page, answer, /matches no sign-in in progress in this browser/);
    assert.equal(web.sessions().length, sessionsBefore + 1, "a replay makes no session");
    assert.ok(logLines.some((l) => l.includes("OpenID Connect sign-in refused") && l.includes("another browser")));
  });

  it("keeps nothing for visitors: 10,001 sign-ins begun and never finished leave everyone's sign-in working", async () => {
    const { context, page } = await newBrowser();
    const answer = await heldBackAnswer(context, page, "alice");
    let begun = 0;
    const visitor = async () => {
      while (begun < 10_001) {
        begun += 1;
        const visit = await fetch(`${web.url}/oidc/login`, { redirect: "manual" });
        await visit.arrayBuffer();
        assert.equal(visit.status, 303, `visit ${begun}`);
      }
    };
    await Promise.all([visitor(), visitor(), visitor(), visitor()]);
    // a sign-in begun after them, and one begun before them, both still finish
    const later = await signIn("alice");
    assert.equal(await later.page.textContent("#user"), "oidc:alice");
    await Promise.all([page.waitForURL(`${web.url}/`), page.goto(answer)]);
    assert.equal(await page.textContent("#user"), "oidc:alice");
  });

  it("says so when the provider refuses the authorization code", async () => {
    const { context, page } = await newBrowser();
    const first = new URL(await heldBackAnswer(context, page, "alice"));
    // a second sign-in in the same browser: the provider knows alice by now and answers at once
    let next = `${web.url}/oidc/login`;
    while (!next.startsWith(`${web.url}/oidc/callback`)) {
      const hop = await context.request.get(next, { maxRedirects: 0 });
      assert.equal(hop.status(), 303, `${next}: ${hop.status()}`);
      next = new URL(hop.headers().location ?? "", next).href;
    }
    // the first sign-in's state with the second's code: the PKCE verifier is not the code's
    const crossed = new URL(next);
    crossed.searchParams.set("state", first.searchParams.get("state") ?? "");
    await refusedWith(page, crossed.href, /the provider refused the authorization code: invalid_grant/);
  });

  it("refuses an ID token the API server does not accept, saying so", async () => {
    const { page } = await newBrowser();
    await atProvider(page, untrusted.url, "alice");
    const [response] = await Promise.all([
      page.waitForResponse((r) => r.url().startsWith(`${untrusted.url}/oidc/callback`)),
      page.click("#provider-submit"),
    ]);
    assert.equal(response.status(), 401);
    assert.match(
      (await page.textContent("[role=alert]")) ?? "",
      /the control plane did not accept the ID token of https:\/\/127\.0\.0\.1:\d+: its API server must trust/,
    );
    assert.equal(await page.locator("#token").count(), 0, "this page has no bearer token form");
    assert.equal(untrusted.sessions().length, 0);
  });

  it("refuses ID tokens that do not verify: a broken signature, another nonce, audience or issuer, expired", async () => {
    const cases: Array<[string, Tamper, RegExp]> = [
      ["broken signature", { breakSignature: true }, /JWT signature verification failed|signature/i],
      ["another nonce", { claims: (c) => ({ ...c, nonce: "another-nonce" }) }, /"nonce"/],
      ["another audience", { claims: (c) => ({ ...c, aud: "another-client" }) }, /"aud"/],
      ["another issuer", { claims: (c) => ({ ...c, iss: "https://issuer.invalid" }) }, /"iss"/],
      ["expired", { claims: (c) => ({ ...c, exp: Math.floor(Date.now() / 1000) - 600 }) }, /"exp"/],
    ];
    const sessionsBefore = web.sessions().length;
    try {
      for (const [what, how, why] of cases) {
        provider.tamper(how);
        const { page } = await newBrowser();
        await atProvider(page, web.url, "alice");
        const [response] = await Promise.all([
          page.waitForResponse((r) => r.url().startsWith(`${web.url}/oidc/callback`)),
          page.click("#provider-submit"),
        ]);
        assert.equal(response.status(), 401, what);
        const alert = (await page.textContent("[role=alert]")) ?? "";
        assert.match(alert, /the sign-in with https:\/\/127\.0\.0\.1:\d+ failed/, `${what}: ${alert}`);
        assert.match(alert, why, `${what}: ${alert}`);
      }
    } finally {
      provider.tamper(undefined);
    }
    assert.equal(web.sessions().length, sessionsBefore, "no session was made");
  });

  it("says so when the provider cannot be reached, the connection's detail in the log only", async () => {
    const logged: Array<{ level: number; msg: string; cause?: string; reason?: string }> = [];
    const nowhere = await startWebServer({
      allowLoopbackAppServers: true,
      control: env.controlClient,
      logger: pino(
        { level: "info" },
        new Writable({
          write(chunk: Buffer, _encoding, done) {
            for (const line of chunk.toString("utf8").split("\n").filter(Boolean)) logged.push(JSON.parse(line));
            done();
          },
        }),
      ),
      address: "127.0.0.1:0",
      defaultNamespace: env.bindingNamespace,
      oidc: { issuerUrl: `https://127.0.0.1:${await freePort()}`, clientId, ca: provider.ca },
    });
    onFileDone(() => nowhere.stop());
    const agent = new WebAgent(nowhere.url);
    const login = await agent.send("GET", "/login");
    assert.match(login.body, /Sign in with https:\/\/127\.0\.0\.1/);
    assert.match(login.body, /id="token"/, "the bearer token form is still there");
    const begun = await agent.send("GET", "/oidc/login");
    assert.equal(begun.status, 502);
    assert.match(begun.body, /the OpenID provider https:\/\/127\.0\.0\.1:\d+ could not be reached/);
    assert.match(begun.body, /no usable answer came from the provider/);
    assert.doesNotMatch(begun.body, /ECONNREFUSED/, "the page says nothing of the network");
    const warning = logged.find((l) => l.msg === "OpenID Connect sign-in could not begin");
    assert.equal(warning?.level, 40, JSON.stringify(logged));
    assert.match(warning?.cause ?? "", /connect ECONNREFUSED 127\.0\.0\.1:\d+/);
  });

  // after the others: the sign-ins above, taken and refused, issued the tokens looked for here
  it("never puts an ID token in a page or a log line", async () => {
    const tokens = provider.idTokens();
    assert.ok(tokens.length > 0 && bodies.length > 0 && logLines.length > 0, "sign-ins were made");
    for (const token of tokens) {
      const signature = token.split(".")[2] ?? "";
      assert.ok(signature.length > 20);
      assert.ok(!bodies.some((b) => b.includes(signature)), "an ID token's signature in a page");
      assert.ok(!logLines.some((l) => l.includes(signature)), "an ID token's signature in a log line");
    }
  });
});
