// The web page at the HTTP level: TLS and cookie settings, security headers, sign-in, and what a
// bind refuses before it touches the control plane; sessions that end with their token, and
// privileged identities refused. The browser flows are in web-browser.test.ts.

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingHttpHeaders } from "node:http";
import { request } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { pino } from "pino";
import { consent, parseRecorded } from "../../src/api/consent.ts";
import { refs } from "../../src/api/resources.ts";
import { parseClaims } from "../../src/export/claims.ts";
import type { PermissionClaim } from "../../src/export/types.ts";
import { KubeClient } from "../../src/kube/client.ts";
import { type RunningWeb, startWebServer, webClient } from "../../src/web/server.ts";
import { type Account, accountKubeconfig, grant, serviceAccount } from "../support/accounts.ts";
import { makePki, type Pki } from "../support/certs.ts";
import type { Cluster } from "../support/cluster.ts";
import { clientConfig, freshCluster, kubeConfig, onFileDone, testNamespace } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";
import { apply, readManifests } from "../support/manifests.ts";
import { exitAndOutput, stopProcess } from "../support/processes.ts";
import { type SyncEnv, syncEnv } from "../support/sync-env.ts";
import { repoRoot } from "../support/tools.ts";
import { WebAgent as Agent } from "../support/web-agent.ts";

/** No credential or command of the posted kubeconfig is in the page. */
function assertNotEchoed(page: string, kubeconfig: string): void {
  const secrets = [...kubeconfig.matchAll(/(?:-data|token|command|args|client-key|token-file): *(.+)/g)].map(
    (m) => m[1]?.trim() ?? "",
  );
  for (const value of secrets.filter((v) => v.length > 8))
    assert.ok(!page.includes(value), `echoed: ${value.slice(0, 40)}`);
}

type Minted = { status: { token: string; expirationTimestamp: string } };

/** A TokenRequest for a service account: its token and when it expires. */
function mintToken(admin: KubeClient, account: Account, spec: Record<string, unknown>): Promise<Minted> {
  return admin.request<Minted>(
    "POST",
    `/api/v1/namespaces/${account.namespace}/serviceaccounts/${account.name}/token`,
    {
      body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenRequest", spec },
    },
  );
}

/** Whom the API server takes a client's requests for (impersonation applied). */
async function whoAmI(client: KubeClient): Promise<{ username: string; groups: string[] }> {
  const review = await client.request<{ status: { userInfo: { username: string; groups?: string[] } } }>(
    "POST",
    "/apis/authentication.k8s.io/v1/selfsubjectreviews",
    { body: { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" } },
  );
  return { username: review.status.userInfo.username, groups: [...(review.status.userInfo.groups ?? [])].sort() };
}

describe("the web page over HTTP", () => {
  let env: SyncEnv;
  let web: RunningWeb;
  let carol: Account;
  let users: string;
  let exportId: string;

  before(async () => {
    env = await syncEnv();
    exportId = `postgresqlinstances.${env.ref.group}`;
    await env.template([]);
    users = await testNamespace(env.control, "web-http");
    carol = await serviceAccount(env.controlClient, users, "carol");
    await apply(
      env.control,
      readManifests("deploy/control-plane/web-rbac.yaml").filter((o) => o.kind === "ClusterRole"),
    );
    await grant(env.controlClient, carol, "klutch-bind:binder", env.bindingNamespace);
    // the admin's own client impersonates; web-browser.test.ts runs the page with the least rights
    web = await startWebServer({
      allowLoopbackAppServers: true,
      control: env.controlClient,
      logger: pino({ level: "silent" }),
      address: "127.0.0.1:0",
      defaultNamespace: env.bindingNamespace,
    });
    onFileDone(() => web.stop());
  });

  it("sends security headers and HttpOnly, SameSite=Strict cookies", async () => {
    const agent = new Agent(web.url);
    const login = await agent.send("GET", "/login");
    assert.equal(login.status, 200);
    assert.match(login.headers.get("content-security-policy") ?? "", /default-src 'none'.*frame-ancestors 'none'/);
    assert.equal(login.headers.get("x-frame-options"), "DENY");
    assert.equal(login.headers.get("cache-control"), "no-store");
    const setCookie = login.headers.getSetCookie().join("\n");
    assert.match(setCookie, /HttpOnly/);
    assert.match(setCookie, /SameSite=Strict/);
    assert.equal((await agent.send("GET", "/")).headers.get("location"), "/login");
    assert.equal((await agent.send("GET", "/static/app.css")).status, 200);
  });

  it("signs a user in with a token, names them, and signs them out", async () => {
    const agent = new Agent(web.url);
    const csrf = await agent.signIn(carol.token);
    const home = await agent.send("GET", "/");
    assert.ok(home.body.includes(carol.username));
    assert.ok(home.body.includes(exportId));
    assert.ok(!home.body.includes(carol.token), "the token is never rendered");
    const out = await agent.send("POST", "/logout", { _csrf: csrf });
    assert.equal(out.status, 303);
    assert.equal((await agent.send("GET", "/")).headers.get("location"), "/login", "the session is gone");
  });

  it("refuses a kubeconfig that runs a command or reads local files, and never echoes it", async () => {
    const agent = new Agent(web.url);
    const csrf = await agent.signIn(carol.token);
    const app = readFileSync(env.app.kubeconfigPath, "utf8");
    const cases: Array<[string, RegExp]> = [
      [
        app.replace(
          / {4}client-key-data: .*/,
          "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/sh\n      args: [-c, 'touch /tmp/pwned']",
        ),
        /runs a command \(exec\)/,
      ],
      [app.replace(/ {4}client-key-data: .*/, "    client-key: /etc/shadow"), /reads its client key from a file/],
      [
        app.replace(/ {4}client-key-data: .*/, "    token-file: /var/run/secrets/kubernetes.io/serviceaccount/token"),
        /token-file/,
      ],
    ];
    for (const [kubeconfig, why] of cases) {
      const answer = await agent.send("POST", "/bind", {
        _csrf: csrf,
        name: "unsafe",
        namespace: env.bindingNamespace,
        export: exportId,
        kubeconfig,
      });
      assert.equal(answer.status, 400);
      assert.match(answer.body, why);
      assertNotEchoed(answer.body, kubeconfig);
    }
    assert.equal(await env.controlClient.get(refs.klutchBindings, "unsafe", env.bindingNamespace), undefined);
    assert.equal(await env.controlClient.get(refs.secrets, "unsafe-kubeconfig", env.bindingNamespace), undefined);
  });

  it("shows a bind.klutch.dev binding made before beside klutch-bind's, each with its page", async () => {
    await env.bindWith("older", env.appKubeconfig);
    const agent = new Agent(web.url);
    await agent.signIn(carol.token);
    const home = await agent.send("GET", "/");
    assert.match(
      home.body,
      new RegExp(
        `<tr data-binding="older" data-group="bind\\.klutch\\.dev"><td><a href="/bindings/${env.bindingNamespace}/older\\?group=bind\\.klutch\\.dev">older</a> <span class="muted">\\(bind\\.klutch\\.dev\\)</span>`,
      ),
    );
    await eventually("its page, Ready", async () => {
      const page = await agent.send("GET", `/bindings/${env.bindingNamespace}/older?group=bind.klutch.dev`);
      assert.equal(page.status, 200);
      assert.match(page.body, /id="binding-group">bind\.klutch\.dev</);
      assert.match(page.body, /<span id="ready"><span class="status True">/);
    });
    // without the group, klutch-bind's kind is looked at first, then the older one
    const plain = await agent.send("GET", `/bindings/${env.bindingNamespace}/older`);
    assert.match(plain.body, /id="binding-group">bind\.klutch\.dev</);
    const wrong = await agent.send("GET", `/bindings/${env.bindingNamespace}/older?group=klutch.anynines.com`);
    assert.equal(wrong.status, 404);
    assert.match(wrong.body, /no AppClusterBinding older of klutch\.anynines\.com in namespace/);
  });

  it("names what is wrong with a form: name, unknown export, unreachable app cluster", async () => {
    const agent = new Agent(web.url);
    const csrf = await agent.signIn(carol.token);
    const app = readFileSync(env.app.kubeconfigPath, "utf8");
    const base = { _csrf: csrf, name: "ok", namespace: env.bindingNamespace, export: exportId, kubeconfig: app };
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{ ...base, name: "Not_A_Name" }, /binding name &quot;Not_A_Name&quot; must be lower-case/],
      [{ ...base, export: "nothing.example.com" }, /unknown export &quot;nothing.example.com&quot;/],
      [
        { ...base, kubeconfig: app.replace(/server: https:\/\/127.0.0.1:\d+/, "server: https://127.0.0.1:9") },
        /app cluster https:\/\/127.0.0.1:9 unreachable/,
      ],
      [{ ...base, kubeconfig: "" }, /paste or choose the app cluster&#39;s kubeconfig/],
    ];
    for (const [form, why] of cases) {
      const answer = await agent.send("POST", "/bind", form);
      assert.equal(answer.status, 400, form.name);
      assert.match(answer.body, why);
      assertNotEchoed(answer.body, form.kubeconfig ?? "");
    }
    const wrongType = await fetch(`${web.url}/bind`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    assert.equal(wrongType.status, 415);
  });

  describe("sessions that end with their token", () => {
    // the same page, re-checking every token each second
    let quick: RunningWeb;
    before(async () => {
      quick = await startWebServer({
        allowLoopbackAppServers: true,
        control: env.controlClient,
        logger: pino({ level: "silent" }),
        address: "127.0.0.1:0",
        defaultNamespace: env.bindingNamespace,
        reviewIntervalMs: 1000,
      });
      onFileDone(() => quick.stop());
    });
    const sessionOf = (agent: Agent) => quick.sessions().find((s) => s.id === agent.cookies.get("klb-session"));

    it("ends a session when its token expires: the session's end and the cookie's Max-Age", async () => {
      const minted = await mintToken(env.controlClient, carol, { expirationSeconds: 600 });
      const agent = new Agent(quick.url);
      const signedIn = await agent.tryToken(minted.status.token);
      assert.equal(signedIn.status, 303, signedIn.body);
      const session = sessionOf(agent);
      assert.ok(session, "signed in");
      assert.equal(session.ends, Date.parse(minted.status.expirationTimestamp), "ends with the token's exp");
      assert.ok(session.ends < session.created + 8 * 60 * 60_000);
      const maxAge = Number(
        /klb-session=[^;]+;[^\n]*Max-Age=(\d+)/.exec(signedIn.headers.getSetCookie().join("\n"))?.[1],
      );
      assert.ok(maxAge > 540 && maxAge <= 600, `Max-Age=${maxAge}`);
    });

    it("ends a session whose token is revoked within a few re-checks, and says why", async () => {
      const bound = await env.controlClient.create(refs.secrets, {
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: "carol-revocable", namespace: carol.namespace },
      });
      const minted = await mintToken(env.controlClient, carol, {
        expirationSeconds: 600,
        boundObjectRef: { apiVersion: "v1", kind: "Secret", name: "carol-revocable", uid: bound.metadata.uid },
      });
      const agent = new Agent(quick.url);
      await agent.signIn(minted.status.token);
      const session = sessionOf(agent);
      assert.ok(session);
      const firstCheck = session.reviewed;
      // a valid token is re-checked and kept: once re-checked (or ended), the page still serves it
      await eventually("re-checked", async () =>
        assert.ok(session.reviewed > firstCheck || sessionOf(agent) === undefined, "re-checked meanwhile"),
      );
      assert.equal((await agent.send("GET", "/")).status, 200);
      assert.ok(session.reviewed > firstCheck, "re-checked meanwhile");

      await env.controlClient.delete(refs.secrets, "carol-revocable", carol.namespace);
      // the API server caches a token's successful authentication for up to 10 s
      let location = "";
      await eventually(
        "the revoked session ends",
        async () => {
          const home = await agent.send("GET", "/");
          assert.equal(home.status, 303);
          location = home.headers.get("location") ?? "";
        },
        30_000,
      );
      assert.equal(location, "/login?ended=revoked");
      assert.equal(sessionOf(agent), undefined, "the session and its token are gone");
      const page = await agent.send("GET", location);
      assert.equal(page.status, 200);
      assert.match(page.body, /Sign in to the control plane/);
      assert.match(page.body, /no longer accepts your token/);
      assert.ok(!page.body.includes(minted.status.token));
      const form = await agent.send("POST", "/bind", { _csrf: "x", name: "late" });
      assert.equal(form.status, 403, "a form of the ended session is refused");
    });
  });

  describe("klutch-bind sync --web-address with --web-tls-cert", () => {
    let pki: Pki;
    let url: string;
    let sync: ChildProcess;

    before(async () => {
      pki = makePki();
      // the page's own identity: one that may not create TokenReviews, unlike the sync's
      const webAccount = await serviceAccount(env.controlClient, users, "web-without-rights");
      const dir = mkdtempSync(join(tmpdir(), "klb-web-"));
      onFileDone(async () => rmSync(dir, { recursive: true, force: true }));
      const webKubeconfig = join(dir, "kubeconfig");
      writeFileSync(webKubeconfig, accountKubeconfig(kubeConfig(env.control), webAccount).exportConfig());
      sync = spawn(
        process.execPath,
        [
          ...syncArgs(env, ""),
          "--web-address",
          "127.0.0.1:0",
          "--web-tls-cert",
          join(pki.serverDir, "tls.crt"),
          "--web-tls-key",
          join(pki.serverDir, "tls.key"),
          "--web-kubeconfig",
          webKubeconfig,
        ],
        { stdio: ["ignore", "pipe", "inherit"] },
      );
      onFileDone(() => stopProcess(sync));
      for await (const line of createInterface({ input: sync.stdout as NodeJS.ReadableStream })) {
        const entry = JSON.parse(line) as { msg?: string; url?: string };
        if (entry.msg === "web page serving" && entry.url) {
          url = entry.url;
          break;
        }
      }
      (sync.stdout as NodeJS.ReadableStream).resume();
    });

    it("serves HTTPS with Secure, __Host- cookies and HSTS", async () => {
      assert.match(url, /^https:\/\/127\.0\.0\.1:\d+$/);
      const answer = await new Promise<{ status: number; headers: Record<string, string | string[] | undefined> }>(
        (resolve, reject) => {
          request(`${url}/login`, { ca: pki.ca }, (res) => {
            res.resume();
            resolve({ status: res.statusCode ?? 0, headers: res.headers });
          })
            .on("error", reject)
            .end();
        },
      );
      assert.equal(answer.status, 200);
      assert.match(answer.headers["strict-transport-security"] as string, /max-age=/);
      const cookies = (answer.headers["set-cookie"] ?? []) as string[];
      assert.match(cookies.join("\n"), /^__Host-klb-login=[^;]+; Path=\/; HttpOnly; SameSite=Strict; Secure/);
    });

    it("asks TokenReview as --web-kubeconfig's identity, not as the sync's", async () => {
      const call = (method: string, path: string, headers: Record<string, string>, body?: string) =>
        new Promise<{ status: number; headers: IncomingHttpHeaders; body: string }>((resolve, reject) => {
          const req = request(`${url}${path}`, { method, headers, ca: pki.ca }, (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () =>
              resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }),
            );
          });
          req.on("error", reject).end(body);
        });
      const login = await call("GET", "/login", {});
      const loginCookie = ((login.headers["set-cookie"] ?? [])[0] ?? "").split(";")[0] ?? "";
      const csrf = /name="_csrf" value="([^"]+)"/.exec(login.body)?.[1] ?? "";
      const form = new URLSearchParams({ _csrf: csrf, token: carol.token }).toString();
      const answer = await call(
        "POST",
        "/login",
        { cookie: loginCookie, origin: url, "content-type": "application/x-www-form-urlencoded" },
        form,
      );
      assert.equal(answer.status, 401, answer.body);
      assert.match(answer.body, /could not check the token/);
      assert.match(answer.body, /web-without-rights/);
      assert.ok(!answer.body.includes(carol.token));
    });

    it("stops on SIGTERM", async () => {
      sync.kill("SIGTERM");
      const [code] = await once(sync, "exit");
      assert.equal(code, 0);
    });
  });

  // Failing to start must end the process: a health server already listening and the SIGTERM
  // handler already taken kept a sync whose web address was taken running, deaf to SIGTERM.
  describe("klutch-bind sync whose web page cannot start", () => {
    const startSync = (extra: string[]) => {
      const child = spawn(process.execPath, [...syncArgs(env, "127.0.0.1:0"), ...extra], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      onFileDone(() => stopProcess(child));
      return exitAndOutput(child);
    };
    const within = async <T>(ms: number, what: Promise<T>): Promise<T> => {
      const timer = new AbortController();
      const late = sleep(ms, undefined, { signal: timer.signal }).then(
        () => assert.fail(`still running after ${ms / 1000} s: the failed start kept the process alive`),
        () => undefined as never, // cancelled: the process ended in time
      );
      try {
        return await Promise.race([what, late]);
      } finally {
        timer.abort();
      }
    };

    it("exits 1, naming the address, when the web address is taken", async () => {
      const taken = createServer();
      taken.listen(0, "127.0.0.1");
      await once(taken, "listening");
      onFileDone(() => new Promise<void>((resolve) => taken.close(() => resolve())));
      const address = `127.0.0.1:${(taken.address() as AddressInfo).port}`;
      const { code, output } = await within(30_000, startSync(["--web-address", address]));
      assert.equal(code, 1, output);
      assert.match(output, /EADDRINUSE|in use/);
    });

    it("exits 2 on --web-tls-cert without --web-tls-key, before anything listens", async () => {
      const { code, output } = await within(
        30_000,
        startSync(["--web-address", "127.0.0.1:0", "--web-tls-cert", "/nonexistent/tls.crt"]),
      );
      assert.equal(code, 2, output);
      assert.match(output, /--web-tls-cert and --web-tls-key go together/);
    });
  });
});

// Per-claim consent on the page: an API of its own with a Provider-owned secrets claim and a
// Consumer-owned configmaps claim, a checkbox for each.
describe("the web page's permission claims, one checkbox each", () => {
  let env: SyncEnv;
  let web: RunningWeb;
  let dan: Account;
  let exportId: string;

  type Box = { value: string; claim: string; checked: boolean; words: string };
  /** The claim checkboxes of the bind form, with the words of their labels. */
  function boxes(page: string): Box[] {
    const found = [
      ...page.matchAll(
        /<label class="claim"><input type="checkbox" name="claim" value="([^"]+)" data-export="[^"]+" data-claim="([^"]+)"( checked)?>(.*?)<\/label>/gs,
      ),
    ];
    return found.map((m) => ({
      value: m[1] ?? "",
      claim: m[2] ?? "",
      checked: m[3] !== undefined,
      words: (m[4] ?? "").replace(/<[^>]+>/g, "").trim(),
    }));
  }
  const shownClaims = (page: string) =>
    [...page.matchAll(/<input type="hidden" name="shown-claim" value="([^"]+)">/g)].map((m) => m[1] ?? "");

  /** What the binding records, as the sync reads it against the template. */
  async function recorded(name: string) {
    const binding = await env.controlClient.get(refs.klutchBindings, name, env.bindingNamespace);
    const template = await env.controlClient.get(refs.templates, "postgresqlinstances", env.bindingNamespace);
    const spec = binding?.spec as { apiExports?: Array<{ permissionClaims?: unknown }> } | undefined;
    const record = parseRecorded(spec?.apiExports?.[0]?.permissionClaims, "permissionClaims");
    assert.ok(record, "the binding records its claims");
    const split = consent(
      parseClaims((template?.spec as { permissionClaims?: unknown } | undefined)?.permissionClaims, "claims"),
      record,
    );
    const resources = (claims: PermissionClaim[]) => claims.map((c) => c.resource);
    return {
      accepted: resources(split.accepted),
      rejected: resources(split.rejected),
      pending: resources(split.pending),
    };
  }

  before(async () => {
    env = await syncEnv();
    exportId = `postgresqlinstances.${env.ref.group}`;
    await env.template([
      { group: "", resource: "secrets", version: "v1", selector: { owner: "Provider", names: ["*-credentials"] } },
      { group: "", resource: "configmaps", version: "v1", selector: { owner: "Consumer" } },
    ]);
    const users = await testNamespace(env.control, "web-claims");
    dan = await serviceAccount(env.controlClient, users, "dan");
    await apply(
      env.control,
      readManifests("deploy/control-plane/web-rbac.yaml").filter((o) => o.kind === "ClusterRole"),
    );
    await grant(env.controlClient, dan, "klutch-bind:binder", env.bindingNamespace);
    web = await startWebServer({
      allowLoopbackAppServers: true,
      control: env.controlClient,
      logger: pino({ level: "silent" }),
      address: "127.0.0.1:0",
      defaultNamespace: env.bindingNamespace,
    });
    onFileDone(() => web.stop());
  });

  it("shows one unchecked checkbox per claim, with what it means", async () => {
    const agent = new Agent(web.url);
    await agent.signIn(dan.token);
    const home = await agent.send("GET", "/");
    assert.ok(!home.body.includes('name="accept-claims"'), "no single box for all claims");
    const found = boxes(home.body);
    assert.deepEqual(
      found.map((b) => [b.claim, b.checked]),
      [
        ["secrets.core/Provider", false],
        ["configmaps.core/Consumer", false],
      ],
    );
    assert.match(
      found[0]?.words ?? "",
      /^secrets\.core\/Provider: the provider writes secrets named \*-credentials into your namespaces/,
    );
    assert.match(found[1]?.words ?? "", /the provider reads configmaps from your namespaces and copies them/);
    assert.deepEqual(
      shownClaims(home.body),
      found.map((b) => b.value),
    );
    assert.ok(found.every((b) => b.value.startsWith(`${exportId}/`)));
  });

  it("records exactly the checked claim Accepted and the other Rejected", async () => {
    const agent = new Agent(web.url);
    const csrf = await agent.signIn(dan.token);
    const home = await agent.send("GET", "/");
    const [secretsBox] = boxes(home.body);
    assert.ok(secretsBox);
    const kubeconfig = readFileSync(env.app.kubeconfigPath, "utf8");
    const answer = await agent.send("POST", "/bind", {
      _csrf: csrf,
      name: "dan-app",
      namespace: env.bindingNamespace,
      export: exportId,
      kubeconfig,
      "shown-claim": shownClaims(home.body),
      claim: secretsBox.value,
    });
    assert.equal(answer.status, 303, answer.body);
    assert.equal(answer.headers.get("location"), `/bindings/${env.bindingNamespace}/dan-app`);
    assert.deepEqual(await recorded("dan-app"), { accepted: ["secrets"], rejected: ["configmaps"], pending: [] });
    // klutch-bind's AppClusterBinding, naming the Secret with its namespace
    const made = await env.controlClient.get(refs.klutchBindings, "dan-app", env.bindingNamespace);
    assert.deepEqual(((made?.spec ?? {}) as { kubeconfigSecretRef?: unknown }).kubeconfigSecretRef, {
      name: "dan-app-kubeconfig",
      namespace: env.bindingNamespace,
      key: "kubeconfig",
    });
    assert.equal(await env.controlClient.get(refs.bindings, "dan-app", env.bindingNamespace), undefined);
    await eventually("Ready on its page", async () => {
      const page = await agent.send("GET", `/bindings/${env.bindingNamespace}/dan-app`);
      assert.match(page.body, /<span id="ready"><span class="status True">/);
      assert.match(page.body, /<span class="muted" id="binding-group">klutch\.anynines\.com<\/span>/);
    });
  });

  it("decides no claim the page did not show, and keeps the boxes as they were", async () => {
    const agent = new Agent(web.url);
    const csrf = await agent.signIn(dan.token);
    const home = await agent.send("GET", "/");
    const [secretsBox, configMapsBox] = boxes(home.body);
    assert.ok(secretsBox && configMapsBox);
    const kubeconfig = readFileSync(env.app.kubeconfigPath, "utf8");
    // as if the template had grown a claim since the page was loaded: the configmaps claim was not shown
    const answer = await agent.send("POST", "/bind", {
      _csrf: csrf,
      name: "dan-unseen",
      namespace: env.bindingNamespace,
      export: exportId,
      kubeconfig,
      "shown-claim": secretsBox.value,
      claim: [secretsBox.value, configMapsBox.value],
    });
    assert.equal(answer.status, 400);
    assert.match(
      answer.body,
      /the permission claims of \S+ changed since the page was shown \(configmaps\.core\/Consumer\)/,
    );
    assert.deepEqual(
      boxes(answer.body).map((b) => b.checked),
      [true, true],
      "the form comes back as it was",
    );
    assertNotEchoed(answer.body, kubeconfig);
    assert.equal(await env.controlClient.get(refs.klutchBindings, "dan-unseen", env.bindingNamespace), undefined);
    assert.equal(await env.controlClient.get(refs.secrets, "dan-unseen-kubeconfig", env.bindingNamespace), undefined);
  });
});

// Identities a service account token cannot have (system:masters, nodes, components) come from a
// cluster of its own with static tokens. The page runs there as deploy/control-plane/web-rbac.yaml
// sets it up: its own service account, its token Secret and the kubeconfig of its ConfigMap.
describe("the web page refuses privileged identities", () => {
  const tokens = {
    admin: randomBytes(16).toString("hex"),
    controllerManager: randomBytes(16).toString("hex"),
    node: randomBytes(16).toString("hex"),
    mixed: randomBytes(16).toString("hex"),
    dave: randomBytes(16).toString("hex"),
  };
  let cluster: Cluster;
  let admin: KubeClient;
  let web: RunningWeb;
  let webKubeconfig: string;

  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), "klb-web-static-"));
    onFileDone(async () => rmSync(dir, { recursive: true, force: true }));
    const tokenFile = join(dir, "tokens.csv");
    writeFileSync(
      tokenFile,
      [
        `${tokens.admin},kube-admin,uid-admin,"system:masters"`,
        `${tokens.controllerManager},system:kube-controller-manager,uid-kcm`,
        `${tokens.node},system:node:n1,uid-node,"system:nodes"`,
        `${tokens.mixed},frank,uid-frank,"team-a,system:masters"`,
        `${tokens.dave},dave,uid-dave,"team-a,system:authenticated"`,
        "",
      ].join("\n"),
    );
    cluster = await freshCluster("web-static", { apiserverArgs: [`--token-auth-file=${tokenFile}`] });
    admin = KubeClient.fromConfig(clientConfig(cluster));
    onFileDone(async () => admin.close());

    await admin.apply(
      refs.namespaces,
      { apiVersion: "v1", kind: "Namespace", metadata: { name: "crossplane-system" } },
      "test",
    );
    const manifests = readManifests("deploy/control-plane/web-rbac.yaml");
    await apply(cluster, manifests);
    let secret: Record<string, string> = {};
    await eventually("the token controller fills klutch-bind-web-token", async () => {
      const read = await admin.get(refs.secrets, "klutch-bind-web-token", "crossplane-system");
      secret = (read?.data ?? {}) as Record<string, string>;
      assert.ok(secret.token && secret["ca.crt"]);
    });
    // the shipped kubeconfig, with the test's server and where the Secret is "mounted"
    const mounted = join(dir, "web-token");
    writeFileSync(`${mounted}-token`, Buffer.from(secret.token ?? "", "base64"));
    writeFileSync(`${mounted}-ca.crt`, Buffer.from(secret["ca.crt"] ?? "", "base64"));
    const configMap = manifests.find((o) => o.kind === "ConfigMap") as { data: { kubeconfig: string } };
    const kubeconfig = configMap.data.kubeconfig
      .replace("https://kubernetes.default.svc", cluster.server)
      .replaceAll("/var/run/secrets/klutch-bind-web/", `${mounted}-`);
    webKubeconfig = join(dir, "kubeconfig");
    writeFileSync(webKubeconfig, kubeconfig);
    web = await startWebServer({
      allowLoopbackAppServers: true,
      control: webClient(webKubeconfig),
      closeControl: true,
      logger: pino({ level: "silent" }),
      address: "127.0.0.1:0",
      defaultNamespace: "default",
    });
    onFileDone(() => web.stop());
  });

  it("refuses system:masters, reserved users and system groups, naming only what is refused", async () => {
    const cases: Array<[string, RegExp]> = [
      [tokens.admin, /privileged groups \(system:masters\)/],
      [tokens.controllerManager, /reserved user system:kube-controller-manager/],
      [tokens.node, /reserved user system:node:n1/],
      [tokens.mixed, /privileged groups \(system:masters\)/],
    ];
    for (const [token, why] of cases) {
      const answer = await new Agent(web.url).tryToken(token);
      assert.equal(answer.status, 401, answer.body);
      assert.match(answer.body, why);
      assert.ok(!answer.body.includes(token), "the token is not echoed");
    }
    assert.equal(web.sessions().length, 0, "no session was made");
  });

  it("impersonates a person's name and groups, with no system group but system:authenticated", async () => {
    const agent = new Agent(web.url);
    await agent.signIn(tokens.dave);
    const session = web.sessions().find((s) => s.id === agent.cookies.get("klb-session"));
    assert.ok(session);
    assert.equal(session.ends, session.created + 8 * 60 * 60_000, "a static token has no exp: the maximum applies");
    assert.deepEqual(await whoAmI(session.client), { username: "dave", groups: ["system:authenticated", "team-a"] });
  });

  it("impersonates a service account with its service account groups only", async () => {
    const namespace = "web-static-users";
    await admin.apply(refs.namespaces, { apiVersion: "v1", kind: "Namespace", metadata: { name: namespace } }, "test");
    const erin = await serviceAccount(admin, namespace, "erin");
    const agent = new Agent(web.url);
    await agent.signIn(erin.token);
    const session = web.sessions().find((s) => s.id === agent.cookies.get("klb-session"));
    assert.ok(session);
    assert.deepEqual(await whoAmI(session.client), {
      username: erin.username,
      groups: ["system:authenticated", "system:serviceaccounts", `system:serviceaccounts:${namespace}`],
    });
  });

  it("serves a session one more interval when TokenReview fails, then answers 503 until it works again", async () => {
    const quick = await startWebServer({
      allowLoopbackAppServers: true,
      control: webClient(webKubeconfig),
      closeControl: true,
      logger: pino({ level: "silent" }),
      address: "127.0.0.1:0",
      defaultNamespace: "default",
      reviewIntervalMs: 1000,
    });
    onFileDone(() => quick.stop());
    const agent = new Agent(quick.url);
    await agent.signIn(tokens.dave);
    // the page's account loses its role: TokenReview answers 403, which says nothing of dave's token
    const binding = readManifests("deploy/control-plane/web-rbac.yaml").filter((o) => o.kind === "ClusterRoleBinding");
    await admin.delete(refs.clusterRoleBindings, "klutch-bind:web");
    try {
      await eventually("the page stops acting for dave", async () => {
        const home = await agent.send("GET", "/");
        assert.equal(home.status, 503);
        assert.match(home.body, /could not check your token again/);
      });
      assert.equal(quick.sessions().length, 1, "nobody was signed out");
    } finally {
      await apply(cluster, binding);
    }
    await eventually("dave is served again", async () => {
      assert.equal((await agent.send("GET", "/")).status, 200);
    });
  });
});

/** `klutch-bind sync` on env's control plane and binding namespace, no metrics, health at healthAddress ("" for none) */
function syncArgs(env: SyncEnv, healthAddress: string): string[] {
  return [
    join(repoRoot, "src/cli/main.ts"),
    "sync",
    "--allow-loopback-app-servers",
    "--kubeconfig",
    env.control.kubeconfigPath,
    "-n",
    env.bindingNamespace,
    "--metrics-address",
    "",
    "--health-address",
    healthAddress,
  ];
}
