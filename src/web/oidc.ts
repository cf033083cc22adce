// Sign-in with OpenID Connect for the web page: authorization code with PKCE (S256), state and
// nonce, through openid-client. The ID token's signature (the issuer's JWKS), iss, aud, exp and
// nonce are verified here; who the person is, though, is what the control plane's TokenReview says
// of the ID token (its API server trusts the same issuer), exactly as for a pasted bearer token.
//
// A sign-in in progress (a "flow": state, nonce, PKCE verifier) lives in the browser that began it,
// in a sealed cookie (sealed-cookie.ts), never in this process: visits to /oidc/login cost the page
// no memory, however many. A callback whose state matches no flow of that browser's cookie is
// refused; the page clears the cookie when the sign-in ends, and the provider takes each code once.
// A browser holds its last few flows, so sign-ins begun in two tabs both finish; each lives ten
// minutes at most.
import { request } from "node:https";
import * as client from "openid-client";
import type { CookieSealer } from "./sealed-cookie.ts";
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

/**
 * The sign-in failed; the message is fit to show the person and to log (it never holds a token).
 * detail: what went wrong underneath (a connection, TLS, a timeout, an unreadable answer), for the
 * log only, never the page.
 */
export class OidcError extends Error {
  readonly detail: string | undefined;

  constructor(message: string, detail?: string) {
    super(message);
    this.detail = detail;
  }
}

type Flow = { state: string; nonce: string; verifier: string; redirectUri: string; created: number };

export const oidcCallbackPath = "/oidc/callback";
export const flowLifetimeMs = 10 * 60_000;
/** sign-ins in progress one browser keeps (tabs); the oldest is dropped */
const flowsPerBrowser = 3;
const flowPurpose = "oidc-flows";
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

/**
 * openid-client's ClientError codes (oauth4webapi's) of a check of the provider's answer that
 * failed: a claim (nonce, aud, iss, azp, hashes), a time (exp, nbf, iat), the signature or its key,
 * a missing or malformed field, the discovered issuer. The cause of these is the library's own
 * sentence naming what failed, which the person needs to see.
 */
const checkCodes: ReadonlySet<string> = new Set([
  "OAUTH_JWT_CLAIM_COMPARISON_FAILED",
  "OAUTH_JWT_TIMESTAMP_CHECK_FAILED",
  "OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED",
  "OAUTH_KEY_SELECTION_FAILED",
  "OAUTH_INVALID_RESPONSE",
]);

/** What the page says of a failure that is not a check of the answer: its detail goes to the log. */
export const unreachableText =
  "no usable answer came from the provider (a connection, TLS or timeout failure, or an answer that is not " +
  "OpenID Connect's; the page's log says which)";

/** How a failure of openid-client is told: shown to the person, and detail for the log only. */
export type OidcFailure = { shown: string; detail?: string };

/**
 * What went wrong, in words. The provider's refusals (its error code and description) and failed
 * checks of its answer are shown; anything else (no connection, TLS, a timeout, a body that is not
 * JSON, an error we do not know) gets a generic sentence, its causes being for the log: they may
 * hold the network's detail or the body of whatever answered.
 */
export function describeOidcFailure(err: unknown): OidcFailure {
  if (err instanceof client.AuthorizationResponseError) {
    return { shown: `the provider answered ${err.error}${err.error_description ? `: ${err.error_description}` : ""}` };
  }
  if (err instanceof client.ResponseBodyError) {
    const expired =
      err.error === "invalid_grant"
        ? " (the sign-in took too long, or this answer was used already; sign in again)"
        : "";
    return {
      shown: `the provider refused the authorization code: ${err.error}${err.error_description ? ` (${err.error_description})` : ""}${expired}`,
    };
  }
  if (err instanceof client.ClientError && err.code !== undefined && checkCodes.has(err.code)) {
    const cause = err.cause instanceof Error ? `: ${err.cause.message}` : "";
    return { shown: `${err.message} [${err.code}]${cause}` };
  }
  const code = err instanceof client.ClientError && err.code !== undefined ? ` [${err.code}]` : "";
  return { shown: `${unreachableText}${code}`, detail: causeChain(err) };
}

const maxDetailChars = 1000;

/** An error and its causes, in one line for the log: "TypeError: fetch failed; cause: Error: connect ..." */
function causeChain(err: unknown): string {
  const parts: string[] = [];
  let current: unknown = err;
  for (let depth = 0; depth < 5 && current !== undefined && current !== null; depth++) {
    if (!(current instanceof Error)) {
      // openid-client hands the Response of a bad status or content-type as the cause: its status only
      parts.push(current instanceof Response ? `HTTP ${current.status}` : typeof current);
      break;
    }
    const code = (current as { code?: unknown }).code;
    parts.push(`${current.name}: ${current.message}${typeof code === "string" ? ` [${code}]` : ""}`);
    current = current.cause;
  }
  const line = parts.join("; cause: ");
  return line.length <= maxDetailChars ? line : `${line.slice(0, maxDetailChars)}…`;
}

export class OidcLogin {
  readonly issuer: string;
  readonly #settings: OidcSettings;
  readonly #sealer: CookieSealer;
  readonly #now: () => number;
  #config: Promise<client.Configuration> | undefined;

  constructor(settings: OidcSettings, sealer: CookieSealer, now: () => number = Date.now) {
    checkOidcSettings(settings);
    this.issuer = settings.issuerUrl;
    this.#settings = settings;
    this.#sealer = sealer;
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
        const { shown, detail } = describeOidcFailure(err);
        throw new OidcError(`the OpenID provider ${issuerUrl} could not be reached or read: ${shown}`, detail);
      });
      this.#config = pending;
    }
    return this.#config;
  }

  /**
   * Begins a sign-in in the browser whose flow cookie is flowCookie: the provider's authorization
   * URL to send it to, and the flow cookie's new value.
   */
  async begin(flowCookie: string | undefined, redirectUri: string): Promise<{ url: URL; flowCookie: string }> {
    const config = await this.#configuration();
    const flow: Flow = {
      state: client.randomState(),
      nonce: client.randomNonce(),
      verifier: client.randomPKCECodeVerifier(),
      redirectUri,
      created: this.#now(),
    };
    const flows = [flow, ...this.#flows(flowCookie)].slice(0, flowsPerBrowser);
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: (this.#settings.scopes ?? ["openid"]).join(" "),
      response_type: "code",
      state: flow.state,
      nonce: flow.nonce,
      code_challenge: await client.calculatePKCECodeChallenge(flow.verifier),
      code_challenge_method: "S256",
    });
    return { url, flowCookie: this.#sealer.seal(flowPurpose, flows, flowLifetimeMs) };
  }

  /**
   * Ends the sign-in the provider sent the browser back from (query: the callback's query string;
   * flowCookie: that browser's flow cookie): the verified ID token. Throws OidcError saying why not.
   */
  async finish(flowCookie: string | undefined, query: URLSearchParams): Promise<{ idToken: string }> {
    const state = query.get("state") ?? "";
    const flow = this.#flows(flowCookie).find((f) => sameToken(f.state, state));
    if (flow === undefined) {
      throw new OidcError(
        "this sign-in answer matches no sign-in in progress in this browser (begun in another browser, state altered, used already, or older than 10 minutes); sign in again",
      );
    }
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
      const { shown, detail } = describeOidcFailure(err);
      throw new OidcError(`the sign-in with ${this.issuer} failed: ${shown}`, detail);
    }
    const idToken = tokens.id_token;
    if (typeof idToken !== "string" || idToken === "") {
      throw new OidcError(`the provider ${this.issuer} sent no ID token`);
    }
    return { idToken };
  }

  /**
   * The flow cookie once the callback with this query has been answered, however it went: the
   * browser's other flows, or undefined when none is left (clear the cookie).
   */
  remaining(flowCookie: string | undefined, query: URLSearchParams): string | undefined {
    const state = query.get("state") ?? "";
    const rest = this.#flows(flowCookie).filter((f) => !sameToken(f.state, state));
    return rest.length > 0 ? this.#sealer.seal(flowPurpose, rest, flowLifetimeMs) : undefined;
  }

  /** The live flows a flow cookie holds: none when it is missing, altered or expired. */
  #flows(flowCookie: string | undefined): Flow[] {
    const opened = this.#sealer.open(flowPurpose, flowCookie);
    const now = this.#now();
    return Array.isArray(opened) ? opened.filter((f) => isFlow(f) && now - f.created <= flowLifetimeMs) : [];
  }
}

function isFlow(value: unknown): value is Flow {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    ["state", "nonce", "verifier", "redirectUri"].every((k) => typeof v[k] === "string") &&
    typeof v.created === "number"
  );
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
