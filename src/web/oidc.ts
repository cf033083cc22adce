// Sign-in with OpenID Connect for the web page: authorization code with PKCE (S256), state and
// nonce, through openid-client. The ID token's signature (the issuer's JWKS), iss, aud, exp and
// nonce are verified here; who the person is, though, is what the control plane's TokenReview says
// of the ID token (its API server trusts the same issuer), exactly as for a pasted bearer token.
//
// A sign-in in progress (a "flow") is kept in this process, keyed by its state, and tied to the
// browser that began it by a random cookie: a callback whose state is unknown, already used, or
// begun by another browser is refused. Each flow is used once and lives ten minutes at most.
import { request } from "node:https";
import * as client from "openid-client";
import { sameToken } from "./session.ts";

export type OidcSettings = {
  /** the issuer, exactly as its discovery document and the ID tokens name it */
  issuerUrl: string;
  clientId: string;
  /** a confidential client's secret; without it the page is a public client (PKCE alone) */
  clientSecret?: string;
  /** PEM: the CA that signed the issuer's certificate, when it is not a public one */
  ca?: string | Buffer;
  /** where the provider sends the browser back; default the page's own URL + /oidc/callback */
  redirectUrl?: string;
  /** default ["openid"] */
  scopes?: readonly string[];
};

/** The sign-in failed; the message is fit to show the person and to log (it never holds a token). */
export class OidcError extends Error {}

type Flow = {
  browser: string;
  state: string;
  nonce: string;
  verifier: string;
  redirectUri: string;
  created: number;
};

export const oidcCallbackPath = "/oidc/callback";
const flowLifetimeMs = 10 * 60_000;
const maxFlows = 10_000;
const requestTimeoutMs = 15_000;
const maxResponseBytes = 1024 * 1024;

/** fetch over node:https trusting ca only: global fetch cannot be given a CA per request. */
function fetchTrusting(ca: string | Buffer): client.CustomFetch {
  return (url, options) =>
    new Promise((resolve, reject) => {
      const body = options.body;
      if (body !== undefined && body !== null && typeof body !== "string" && !(body instanceof URLSearchParams)) {
        reject(new TypeError("unexpected request body type"));
        return;
      }
      const req = request(
        url,
        { method: options.method, headers: options.headers, ca, timeout: requestTimeoutMs },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on("data", (chunk: Buffer) => {
            size += chunk.length;
            if (size > maxResponseBytes)
              req.destroy(new Error(`answer of ${url} larger than ${maxResponseBytes} bytes`));
            else chunks.push(chunk);
          });
          res.on("end", () => {
            const headers = new Headers();
            for (const [name, value] of Object.entries(res.headers)) {
              for (const one of [value ?? []].flat()) headers.append(name, one);
            }
            const status = res.statusCode ?? 502;
            const empty = status === 204 || status === 304;
            resolve(new Response(empty ? null : Buffer.concat(chunks), { status, headers }));
          });
          res.on("error", reject);
        },
      );
      req.on("timeout", () => req.destroy(new Error(`no answer from ${url} within ${requestTimeoutMs / 1000}s`)));
      req.on("error", reject);
      options.signal?.addEventListener("abort", () => req.destroy(new Error("aborted")), { once: true });
      req.end(body === undefined || body === null ? undefined : String(body));
    });
}

/** What went wrong, in words; never the error's cause, which may hold the provider's answer. */
function describe(err: unknown): string {
  if (err instanceof client.AuthorizationResponseError) {
    return `the provider answered ${err.error}${err.error_description ? `: ${err.error_description}` : ""}`;
  }
  if (err instanceof client.ResponseBodyError) {
    const expired =
      err.error === "invalid_grant"
        ? " (the sign-in took too long, or this answer was used already; sign in again)"
        : "";
    return `the provider refused the authorization code: ${err.error}${err.error_description ? ` (${err.error_description})` : ""}${expired}`;
  }
  if (err instanceof client.ClientError) {
    const cause = err.cause instanceof Error ? `: ${err.cause.message}` : "";
    return `${err.message}${err.code ? ` [${err.code}]` : ""}${cause}`;
  }
  return err instanceof Error ? err.message : String(err);
}

export class OidcLogin {
  readonly issuer: string;
  readonly #settings: OidcSettings;
  readonly #flows = new Map<string, Flow>();
  #config: Promise<client.Configuration> | undefined;
  readonly #now: () => number;

  constructor(settings: OidcSettings, now: () => number = Date.now) {
    checkOidcSettings(settings);
    this.issuer = settings.issuerUrl;
    this.#settings = settings;
    this.#now = now;
  }

  /** The redirect URL for a page serving at pageUrl. */
  redirectUri(pageUrl: string): string {
    return this.#settings.redirectUrl ?? `${pageUrl}${oidcCallbackPath}`;
  }

  /**
   * Discovery, once it succeeds: an issuer that could not be reached is asked again at the next
   * sign-in, so the page starts (and serves bearer tokens) while its provider is down.
   */
  #configuration(): Promise<client.Configuration> {
    if (this.#config === undefined) {
      const { issuerUrl, clientId, clientSecret, ca } = this.#settings;
      const options: client.DiscoveryRequestOptions = {
        execute: [client.enableNonRepudiationChecks],
        timeout: requestTimeoutMs / 1000,
        ...(ca !== undefined ? { [client.customFetch]: fetchTrusting(ca) } : {}),
      };
      const auth = clientSecret !== undefined ? client.ClientSecretBasic(clientSecret) : client.None();
      const pending = client.discovery(new URL(issuerUrl), clientId, undefined, auth, options).catch((err: unknown) => {
        this.#config = undefined;
        throw new OidcError(`the OpenID provider ${issuerUrl} could not be reached or read: ${describe(err)}`);
      });
      this.#config = pending;
    }
    return this.#config;
  }

  /**
   * Begins a sign-in for the browser holding the cookie value browser: the provider's authorization
   * URL to send it to.
   */
  async begin(browser: string, redirectUri: string): Promise<URL> {
    const config = await this.#configuration();
    this.#sweep();
    if (this.#flows.size >= maxFlows) throw new OidcError("too many sign-ins in progress; try again in a few minutes");
    const flow: Flow = {
      browser,
      state: client.randomState(),
      nonce: client.randomNonce(),
      verifier: client.randomPKCECodeVerifier(),
      redirectUri,
      created: this.#now(),
    };
    this.#flows.set(flow.state, flow);
    return client.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: (this.#settings.scopes ?? ["openid"]).join(" "),
      response_type: "code",
      state: flow.state,
      nonce: flow.nonce,
      code_challenge: await client.calculatePKCECodeChallenge(flow.verifier),
      code_challenge_method: "S256",
    });
  }

  /**
   * Ends the sign-in the provider sent the browser back from (query: the callback's query string):
   * the verified ID token. Throws OidcError saying why not.
   */
  async finish(browser: string | undefined, query: URLSearchParams): Promise<{ idToken: string }> {
    this.#sweep();
    const state = query.get("state") ?? "";
    const flow = this.#flows.get(state);
    if (flow === undefined) {
      throw new OidcError(
        "this sign-in answer does not match a sign-in in progress (unknown or altered state, used already, or older than 10 minutes); sign in again",
      );
    }
    if (!sameToken(browser, flow.browser)) {
      throw new OidcError("this sign-in answer belongs to a sign-in begun in another browser; sign in again");
    }
    this.#flows.delete(state);
    const config = await this.#configuration();
    const current = new URL(flow.redirectUri);
    current.search = query.toString();
    let tokens: client.TokenEndpointResponse;
    try {
      tokens = await client.authorizationCodeGrant(config, current, {
        pkceCodeVerifier: flow.verifier,
        expectedState: flow.state,
        expectedNonce: flow.nonce,
        idTokenExpected: true,
      });
    } catch (err) {
      throw new OidcError(`the sign-in with ${this.issuer} failed: ${describe(err)}`);
    }
    const idToken = tokens.id_token;
    if (typeof idToken !== "string" || idToken === "") {
      throw new OidcError(`the provider ${this.issuer} sent no ID token`);
    }
    return { idToken };
  }

  #sweep(): void {
    const now = this.#now();
    for (const [state, flow] of this.#flows) {
      if (now - flow.created > flowLifetimeMs) this.#flows.delete(state);
    }
  }
}

/** Throws an Error naming the flag of the first setting that cannot work. */
export function checkOidcSettings(settings: OidcSettings): void {
  const issuer = parseUrl(settings.issuerUrl, "--oidc-issuer-url");
  if (issuer.protocol !== "https:") throw new Error(`--oidc-issuer-url ${settings.issuerUrl}: must be https`);
  if (settings.clientId === "") throw new Error("--oidc-client-id is required with --oidc-issuer-url");
  if (settings.redirectUrl !== undefined) {
    const redirect = parseUrl(settings.redirectUrl, "--oidc-redirect-url");
    if (redirect.pathname !== oidcCallbackPath) {
      throw new Error(`--oidc-redirect-url ${settings.redirectUrl}: its path must be ${oidcCallbackPath}`);
    }
  }
  const scopes = settings.scopes ?? ["openid"];
  if (!scopes.includes("openid")) throw new Error(`--oidc-scopes ${scopes.join(",")}: must include openid`);
}

function parseUrl(value: string, flag: string): URL {
  try {
    return new URL(value);
  } catch {
    throw new Error(`${flag} ${value}: not a URL`);
  }
}
