// What `klutch-bind bind URL` asks the control plane's web page over HTTP(S): its discovery
// document (the BindingProvider both kubectl bind plugins read), the binding for a one-time code
// and PKCE verifier, and a headless bind with a bearer token. Every answer is bounded in size and
// time and decoded strictly; an error names the URL and what was wrong, never a token.
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { cliBindTokenPath, headlessBindPath } from "../web/kubectl-bind.ts";

const maxAnswerBytes = 1024 * 1024;
const requestTimeoutMs = 30_000;

export class PageError extends Error {}

export type PageAccess = {
  /** PEM of the CA that signed the page's certificate, when it is not a public one */
  ca?: string | Buffer;
};

type Answer = { status: number; body: string };

/** One bounded request to the page. */
function ask(
  url: URL,
  access: PageAccess,
  options: { method: string; headers?: Record<string, string>; body?: string },
): Promise<Answer> {
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    return Promise.reject(new PageError(`${url.href}: only http and https URLs are served`));
  }
  // a bearer token, a PKCE verifier and the kubeconfig that comes back cross this connection
  if (url.protocol === "http:" && !isLoopback(url.hostname)) {
    return Promise.reject(new PageError(`${url.href}: plain http is only for a page on this machine; use https`));
  }
  const send = url.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      url,
      {
        method: options.method,
        headers: { accept: "application/json", ...options.headers },
        timeout: requestTimeoutMs,
        ...(url.protocol === "https:" && access.ca !== undefined ? { ca: access.ca } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > maxAnswerBytes)
            req.destroy(new PageError(`${url.href}: answer larger than ${maxAnswerBytes / 1024} KiB`));
          else chunks.push(chunk);
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new PageError(`${url.href}: no answer within ${requestTimeoutMs / 1000} s`)));
    req.on("error", (err) => reject(err instanceof PageError ? err : new PageError(`${url.href}: ${err.message}`)));
    req.end(options.body);
  });
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

function json(answer: Answer, url: URL): unknown {
  try {
    return JSON.parse(answer.body);
  } catch {
    throw new PageError(`${url.href} answered ${answer.status} with no JSON document (is it a klutch-bind page?)`);
  }
}

/** The page's own error text, when it sent one ({"error": "..."}), cut to a line. */
function errorOf(value: unknown): string | undefined {
  const text = typeof value === "object" && value !== null ? (value as { error?: unknown }).error : undefined;
  return typeof text === "string" ? text.slice(0, 500) : undefined;
}

export type Provider = {
  /** the page's origin: where the CLI trades its code */
  page: URL;
  /** where the person's browser goes, the page's own query kept */
  authorize: URL;
};

/** GET of the URL the app team was given: the page's BindingProvider document. */
export async function discover(url: URL, access: PageAccess): Promise<Provider> {
  const answer = await ask(url, access, { method: "GET" });
  if (answer.status !== 200) throw new PageError(`${url.href} answered ${answer.status}: not a binding provider's URL`);
  const doc = json(answer, url);
  const field = (name: string) =>
    typeof doc === "object" && doc !== null ? (doc as Record<string, unknown>)[name] : undefined;
  if (field("apiVersion") !== "v1alpha1" || field("kind") !== "BindingProvider") {
    throw new PageError(`${url.href}: not a BindingProvider document (apiVersion v1alpha1, kind BindingProvider)`);
  }
  const methods = field("authenticationMethods");
  const grant = Array.isArray(methods)
    ? (methods as unknown[]).find(
        (m): m is { oauth2CodeGrant: { authenticatedURL: unknown } } =>
          typeof m === "object" && m !== null && (m as { method?: unknown }).method === "OAuth2CodeGrant",
      )
    : undefined;
  const authorizeText = grant?.oauth2CodeGrant?.authenticatedURL;
  if (typeof authorizeText !== "string") {
    throw new PageError(`${url.href}: authenticationMethods names no OAuth2CodeGrant with an authenticatedURL`);
  }
  let authorize: URL;
  try {
    authorize = new URL(authorizeText);
  } catch {
    throw new PageError(`${url.href}: authenticatedURL ${JSON.stringify(authorizeText.slice(0, 200))} is not a URL`);
  }
  // the verifier goes where the browser went: a document sending the person elsewhere is refused
  if (authorize.origin !== url.origin) {
    throw new PageError(
      `${url.href}: its authenticatedURL is on another site (${authorize.origin}); refusing to sign in there`,
    );
  }
  return { page: new URL(url.origin), authorize };
}

/** The BindingResponse the page keeps for code, for the verifier whose challenge the authorize URL carried. */
export async function tradeCode(
  provider: Provider,
  code: string,
  verifier: string,
  access: PageAccess,
): Promise<unknown> {
  const url = new URL(cliBindTokenPath, provider.page);
  const body = new URLSearchParams({ code, code_verifier: verifier }).toString();
  const answer = await ask(url, access, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body,
  });
  const doc = json(answer, url);
  if (answer.status !== 200)
    throw new PageError(`the page refused the code: ${errorOf(doc) ?? `status ${answer.status}`}`);
  return doc;
}

export type HeadlessChoice = {
  clusterId: string;
  namespace: string;
  api: string;
  acceptClaims: readonly string[];
  dryRun: boolean;
};

/** A bind without a browser: the person's bearer token, the choice made on the command line. */
export async function bindHeadless(
  provider: Provider,
  token: string,
  choice: HeadlessChoice,
  access: PageAccess,
): Promise<unknown> {
  const url = new URL(headlessBindPath, provider.page);
  const form = new URLSearchParams({ "cluster-id": choice.clusterId, namespace: choice.namespace, export: choice.api });
  for (const entry of choice.acceptClaims) form.append("accept-claims", entry);
  if (choice.dryRun) form.set("dry-run", "true");
  const answer = await ask(url, access, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", authorization: `Bearer ${token}` },
    body: form.toString(),
  });
  const doc = json(answer, url);
  if (answer.status !== 200)
    throw new PageError(`the page refused the bind (${answer.status}): ${errorOf(doc) ?? "no reason given"}`);
  return doc;
}
