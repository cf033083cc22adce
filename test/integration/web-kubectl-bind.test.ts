// kube-bind v0.3.0's own `kubectl bind` (the real peer, built by `make tools`) against our web page:
// it fetches the page's discovery document, prints the authorize URL, and the test plays the
// browser (web-agent.ts): opens that URL, signs in with a token, chooses the API and accepts its
// claim, and follows the page's redirect to the peer's loopback callback. The control plane runs
// the sync with --pull-bindings (pull-env.ts), which answers the APIServiceExportRequest the page
// made; the app cluster is a fresh API server of this file's own, since the peer writes into the
// fixed namespace kube-bind. Also: what the page refuses (a non-loopback callback, a malformed or
// another sign-in's session, no sign-in, a person who may not bind).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { parseAllDocuments } from "yaml";
import { clusterBindingName, pullApiVersion, pullRefs } from "../../src/api/pull-binding.ts";
import { refs } from "../../src/api/resources.ts";
import { KubeApiError, KubeClient } from "../../src/kube/client.ts";
import { clusterNamespaceName } from "../../src/provider/provision.ts";
import { type RunningWeb, startWebServer } from "../../src/web/server.ts";
import { type Account, grant, serviceAccount } from "../support/accounts.ts";
import type { Cluster } from "../support/cluster.ts";
import { clientConfig, freshCluster, onFileDone, testClusters } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";
import { apply, readManifests } from "../support/manifests.ts";
import { stopProcess } from "../support/processes.ts";
import { type PullEnv, pullEnv } from "../support/pull-env.ts";
import { kubeBindUnavailable, tool } from "../support/tools.ts";
import { WebAgent } from "../support/web-agent.ts";

const configmapClaim = { group: "", resource: "configmaps", version: "v1", selector: { owner: "Consumer" } };

describe("kubectl bind (kube-bind v0.3.0) against the web page", { skip: kubeBindUnavailable() }, () => {
  let env: PullEnv;
  let web: RunningWeb;
  let app: Cluster;
  let appClient: KubeClient;
  /** may bind from the tenant namespace (klutch-bind:binder there) */
  let dana: Account;
  /** signed in, but may not bind */
  let olaf: Account;

  before(async () => {
    [env, app] = await Promise.all([
      pullEnv({
        prefix: "web-kcb",
        claims: [configmapClaim],
        claimsRules: [
          {
            apiGroups: [""],
            resources: ["configmaps"],
            verbs: ["get", "list", "watch", "create", "update", "patch", "delete"],
          },
        ],
      }),
      freshCluster("web-kcb-app"),
    ]);
    appClient = KubeClient.fromConfig(clientConfig(app));
    onFileDone(async () => appClient.close());
    dana = await serviceAccount(env.admin, env.tenantNs, "dana");
    olaf = await serviceAccount(env.admin, env.tenantNs, "olaf");
    await apply(
      // the shared control plane: only the ClusterRoles of web-rbac.yaml
      (await testClusters()).control,
      readManifests("deploy/control-plane/web-rbac.yaml").filter((o) => o.kind === "ClusterRole"),
    );
    await grant(env.admin, dana, "klutch-bind:binder", env.tenantNs);
    // the page acts with the control plane's admin rights here (web-rbac.yaml does not give it provisioning)
    web = await startWebServer({
      control: env.admin,
      logger: pino({ level: process.env.KLB_TEST_LOG ?? "silent" }),
      address: "127.0.0.1:0",
      defaultNamespace: env.tenantNs,
      externalAddress: { server: env.admin.server, certificateAuthorityData: await env.caData() },
    });
    onFileDone(() => web.stop());
  });
  after(async () => {
    const made = await env.admin.list(refs.namespaces, { labelSelector: "bind.klutch.dev/pull-binding=true" });
    for (const ns of made.items) {
      const owner = ns.metadata.annotations?.["example-backend.klutch.anynines.com/identity"] ?? "";
      if (owner.startsWith(`${dana.username}#`) || owner.startsWith(`${olaf.username}#`)) {
        await env.admin.delete(refs.namespaces, ns.metadata.name);
      }
    }
  });

  /** Runs `kubectl bind PAGE/export --dry-run -o yaml`; its authorize URL, read from stderr. */
  function kubectlBind(signal: AbortSignal) {
    const child = spawn(
      tool("kubectl-bind"),
      [`${web.url}/export`, "--kubeconfig", app.kubeconfigPath, "--dry-run", "-o", "yaml"],
      { stdio: ["ignore", "pipe", "pipe"], signal },
    );
    child.on("error", () => {});
    let stdout = "";
    let stderr = "";
    let printed: (url: string) => void = () => {};
    let gone: (err: Error) => void = () => {};
    const authorizeUrl = new Promise<string>((resolve, reject) => {
      printed = resolve;
      gone = reject;
    });
    authorizeUrl.catch(() => {});
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
      const match = /To authenticate, visit in your browser:\s+(\S+)/.exec(stderr);
      if (match?.[1] !== undefined) printed(match[1]);
    });
    const exited = new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      child.on("exit", (code) => {
        gone(new Error(`kubectl-bind exited ${code} before printing the authorize URL:\n${stderr}`));
        resolve({ code: code ?? 1, stdout, stderr });
      }),
    );
    return { child, exited, authorizeUrl };
  }

  /** the page path and query of an authorize URL the peer printed */
  const local = (url: string) => {
    const u = new URL(url);
    assert.equal(u.origin, new URL(web.url).origin, "the authorize URL is the page's");
    return `${u.pathname}${u.search}`;
  };

  /** The choice page's form, as a browser would post it: API apiId, every claim shown, those accepted. */
  function choose(page: string, csrf: string, apiId: string, accept: boolean) {
    const shown = [...page.matchAll(/name="shown-claim" value="([^"]+)"/g)].map((m) => m[1] ?? "");
    assert.ok(page.includes(`value="${apiId}"`), `the page offers ${apiId}`);
    assert.equal(shown.length, 1, "the template's one claim is shown");
    return {
      _csrf: csrf,
      namespace: env.tenantNs,
      export: apiId,
      "shown-claim": shown,
      ...(accept ? { claim: shown } : {}),
    };
  }

  const apiId = () => `postgresqlinstances.${env.api.group}`;

  it("binds: the peer accepts the page's BindingResponse, prints the request and stores a kubeconfig that works as the binding's account", {
    timeout: 180_000,
  }, async (t) => {
    const run = kubectlBind(t.signal);
    try {
      const authorizeUrl = await run.authorizeUrl;
      const asked = new URL(authorizeUrl).searchParams;
      assert.equal(asked.get("client"), "kube-bind", "the discovery document's own query survives");
      const browser = new WebAgent(web.url);
      const opened = await browser.send("GET", local(authorizeUrl));
      assert.equal(opened.status, 303);
      assert.equal(opened.headers.get("location"), "/cli-bind");
      // not signed in yet: the choice page sends the browser to sign in
      const early = await browser.send("GET", "/cli-bind");
      assert.equal(early.status, 303);
      assert.equal(early.headers.get("location"), "/login");
      const login = await browser.send("GET", "/login");
      const signedIn = await browser.send("POST", "/login", { _csrf: browser.csrf(login.body), token: dana.token });
      assert.equal(signedIn.status, 303);
      assert.equal(signedIn.headers.get("location"), "/cli-bind", "after sign-in, back to the pending bind");
      const page = await browser.send("GET", "/cli-bind");
      assert.equal(page.status, 200, page.body);
      assert.match(page.body, new RegExp(`app cluster ${asked.get("c")}`));
      const bound = await browser.send("POST", "/cli-bind", choose(page.body, browser.csrf(page.body), apiId(), true));
      assert.equal(bound.status, 303, bound.body);
      const location = new URL(bound.headers.get("location") ?? "");
      assert.equal(`${location.origin}${location.pathname}`, `http://localhost:${asked.get("p")}/callback`);
      const response = JSON.parse(Buffer.from(location.searchParams.get("response") ?? "", "base64").toString()) as {
        apiVersion: string;
        kind: string;
        authentication: { oauth2CodeGrant: { sid: string; id: string } };
        kubeconfig: string;
        requests: Array<{ apiVersion: string; kind: string; metadata: { name: string }; spec: unknown }>;
      };
      assert.equal(response.apiVersion, "kube-bind.io/v1alpha1");
      assert.equal(response.kind, "BindingResponse");
      assert.deepEqual(response.authentication.oauth2CodeGrant, { sid: asked.get("s"), id: dana.username });
      assert.equal(response.requests.length, 1);
      assert.equal(response.requests[0]?.apiVersion, "kube-bind.io/v1alpha1");

      // the browser follows the redirect; v0.3.0 listens only a moment after printing the URL
      let ended = false;
      void run.exited.then(() => {
        ended = true;
      });
      let answer: string | undefined;
      await eventually("kubectl-bind's callback answering", async () => {
        if (ended) return;
        const r = await fetch(location);
        answer = await r.text();
        assert.equal(r.status, 200, answer);
      });
      if (answer !== undefined) assert.match(answer, /Successfully Authentication|Already authenticated/);
      const { code, stdout, stderr } = await run.exited;
      assert.equal(code, 0, stderr);
      assert.match(stderr, new RegExp(`Successfully authenticated to ${web.url}/export`));
      const printed = parseAllDocuments(stdout)
        .map((d) => d.toJS())
        .filter((d) => d !== null);
      // v0.3.0's APIServiceExportRequest has no permission claims: it drops them when it decodes
      // the response; the claim accepted is in the response and on the control plane's request
      assert.deepEqual(printed, [
        {
          apiVersion: "kube-bind.io/v1alpha1",
          kind: "APIServiceExportRequest",
          metadata: { name: apiId() },
          spec: { resources: [{ group: env.api.group, resource: "postgresqlinstances", versions: ["v1"] }] },
          status: {},
        },
      ]);
      const claimed = {
        group: env.api.group,
        resource: "postgresqlinstances",
        versions: ["v1"],
        permissionClaims: [configmapClaim],
      };
      assert.deepEqual(response.requests[0]?.spec, { resources: [claimed] });

      // the page made the cluster namespace of (dana, c) and its request, which the sync answered
      const clusterNs = clusterNamespaceName(dana.username, asked.get("c") ?? "");
      await env.serve(clusterNs);
      await eventually("the sync answers the page's APIServiceExportRequest", async () => {
        const request = await env.admin.get(pullRefs.exportRequests, apiId(), clusterNs);
        assert.equal(
          (request?.status as { phase?: string } | undefined)?.phase,
          "Succeeded",
          JSON.stringify(request?.status),
        );
      });
      const made = await env.admin.get(pullRefs.exportRequests, apiId(), clusterNs);
      assert.equal(made?.apiVersion, pullApiVersion);
      assert.deepEqual(made?.spec, { resources: [claimed] });

      // the peer stored the kubeconfig in the app cluster; it works as the binding's account only
      const secrets = await appClient.list(refs.secrets, { namespace: "kube-bind" });
      const stored = secrets.items.filter((s) => s.metadata.name.startsWith("kubeconfig-"));
      assert.equal(stored.length, 1, "even a dry run stores the kubeconfig");
      const data = (stored[0] as { data?: { kubeconfig?: string } }).data?.kubeconfig ?? "";
      const kubeconfig = Buffer.from(data, "base64").toString();
      assert.equal(kubeconfig, Buffer.from(response.kubeconfig, "base64").toString());
      const asBinding = KubeClient.fromKubeconfigText(kubeconfig);
      onFileDone(async () => asBinding.close());
      assert.ok(await asBinding.get(pullRefs.clusterBindings, clusterBindingName, clusterNs), "its ClusterBinding");
      await assert.rejects(
        asBinding.list(refs.namespaces),
        (err: unknown) => err instanceof KubeApiError && err.code === 403,
      );
    } finally {
      await stopProcess(run.child);
    }
  });

  /** An authorize URL as the peer would print it, for the refusals (no peer needed to refuse). */
  const authorize = (params: Record<string, string>) =>
    `/authorize?${new URLSearchParams({ client: "kube-bind", c: "abc123", p: "40123", s: "Sess01", ...params })}`;

  it("refuses a callback to a host other than loopback, and malformed session ids and ports", async () => {
    const browser = new WebAgent(web.url);
    await browser.signIn(dana.token);
    for (const [params, field] of [
      [{ u: "http://evil.example:40123/callback" }, "u"],
      [{ redirect_url: "http://10.0.0.1:40123/callback" }, "redirect_url"],
      [{ u: "http://localhost:40124/callback" }, "u"],
      [{ s: "" }, "s"],
      [{ s: "../x" }, "s"],
      [{ p: "0" }, "p"],
      [{ c: "" }, "c"],
      [{ client: "other" }, "client"],
    ] as const) {
      const answer = await browser.send("GET", authorize(params));
      assert.equal(answer.status, 400, `${JSON.stringify(params)}: ${answer.body}`);
      assert.match(answer.body, new RegExp(`${field}:`));
      assert.equal(answer.headers.get("location"), null);
    }
    // the loopback callback named exactly is taken
    const ok = await browser.send("GET", authorize({ u: "http://127.0.0.1:40123/callback" }));
    assert.equal(ok.status, 303);
  });

  it("gives no response without sign-in, to another sign-in's browser, nor to a person who may not bind", async () => {
    const anonymous = new WebAgent(web.url);
    const opened = await anonymous.send("GET", authorize({ s: "Anon01" }));
    assert.equal(opened.status, 303);
    const post = await anonymous.send("POST", "/cli-bind", { _csrf: "x", namespace: env.tenantNs, export: apiId() });
    assert.equal(post.status, 403);
    assert.equal(post.headers.get("location"), null);

    // a pending bind taken up by one sign-in cannot be finished by another that got its cookie
    const owner = new WebAgent(web.url);
    await owner.send("GET", authorize({ s: "Owner1" }));
    await owner.signIn(dana.token);
    const shown = await owner.send("GET", "/cli-bind");
    assert.equal(shown.status, 200);
    const thief = new WebAgent(web.url);
    const csrf = await thief.signIn(dana.token);
    thief.cookies.set("klb-cli-bind", owner.cookies.get("klb-cli-bind") ?? "");
    const stolen = await thief.send("POST", "/cli-bind", choose(shown.body, csrf, apiId(), false));
    assert.equal(stolen.status, 403, stolen.body);
    assert.equal(stolen.headers.get("location"), null);

    // a person without the right to create AppClusterBindings there
    const other = new WebAgent(web.url);
    await other.send("GET", authorize({ s: "Olaf01", c: "olaf01" }));
    const olafCsrf = await other.signIn(olaf.token);
    const form = { ...choose(shown.body, olafCsrf, apiId(), false) };
    const refused = await other.send("POST", "/cli-bind", form);
    assert.equal(refused.status, 403, refused.body);
    assert.match(refused.body, /may not bind app clusters/);
    assert.equal(await env.admin.get(refs.namespaces, clusterNamespaceName(olaf.username, "olaf01")), undefined);
  });

  it("keeps nothing for visitors: 10,001 authorize requests leave a waiting bind in place, and a bind's cookie binds once", async () => {
    const owner = new WebAgent(web.url);
    assert.equal((await owner.send("GET", authorize({ s: "Early1", c: "flood1" }))).status, 303);
    let opened = 0;
    const visitor = async () => {
      while (opened < 10_001) {
        opened += 1;
        const visit = await fetch(`${web.url}${authorize({ s: `Flood${opened}` })}`, { redirect: "manual" });
        await visit.arrayBuffer();
        assert.equal(visit.status, 303, `visit ${opened}`);
      }
    };
    await Promise.all([visitor(), visitor(), visitor(), visitor()]);
    const csrf = await owner.signIn(dana.token);
    const shown = await owner.send("GET", "/cli-bind");
    assert.equal(shown.status, 200, "the bind begun before them still waits");
    const waiting = owner.cookies.get("klb-cli-bind") ?? "";
    const bound = await owner.send("POST", "/cli-bind", choose(shown.body, csrf, apiId(), false));
    assert.equal(bound.status, 303, bound.body);
    assert.match(bound.headers.get("location") ?? "", /^http:\/\/localhost:40123\/callback\?response=/);
    // the same cookie again: nothing is waiting any more
    owner.cookies.set("klb-cli-bind", waiting);
    const again = await owner.send("POST", "/cli-bind", choose(shown.body, csrf, apiId(), false));
    assert.equal(again.status, 400, again.body);
    assert.match(again.body, /No kubectl bind waiting/);
  });
});
