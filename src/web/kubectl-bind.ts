// What the page says to `kubectl bind URL` (kube-bind v0.3.0's plugin, and klutch-bind's): the
// discovery document (BindingProvider), the authorize request's parameters, and the BindingResponse
// the browser carries to the plugin's loopback callback. Wire facts: both plugins compare the
// discovery apiVersion with the bare "v1alpha1" and need a version of at least v0.3.0; the
// authorize request carries only p (callback port), s (session id), c (cluster id), so which plugin
// asks is marked in the authenticatedURL's own query (client=), which the plugins keep. The response
// is standard base64 (with padding) of JSON whose group is the plugin's own: kube-bind.io for
// v0.3.0, klutch.anynines.com for klutch-bind's.
import type { PermissionClaim } from "../export/types.ts";

export type BindClient = "kube-bind" | "klutch";

/** the discovery routes: kube-bind's plugin is given /export, klutch-bind's /export/klutch */
export const discoveryPaths: Record<string, BindClient> = { "/export": "kube-bind", "/export/klutch": "klutch" };
export const authorizePath = "/authorize";
export const cliBindPath = "/cli-bind";
/** klutch-bind's CLI trades its one-time code and PKCE verifier for the binding here */
export const cliBindTokenPath = "/cli-bind/token";
/** klutch-bind's CLI binds here without a browser, with the person's bearer token */
export const headlessBindPath = "/cli-bind/headless";

const groups: Record<BindClient, string> = { "kube-bind": "kube-bind.io", klutch: "klutch.anynines.com" };

/** The BindingProvider document the plugin GETs from the URL it was given. */
export function bindingProvider(pageUrl: string, client: BindClient): unknown {
  const authorize = new URL(authorizePath, pageUrl);
  authorize.searchParams.set("client", client);
  return {
    apiVersion: "v1alpha1",
    kind: "BindingProvider",
    providerPrettyName: "klutch-bind",
    // the least version both plugins accept; the protocol spoken is v0.3.0's
    version: "v0.3.0",
    authenticationMethods: [{ method: "OAuth2CodeGrant", oauth2CodeGrant: { authenticatedURL: authorize.href } }],
  };
}

/** A bind begun by a plugin, waiting for the person to sign in and choose. */
export type PendingBind = {
  /** random: a finished bind is remembered by it, so that its cookie binds once */
  id: string;
  client: BindClient;
  /** the plugin's callback port on loopback */
  port: number;
  sessionId: string;
  clusterId: string;
  /** the page session that took it up first; no other may finish it */
  pageSession?: string;
  created: number;
  /** where the plugin listens: localhost unless it named 127.0.0.1 in u or redirect_url */
  callbackHost: "localhost" | "127.0.0.1";
  /**
   * klutch-bind's own CLI (`klutch-bind bind URL`): the S256 challenge of its PKCE verifier. The
   * browser then carries only a one-time code to the callback; the CLI trades it, with the verifier,
   * for the binding (POST /cli-bind/token), so no kubeconfig passes through the browser.
   */
  codeChallenge?: string;
  /** bind nothing: the person chooses as usual, the page provisions nothing and answers without a kubeconfig */
  dryRun?: boolean;
};

export class AuthorizeError extends Error {}

/**
 * The authorize request's parameters, checked. The callback is always http://localhost:PORT/callback
 * (the plugins listen on localhost): a request naming any other redirect (kube-bind's example
 * backend takes `u`, kube-bind main `redirect_url`) is refused unless it is exactly that loopback URL.
 */
/** A query value as an error shows it: quoted, and cut (the query is anyone's to make long). */
function shown(value: string): string {
  return JSON.stringify(value.length > 100 ? `${value.slice(0, 100)}…` : value);
}

export function readAuthorize(query: URLSearchParams, now: number): Omit<PendingBind, "id"> {
  let callbackHost: PendingBind["callbackHost"] = "localhost";
  const client = query.get("client") ?? "kube-bind";
  if (client !== "kube-bind" && client !== "klutch") {
    throw new AuthorizeError(`client: must be kube-bind or klutch, got ${shown(client)}`);
  }
  const portText = query.get("p") ?? "";
  const port = Number(portText);
  if (!/^\d{1,5}$/.test(portText) || port < 1 || port > 65535) {
    throw new AuthorizeError(`p: must be the callback's port (1 to 65535), got ${shown(portText)}`);
  }
  const sessionId = query.get("s") ?? "";
  if (!/^[A-Za-z0-9]{1,64}$/.test(sessionId)) {
    throw new AuthorizeError(`s: must be the plugin's session id (letters and digits), got ${shown(sessionId)}`);
  }
  const clusterId = query.get("c") ?? "";
  if (!/^[A-Za-z0-9]{1,63}$/.test(clusterId)) {
    throw new AuthorizeError(`c: must be the app cluster's id (letters and digits), got ${shown(clusterId)}`);
  }
  for (const name of ["u", "redirect_url"]) {
    const wanted = query.get(name);
    if (wanted === null) continue;
    if (!isLoopbackCallback(wanted, port)) {
      throw new AuthorizeError(
        `${name}: the callback must be http://127.0.0.1:${port}/callback or http://localhost:${port}/callback, got ${shown(wanted)}`,
      );
    }
    callbackHost = new URL(wanted).hostname === "127.0.0.1" ? "127.0.0.1" : "localhost";
  }
  const challenge = query.get("code_challenge");
  const method = query.get("code_challenge_method");
  if (challenge !== null || method !== null) {
    if (method !== "S256") throw new AuthorizeError(`code_challenge_method: must be S256, got ${shown(method ?? "")}`);
    if (!/^[A-Za-z0-9_-]{43}$/.test(challenge ?? "")) {
      throw new AuthorizeError(
        `code_challenge: must be the base64url SHA-256 of a verifier, got ${shown(challenge ?? "")}`,
      );
    }
  }
  const dryRun = query.get("dry_run");
  if (dryRun !== null && dryRun !== "true")
    throw new AuthorizeError(`dry_run: must be true when given, got ${shown(dryRun)}`);
  if (dryRun !== null && challenge === null) {
    throw new AuthorizeError(
      "dry_run: only klutch-bind's own CLI (with code_challenge) can take an answer without a kubeconfig",
    );
  }
  return {
    client,
    port,
    sessionId,
    clusterId,
    created: now,
    callbackHost,
    ...(challenge !== null ? { codeChallenge: challenge } : {}),
    ...(dryRun !== null ? { dryRun: true } : {}),
  };
}

/** A pending bind as its sealed cookie gives it back (sealed by us, so checked for shape only). */
export function isPendingBind(value: unknown): value is PendingBind {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.id === "string" &&
    (v.client === "kube-bind" || v.client === "klutch") &&
    typeof v.port === "number" &&
    typeof v.sessionId === "string" &&
    typeof v.clusterId === "string" &&
    (v.pageSession === undefined || typeof v.pageSession === "string") &&
    typeof v.created === "number" &&
    (v.callbackHost === "localhost" || v.callbackHost === "127.0.0.1") &&
    (v.codeChallenge === undefined || typeof v.codeChallenge === "string") &&
    (v.dryRun === undefined || v.dryRun === true)
  );
}

function isLoopbackCallback(text: string, port: number): boolean {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return false;
  }
  return (
    url.protocol === "http:" &&
    (url.hostname === "127.0.0.1" || url.hostname === "localhost") &&
    url.port === String(port) &&
    url.pathname === "/callback" &&
    url.username === "" &&
    url.password === ""
  );
}

export type RequestedApi = { group: string; resource: string; version: string; claims: PermissionClaim[] };

/** The APIServiceExportRequest for one API and its accepted claims, in the group given. */
export function exportRequest(apiVersion: string, name: string, api: RequestedApi, namespace?: string) {
  return {
    apiVersion,
    kind: "APIServiceExportRequest",
    metadata: { name, ...(namespace ? { namespace } : {}) },
    spec: {
      resources: [
        {
          group: api.group,
          resource: api.resource,
          ...(api.version ? { versions: [api.version] } : {}),
          ...(api.claims.length ? { permissionClaims: api.claims } : {}),
        },
      ],
    },
  };
}

export type BindAnswer = { identity: string; kubeconfig: string; api: RequestedApi; requestName: string };

/** The BindingResponse for a plugin: in its own group, for its session. */
export function bindingResponse(pending: Pick<PendingBind, "client" | "sessionId">, answer: BindAnswer) {
  const apiVersion = `${groups[pending.client]}/v1alpha1`;
  return {
    apiVersion,
    kind: "BindingResponse",
    authentication: { oauth2CodeGrant: { sid: pending.sessionId, id: answer.identity } },
    kubeconfig: Buffer.from(answer.kubeconfig).toString("base64"),
    requests: [exportRequest(apiVersion, answer.requestName, answer.api)],
  };
}

type Callback = Pick<PendingBind, "port" | "callbackHost">;

const callbackUrl = (pending: Callback) => new URL(`http://${pending.callbackHost}:${pending.port}/callback`);

/**
 * Where the browser goes with the binding: the plugin's callback, response = standard base64 of the
 * BindingResponse. The kubeconfig goes nowhere else.
 */
export function callbackLocation(
  pending: Pick<PendingBind, "client" | "sessionId"> & Callback,
  answer: BindAnswer,
): string {
  const callback = callbackUrl(pending);
  callback.searchParams.set(
    "response",
    Buffer.from(JSON.stringify(bindingResponse(pending, answer))).toString("base64"),
  );
  return callback.href;
}

/** Where the browser goes for klutch-bind's CLI: its callback with a one-time code and its session. */
export function handoffLocation(pending: Pick<PendingBind, "sessionId"> & Callback, code: string): string {
  const callback = callbackUrl(pending);
  callback.searchParams.set("code", code);
  callback.searchParams.set("s", pending.sessionId);
  return callback.href;
}
