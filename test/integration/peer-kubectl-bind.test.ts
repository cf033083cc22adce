// kube-bind v0.3.0's own `kubectl bind` (kubectl-bind, built by `make tools` from
// github.com/kube-bind/kube-bind), run headless as issue 26's proof will run it against our page: it
// fetches a provider's discovery document, prints the authorize URL instead of opening a browser,
// and takes the BindingResponse a browser brings to its loopback callback. The HTTP server in this
// file is a scripted counterpart for the peer, a few lines answering what v0.3.0 asks for; it is not
// a fake of anything we ship. The app cluster is a real API server of this file's own, because
// kubectl-bind writes into the fixed namespace kube-bind.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { CoreV1Api } from "@kubernetes/client-node";
import { parseAllDocuments } from "yaml";
import type { Cluster } from "../support/cluster.ts";
import { freshCluster, kubeConfig } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";
import { stopProcess } from "../support/processes.ts";
import { kubeBindUnavailable, tool } from "../support/tools.ts";

/** What the scripted provider answers: its discovery document, and the BindingResponse /authorize sends back. */
type Script = {
  provider: (base: string) => unknown;
  response: (sessionId: string) => unknown;
};
type Seen = { path: string; query: URLSearchParams };

const kubeBind = "kube-bind.io/v1alpha1";
const exportRequest = {
  apiVersion: kubeBind,
  kind: "APIServiceExportRequest",
  metadata: { name: "postgresqlinstances.anynines.com" },
  spec: { resources: [{ group: "anynines.com", resource: "postgresqlinstances" }] },
};
// Only parsed by kubectl-bind in a dry run (host and namespace of its current context), never dialled.
const providerKubeconfig = `apiVersion: v1
kind: Config
clusters: [{name: provider, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: binder, user: {token: scripted}}]
contexts: [{name: provider, context: {cluster: provider, user: binder, namespace: kube-bind-scripted}}]
current-context: provider
`;

/** A discovery document as v0.3.0 accepts it; `apiVersion` is the bare version, which v0.3.0 compares against. */
function provider(base: string, changes: Record<string, unknown> = {}) {
  return {
    apiVersion: "v1alpha1",
    kind: "BindingProvider",
    providerPrettyName: "scripted provider",
    version: "v0.3.0",
    authenticationMethods: [
      { method: "OAuth2CodeGrant", oauth2CodeGrant: { authenticatedURL: `${base}/authorize?provider=scripted` } },
    ],
    ...changes,
  };
}

function bindingResponse(sessionId: string) {
  return {
    apiVersion: kubeBind,
    kind: "BindingResponse",
    authentication: { oauth2CodeGrant: { sid: sessionId, id: "scripted/user" } },
    kubeconfig: Buffer.from(providerKubeconfig).toString("base64"), // a Go []byte: standard base64 in JSON
    requests: [exportRequest],
  };
}

/** kubectl-bind's cluster id: the first 6 base62 digits (Go's big.Int.Text(62)) of SHA-224 over the kube-bind namespace's UID. */
function clusterId(namespaceUid: string): string {
  const digits = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  let n = BigInt(`0x${createHash("sha224").update(namespaceUid).digest("hex")}`);
  let text = "";
  while (n > 0n) {
    text = digits[Number(n % 62n)] + text;
    n /= 62n;
  }
  return text.slice(0, 6);
}

describe("kube-bind v0.3.0's kubectl bind as a peer", { skip: kubeBindUnavailable() }, () => {
  let app: Cluster;
  let server: Server;
  let base: string;
  let script: Script;
  let seen: Seen[] = [];

  before(async () => {
    app = await freshCluster("peer-app");
    server = createServer((req, res) => {
      const url = new URL(req.url ?? "/", base);
      seen.push({ path: url.pathname, query: url.searchParams });
      if (req.method === "GET" && url.pathname === "/export") {
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(script.provider(base)));
      } else if (req.method === "GET" && url.pathname === "/authorize") {
        const answer = Buffer.from(JSON.stringify(script.response(url.searchParams.get("s") ?? ""))).toString("base64");
        const callback = new URL(`http://localhost:${url.searchParams.get("p")}/callback`);
        callback.searchParams.set("response", answer);
        res.writeHead(302, { location: callback.toString() }).end();
      } else {
        res.writeHead(404).end();
      }
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise((resolve) => server.close(resolve)));

  /**
   * Runs `kubectl bind BASE/export` against the app cluster; resolves the authorize URL it prints, if
   * it gets that far. The test's signal ends it: left alone, v0.3.0 waits for its callback forever.
   */
  function bind(args: string[], signal: AbortSignal) {
    seen = [];
    const child = spawn(tool("kubectl-bind"), [`${base}/export`, "--kubeconfig", app.kubeconfigPath, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
      signal,
    });
    child.on("error", () => {}); // the abort; its exit is reported as well
    let stdout = "";
    let stderr = "";
    let printed: (url: string) => void = () => {};
    let gone: (err: Error) => void = () => {};
    const authorizeUrl = new Promise<string>((resolve, reject) => {
      printed = resolve;
      gone = reject;
    });
    authorizeUrl.catch(() => {}); // only awaited by the tests that get that far
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

  /**
   * What a browser does with the printed URL: follows the provider's redirect to kubectl-bind's
   * callback. Resolves the callback's page, or undefined when kubectl-bind ended first: after a
   * refused response it exits at once, often before its handler has written the page.
   */
  async function browse(run: ReturnType<typeof bind>, authorizeUrl: string): Promise<string | undefined> {
    const redirect = await fetch(authorizeUrl, { redirect: "manual" });
    assert.equal(redirect.status, 302);
    const callback = redirect.headers.get("location");
    if (!callback?.startsWith("http://localhost:")) assert.fail(`redirect to the loopback callback, got ${callback}`);
    let ended = false;
    void run.exited.then(() => {
      ended = true;
    });
    let answer: Response | undefined;
    // v0.3.0 prints the URL a moment before its callback server listens: retry until it answers
    await eventually("kubectl-bind's callback answering", async () => {
      if (ended) return;
      answer = await fetch(callback).catch((err: Error) => {
        throw new Error(`${callback}: ${err.message}: ${String(err.cause)}`);
      });
    });
    if (answer === undefined) return undefined;
    const body = await answer.text();
    assert.equal(answer.status, 200, body);
    return body;
  }

  it("is the v0.3.0 release build, with the flags a headless run needs", () => {
    const help = spawnSync(tool("kubectl-bind"), ["--help"], { encoding: "utf8" });
    assert.equal(help.status, 0, help.stderr);
    for (const flag of ["--dry-run", "--skip-konnector", "--kubeconfig", "--output"]) {
      assert.match(help.stdout, new RegExp(`${flag}\\b`), `kubectl bind --help lists ${flag}`);
    }
    const apiservice = spawnSync(tool("kubectl-bind"), ["apiservice", "--help"], { encoding: "utf8" });
    assert.equal(apiservice.status, 0, apiservice.stderr);
    assert.match(apiservice.stdout, /--remote-kubeconfig-namespace\b/);
    const konnector = spawnSync(tool("konnector"), ["--version"], { encoding: "utf8" });
    assert.equal(konnector.stdout.trim(), "konnector version v0.3.0", "stamped the way kube-bind's release stamps it");
  });

  it("fetches the discovery document, prints the authorize URL and takes the browser's BindingResponse (dry run)", {
    timeout: 120_000,
  }, async (t) => {
    script = { provider: (b) => provider(b), response: bindingResponse };
    const run = bind(["--dry-run", "-o", "yaml"], t.signal);
    try {
      const authorizeUrl = await run.authorizeUrl;
      const printed = new URL(authorizeUrl);
      assert.equal(`${printed.origin}${printed.pathname}`, `${base}/authorize`);
      // the provider's own query is kept; p, s and c are added and Go's Values.Encode sorts the keys
      assert.deepEqual([...printed.searchParams.keys()], ["c", "p", "provider", "s"]);
      assert.match(printed.searchParams.get("s") ?? "", /^[0-9A-Za-z]{6}$/);
      const body = await browse(run, authorizeUrl);
      if (body === undefined) assert.fail(`kubectl-bind ended without answering:\n${(await run.exited).stderr}`);
      // "Already authenticated" when a first try reached it but its answer was lost
      assert.match(body, /Successfully Authentication|Already authenticated/);

      const { code, stdout, stderr } = await run.exited;
      assert.equal(code, 0, stderr);
      assert.match(stderr, new RegExp(`Successfully authenticated to ${base}/export`));
      const printedRequests = parseAllDocuments(stdout)
        .map((d) => d.toJS())
        .filter((d) => d !== null);
      assert.deepEqual(printedRequests, [{ ...exportRequest, status: {} }]);

      assert.deepEqual(
        seen.map((s) => s.path),
        ["/export", "/authorize"],
      );
      const core = kubeConfig(app).makeApiClient(CoreV1Api);
      const ns = await core.readNamespace({ name: "kube-bind" });
      const query = seen[1]?.query;
      assert.equal(query?.get("c"), clusterId(ns.metadata?.uid ?? ""), "c is derived from the kube-bind namespace");
      assert.equal(query?.get("s"), printed.searchParams.get("s"));
      assert.match(query?.get("p") ?? "", /^\d+$/, "p is the port of kubectl-bind's callback on localhost");
      const secrets = await core.listNamespacedSecret({ namespace: "kube-bind" });
      const kubeconfigs = secrets.items.filter((s) => s.metadata?.name?.startsWith("kubeconfig-"));
      assert.equal(kubeconfigs.length, 1, "even a dry run stores the provider's kubeconfig");
      assert.equal(Buffer.from(kubeconfigs[0]?.data?.kubeconfig ?? "", "base64").toString(), providerKubeconfig);
    } finally {
      await stopProcess(run.child);
    }
  });

  const refusals: Array<{ what: string; script: Script; message: RegExp; paths: string[] }> = [
    {
      what: "a discovery document whose apiVersion is kube-bind.io/v1alpha1",
      script: { provider: (b) => provider(b, { apiVersion: kubeBind }), response: bindingResponse },
      message: /unsupported binding provider version: "kube-bind.io\/v1alpha1"/,
      paths: ["/export"],
    },
    {
      what: "a provider older than v0.3.0",
      script: { provider: (b) => provider(b, { version: "v0.2.0" }), response: bindingResponse },
      message: /provider version v0.2.0 is not supported, must be at least v0.3.0/,
      paths: ["/export"],
    },
    {
      what: "a provider without a version",
      script: { provider: (b) => provider(b, { version: undefined }), response: bindingResponse },
      message: /provider version "" is empty/,
      paths: ["/export"],
    },
    {
      what: "a provider without the OAuth2CodeGrant method",
      script: { provider: (b) => provider(b, { authenticationMethods: [] }), response: bindingResponse },
      message: /server does not support OAuth2 code grant flow/,
      paths: ["/export"],
    },
    {
      what: "a BindingResponse for another session",
      script: { provider: (b) => provider(b), response: () => bindingResponse("zzzzzz") },
      message: /unexpected response: sessionID does not match/,
      paths: ["/export", "/authorize"],
    },
    {
      what: "a BindingResponse whose request is not kube-bind.io/v1alpha1",
      script: {
        provider: (b) => provider(b),
        response: (s) => ({ ...bindingResponse(s), requests: [{ ...exportRequest, apiVersion: "example.org/v1" }] }),
      },
      message: /request #0 is not kube-bind.io\/v1alpha1, got example.org\/v1/,
      paths: ["/export", "/authorize"],
    },
  ];
  for (const refusal of refusals) {
    it(`refuses ${refusal.what}`, { timeout: 120_000 }, async (t) => {
      script = refusal.script;
      const run = bind(["--dry-run", "-o", "yaml"], t.signal);
      try {
        if (refusal.paths.includes("/authorize")) {
          await browse(run, await run.authorizeUrl);
        } else {
          const outcome = await run.authorizeUrl.then(
            () => "went on to print the authorize URL",
            () => "exited",
          );
          if (outcome !== "exited") {
            await stopProcess(run.child);
            assert.fail(`kubectl-bind ${outcome}:\n${(await run.exited).stderr}`);
          }
        }
        const { code, stderr } = await run.exited;
        assert.notEqual(code, 0);
        assert.match(stderr, refusal.message);
        assert.deepEqual(
          seen.map((s) => s.path),
          refusal.paths,
        );
      } finally {
        await stopProcess(run.child);
      }
    });
  }
});
