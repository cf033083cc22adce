// How the web page tells a failed OpenID Connect sign-in (src/web/oidc.ts describeOidcFailure): a
// failed check of the provider's answer is shown as openid-client words it; a failure to get a
// usable answer at all (connection, TLS, timeout, a body that is not OpenID Connect's) gets a
// generic sentence, its cause going to the log only. The failures are real ones, of openid-client
// talking to servers on loopback; the token checks' own, which need a provider, are tested in
// test/integration/web-oidc.test.ts.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer as createHttpServer, type RequestListener } from "node:http";
import { createServer as createHttpsServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import * as client from "openid-client";
import { describeOidcFailure, OidcError, OidcLogin, unreachableText } from "../../src/web/oidc.ts";
import { CookieSealer } from "../../src/web/sealed-cookie.ts";
import { makePki, type Pki } from "../support/certs.ts";
import { freePort } from "../support/net.ts";

/** what a server in front of the provider may answer, which no page may repeat */
const secret = "proxy-internal-hostname-7f3a";

async function listening(server: Server | ReturnType<typeof createHttpServer>): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as AddressInfo).port;
}

const answers: Record<string, RequestListener> = {
  "/html": (_req, res) => res.writeHead(200, { "content-type": "text/html" }).end(`<html>${secret}</html>`),
  "/broken-json": (_req, res) => res.writeHead(200, { "content-type": "application/json" }).end(`{"issuer": ${secret}`),
  "/status": (_req, res) => res.writeHead(502, { "content-type": "text/plain" }).end(secret),
  "/other-issuer": (req, res) =>
    res
      .writeHead(200, { "content-type": "application/json" })
      .end(JSON.stringify({ issuer: `https://other.example/${req.url}`, authorization_endpoint: "https://x/a" })),
  "/silent": () => undefined,
};

/** The issuer path of an answer: discovery asks ISSUER/.well-known/openid-configuration. */
function route(): RequestListener {
  return (req, res) => {
    const path = (req.url ?? "").replace(/\/\.well-known\/openid-configuration$/, "");
    const answer = answers[path];
    if (answer) answer(req, res);
    else res.writeHead(404).end();
  };
}

function check(failure: { shown: string; detail?: string | undefined }, detail: RegExp): void {
  assert.ok(failure.shown.startsWith(unreachableText), failure.shown);
  assert.doesNotMatch(failure.shown, new RegExp(`${secret}|ECONNREFUSED|certificate|127\\.0\\.0\\.1`));
  assert.match(failure.detail ?? "", detail);
}

describe("a failed sign-in, as the page tells it", () => {
  let pki: Pki;
  let https: Server;
  let httpsPort: number;
  const http = createHttpServer(route());
  let httpPort: number;

  before(async () => {
    pki = makePki();
    const tls = {
      cert: readFileSync(join(pki.serverDir, "tls.crt")),
      key: readFileSync(join(pki.serverDir, "tls.key")),
    };
    https = createHttpsServer(tls, route());
    httpsPort = await listening(https);
    httpPort = await listening(http);
  });
  after(() => {
    https.closeAllConnections();
    http.closeAllConnections();
    https.close();
    http.close();
  });

  /** The OidcError the page's sign-in gets for an issuer on the loopback https server. */
  async function beginAt(path: string, ca: Buffer, port = httpsPort): Promise<OidcError> {
    const login = new OidcLogin(
      { issuerUrl: `https://127.0.0.1:${port}${path}`, clientId: "klutch-bind-web", ca },
      new CookieSealer(),
    );
    const err = await login.begin(undefined, "http://127.0.0.1:1/oidc/callback").then(
      () => assert.fail("the sign-in began"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof OidcError, String(err));
    assert.match(err.message, /^the OpenID provider https:\/\/127\.0\.0\.1:\d+\/?\S* could not be reached or read: /);
    return err;
  }

  const failure = (err: OidcError) => ({
    shown: err.message.replace(/^.*? could not be reached or read: /, ""),
    detail: err.detail,
  });

  it("no connection: a generic sentence, the refused connection in the log", async () => {
    const closed = await freePort();
    check(failure(await beginAt("", pki.ca, closed)), /ECONNREFUSED/);
    const viaFetch = await client.discovery(new URL(`https://127.0.0.1:${closed}`), "id").catch((e: unknown) => e);
    check(describeOidcFailure(viaFetch), /fetch failed; cause: Error: connect ECONNREFUSED/);
  });

  it("a certificate it does not trust: a generic sentence, the TLS error in the log", async () => {
    // trusting the client's certificate, which did not sign the server's
    check(failure(await beginAt("/html", pki.client.cert)), /certificate/);
  });

  it("an answer that is not OpenID Connect's: a generic sentence, never the answer", async () => {
    const html = await beginAt("/html", pki.ca);
    check(failure(html), /OAUTH_RESPONSE_IS_NOT_JSON/);
    assert.match(
      html.message,
      /\[OAUTH_RESPONSE_IS_NOT_JSON\]$/,
      "the library's code, which says nothing of the answer",
    );
    const broken = await beginAt("/broken-json", pki.ca);
    check(failure(broken), /OAUTH_PARSE_ERROR.*SyntaxError/);
    assert.match(broken.detail ?? "", /"issuer": proxy-inte/, "the log has what the answer began with");
    check(failure(await beginAt("/status", pki.ca)), /OAUTH_RESPONSE_IS_NOT_CONFORM.*HTTP 502/);
  });

  it("no answer in time: a generic sentence, the timeout in the log", async () => {
    const err = await client
      .discovery(new URL(`http://127.0.0.1:${httpPort}/silent`), "id", undefined, undefined, {
        execute: [client.allowInsecureRequests],
        timeout: 1,
      })
      .catch((e: unknown) => e);
    check(describeOidcFailure(err), /OAUTH_TIMEOUT/);
  });

  it("a failed check of the answer is shown, naming what failed", async () => {
    const issuer = await beginAt("/other-issuer", pki.ca);
    assert.match(
      issuer.message,
      /discovered metadata issuer does not match the expected issuer \[OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED\]$/,
    );
    assert.equal(issuer.detail, undefined, "nothing held back for the log");
    // as openid-client hands on oauth4webapi's checks of an ID token (the real ones, against a
    // provider: test/integration/web-oidc.test.ts)
    const checks: Array<[string, string, string]> = [
      [
        "unexpected JWT claim value encountered",
        "OAUTH_JWT_CLAIM_COMPARISON_FAILED",
        'unexpected ID Token "nonce" claim value',
      ],
      [
        "JWT timestamp claim value failed validation",
        "OAUTH_JWT_TIMESTAMP_CHECK_FAILED",
        'unexpected JWT "exp" (expiration time) claim value, expiration is past current timestamp',
      ],
      ["invalid response encountered", "OAUTH_INVALID_RESPONSE", "JWT signature verification failed"],
    ];
    for (const [message, code, cause] of checks) {
      const err = Object.assign(new client.ClientError(message, { cause: Object.assign(new Error(cause), { code }) }), {
        code,
      });
      assert.deepEqual(describeOidcFailure(err), { shown: `${message} [${code}]: ${cause}` });
    }
  });

  it("the provider's own refusal is shown as it said it", () => {
    const refused = new client.AuthorizationResponseError("authorization response from the server is an error", {
      cause: new URLSearchParams({ error: "access_denied", error_description: "the user said no" }),
    });
    assert.deepEqual(describeOidcFailure(refused), { shown: "the provider answered access_denied: the user said no" });
  });

  it("an error it does not know: a generic sentence, the error in the log", () => {
    check(describeOidcFailure(new Error(`socket hang up at ${secret}`)), new RegExp(secret));
    check(describeOidcFailure("a string"), /string/);
  });
});
