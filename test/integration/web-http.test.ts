// The web page at the HTTP level: TLS and cookie settings, security headers, sign-in, and what a
// bind refuses before it touches the control plane. The browser flows are in web-browser.test.ts.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { request } from "node:https";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { before, describe, it } from "node:test";
import { pino } from "pino";
import { refs } from "../../src/sync/resources.ts";
import { type RunningWeb, startWebServer } from "../../src/web/server.ts";
import { type Account, grant, serviceAccount } from "../support/accounts.ts";
import { makePki, type Pki } from "../support/certs.ts";
import { onFileDone, testNamespace } from "../support/clusters.ts";
import { apply, readManifests } from "../support/manifests.ts";
import { stopProcess } from "../support/processes.ts";
import { type SyncEnv, syncEnv } from "../support/sync-env.ts";
import { repoRoot } from "../support/tools.ts";

type Answer = { status: number; headers: Headers; body: string };

/** No credential or command of the posted kubeconfig is in the page. */
function assertNotEchoed(page: string, kubeconfig: string): void {
  const secrets = [...kubeconfig.matchAll(/(?:-data|token|command|args|client-key|token-file): *(.+)/g)].map(
    (m) => m[1]?.trim() ?? "",
  );
  for (const value of secrets.filter((v) => v.length > 8))
    assert.ok(!page.includes(value), `echoed: ${value.slice(0, 40)}`);
}

/** A browser stand-in: keeps cookies, follows nothing. */
class Agent {
  readonly cookies = new Map<string, string>();
  readonly base: string;
  constructor(base: string) {
    this.base = base;
  }

  async send(method: string, path: string, form?: Record<string, string | string[]>): Promise<Answer> {
    const body = new URLSearchParams();
    for (const [k, v] of Object.entries(form ?? {})) for (const one of [v].flat()) body.append(k, one);
    const response = await fetch(`${this.base}${path}`, {
      method,
      redirect: "manual",
      headers: {
        cookie: [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; "),
        ...(form ? { "content-type": "application/x-www-form-urlencoded", origin: this.base } : {}),
      },
      ...(form ? { body: body.toString() } : {}),
    });
    for (const line of response.headers.getSetCookie()) {
      const [pair = ""] = line.split(";");
      const at = pair.indexOf("=");
      this.cookies.set(pair.slice(0, at), pair.slice(at + 1));
    }
    return { status: response.status, headers: response.headers, body: await response.text() };
  }

  csrf(page: string): string {
    const token = /name="_csrf" value="([^"]+)"/.exec(page)?.[1];
    assert.ok(token, "the page carries a CSRF token");
    return token;
  }

  async signIn(token: string): Promise<string> {
    const login = await this.send("GET", "/login");
    const signedIn = await this.send("POST", "/login", { _csrf: this.csrf(login.body), token });
    assert.equal(signedIn.status, 303, signedIn.body);
    const home = await this.send("GET", "/");
    assert.equal(home.status, 200);
    return this.csrf(home.body);
  }
}

describe("the web page over HTTP", () => {
  let env: SyncEnv;
  let web: RunningWeb;
  let carol: Account;
  let exportId: string;

  before(async () => {
    env = await syncEnv();
    exportId = `postgresqlinstances.${env.ref.group}`;
    await env.template([]);
    const users = await testNamespace(env.control, "web-http");
    carol = await serviceAccount(env.controlClient, users, "carol");
    await apply(
      env.control,
      readManifests("deploy/control-plane/web-rbac.yaml").filter((o) => o.kind === "ClusterRole"),
    );
    await grant(env.controlClient, carol, "klutch-bind:binder", env.bindingNamespace);
    // the admin's own client impersonates; web-browser.test.ts runs the page with the least rights
    web = await startWebServer({
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
    assert.equal(await env.controlClient.get(refs.bindings, "unsafe", env.bindingNamespace), undefined);
    assert.equal(await env.controlClient.get(refs.secrets, "unsafe-kubeconfig", env.bindingNamespace), undefined);
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

  describe("klutch-bind sync --web-address with --web-tls-cert", () => {
    let pki: Pki;
    let url: string;
    let sync: ChildProcess;

    before(async () => {
      pki = makePki();
      sync = spawn(
        process.execPath,
        [
          join(repoRoot, "src/cli/main.ts"),
          "sync",
          "--kubeconfig",
          env.control.kubeconfigPath,
          "-n",
          env.bindingNamespace,
          "--metrics-address",
          "",
          "--health-address",
          "",
          "--web-address",
          "127.0.0.1:0",
          "--web-tls-cert",
          join(pki.serverDir, "tls.crt"),
          "--web-tls-key",
          join(pki.serverDir, "tls.key"),
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

    it("stops on SIGTERM", async () => {
      sync.kill("SIGTERM");
      const [code] = await once(sync, "exit");
      assert.equal(code, 0);
    });
  });
});
