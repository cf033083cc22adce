// The web page of `klutch-bind sync --web-address`: sign in with a control-plane token, see the
// bindable APIs and the bindings, bind an app cluster, see what a binding holds and unbind it. Every
// read and write is made as the signed-in user (impersonation), so Kubernetes RBAC decides what
// each user sees and may do. Sessions end with their token (see session.ts); privileged identities
// are refused at sign-in (see auth.ts).
// With OpenID Connect configured (oidc.ts), a person may instead sign in at the identity provider:
// the page then holds the ID token as it would a pasted token, and TokenReview decides as before.
import { createHash } from "node:crypto";
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { Logger } from "pino";
import { clusterBindingName, pullRefs } from "../api/pull-binding.ts";
import { type BindableApi, listVisibleBindable, pickExports } from "../bind/bindable.ts";
import { checkAppCluster, checkBindingName, createBinding } from "../bind/binding.ts";
import { readBindingContents } from "../bind/binding-contents.ts";
import { choicesOf, decide, stateOf } from "../bind/claim-choice.ts";
import { ExplainedError, explain } from "../bind/explain.ts";
import { findBindings, groupOf, listBindings } from "../bind/find-bindings.ts";
import { type PullBindingView, readPullBinding } from "../bind/pull-binding-view.ts";
import { deleteBinding, deletionPolicyOf, isDeletionPolicy, setDeletionPolicy } from "../bind/unbind.ts";
import { namespaceName } from "../export/decode.ts";
import { KubeClient, type KubeObject } from "../kube/client.ts";
import { conditionOf, conditionsOf } from "../kube/conditions.ts";
import { readKubeconfigFile } from "../kube/kubeconfig.ts";
import { LookupGate } from "../kube/lookup.ts";
import type { Network, ServerAddressPolicy } from "../kube/server-addresses.ts";
import { listen } from "../listen.ts";
import { withSafeErrors } from "../log.ts";
import { script, styleSheet } from "./assets.ts";
import { checkToken, reviewToken, type SignIn, SignInError } from "./auth.ts";
import {
  bindingPage,
  bindingStatus,
  bindingSubHref,
  pullBindingPage,
  unbindPage,
  unboundPage,
} from "./binding-page.ts";
import { acceptedChoice, type CliBindDone, CliBindRefused, finishCliBind, formChoice } from "./cli-bind.ts";
import { cliBindPage } from "./cli-bind-page.ts";
import { RequestError, readForm } from "./form.ts";
import {
  AuthorizeError,
  authorizePath,
  bindingProvider,
  bindingResponse,
  callbackLocation,
  cliBindPath,
  cliBindTokenPath,
  discoveryPaths,
  handoffLocation,
  headlessBindPath,
  isPendingBind,
  type PendingBind,
  readAuthorize,
} from "./kubectl-bind.ts";
import { flowLifetimeMs, OidcError, OidcLogin, type OidcSettings, oidcCallbackPath } from "./oidc.ts";
import {
  type BindForm,
  type BindingView,
  bindingHref,
  dashboardPage,
  errorPage,
  type LoginOptions,
  loginPage,
  signedInPage,
} from "./pages.ts";
import { PreferredVersions } from "./preferred-versions.ts";
import { CookieSealer } from "./sealed-cookie.ts";
import { cookie, type EndReason, randomToken, readCookies, type Session, SessionStore, sameToken } from "./session.ts";

export type WebOptions = {
  /**
   * the page's own client (`--web-kubeconfig`, see webClient), else the sidecar's: asks TokenReview,
   * and impersonates the signed-in users
   */
  control: KubeClient;
  /** close control when the page stops (a client made for the page alone) */
  closeControl?: boolean;
  logger: Logger;
  /** HOST:PORT; port 0 picks a free one */
  address: string;
  /** where new bindings go unless the form says otherwise */
  defaultNamespace: string;
  /** PEM; when given, the page is served over HTTPS and its cookies are Secure */
  tls?: { cert: string | Buffer; key: string | Buffer };
  idleMs?: number;
  maxMs?: number;
  /** how often each session's token is checked again with TokenReview (default 2 min) */
  reviewIntervalMs?: number;
  /**
   * app cluster servers on loopback addresses too (the sync's --allow-loopback-app-servers; default
   * false); link-local ones and serviceNetworks are always refused (server-addresses.ts)
   */
  allowLoopbackAppServers?: boolean;
  /** the control plane's service network (the sync's --service-cidr; default none) */
  serviceNetworks?: readonly Network[];
  /** binds (app cluster lookups and requests) one user has in flight at most; more are refused at once (default 2) */
  maxBindsPerUser?: number;
  /**
   * sign-ins checked at once (TokenReview, an OpenID code exchange), whoever asks: anyone who reaches
   * the page may start one, and the page may share its process with the sync; more are answered
   * 503 at once, never queued (default 8)
   */
  maxSignInsAtOnce?: number;
  /** connections the page holds at most (default 512) */
  maxConnections?: number;
  /** the host name lookups of the app clusters users name, gated per user (a gate of the page's own by default) */
  lookups?: LookupGate;
  /** sign-in with OpenID Connect, besides (or instead of) bearer tokens */
  oidc?: OidcSettings;
  /** the bearer token form (default true); false needs oidc */
  tokenSignIn?: boolean;
  /**
   * the control plane's address and CA (base64) written into the kubeconfigs `kubectl bind` gets
   * (default the page client's server, the system's trust)
   */
  externalAddress?: { server: string; certificateAuthorityData?: string };
};

export type RunningWeb = {
  url: string;
  stop: () => Promise<void>;
  /** the signed-in sessions, for diagnostics and tests (tokens are not in them) */
  sessions: () => readonly Session[];
  /** the sign-in checks under way (at most maxSignInsAtOnce), for diagnostics and tests */
  signInsChecked: () => number;
};

/** The page's own client, from the kubeconfig of an identity with only web-rbac.yaml's role. */
export function webClient(kubeconfigPath: string): KubeClient {
  try {
    return KubeClient.fromConfig(readKubeconfigFile(kubeconfigPath), { userAgent: "klutch-bind-web" });
  } catch (err) {
    throw new Error(`--web-kubeconfig ${kubeconfigPath}: ${message(err)}`);
  }
}

const endedNotices: Record<EndReason, string> = {
  expired: "Your session ended: your token expired, or the session reached its time limit. Sign in again.",
  idle: "Your session ended after a while without use. Sign in again.",
  revoked:
    "Your session ended: the control plane no longer accepts your token (revoked or expired). Sign in with a new one.",
  changed: "Your session ended: your token now stands for another user or other groups. Sign in again.",
};

function isEndReason(value: string | null): value is EndReason {
  return value !== null && Object.hasOwn(endedNotices, value);
}

const maxKubeconfigBytes = 256 * 1024;
/** how long a `kubectl bind` run waits here for its person to sign in and choose */
const pendingBindMs = 10 * 60_000;
/** finished binds remembered, so that a pending bind's cookie binds once */
const maxFinishedBinds = 10_000;
const pendingBindPurpose = "kubectl-bind";
/** how long a binding made for klutch-bind's CLI waits for the CLI to fetch it */
const handoffMs = 2 * 60_000;
const maxHandoffs = 1000;

function bindingView(b: KubeObject): BindingView {
  type ExportStatus = { group: string; resource: string; objects?: number; message?: string };
  const exports = ((b.status as { exports?: ExportStatus[] } | undefined)?.exports ?? []).map((e) => ({
    id: `${e.resource}.${e.group}`,
    objects: e.objects ?? 0,
    ...(e.message ? { message: e.message } : {}),
  }));
  return {
    name: b.metadata.name,
    namespace: b.metadata.namespace ?? "",
    connected: conditionOf(b, "Connected"),
    ready: conditionOf(b, "Ready"),
    exports,
    deleting: b.metadata.deletionTimestamp !== undefined,
    deletionPolicy: deletionPolicyOf(b),
    group: groupOf(b),
  };
}

/** The key of a user's host name lookups: who signed in, never what they typed. */
function lookupKey(session: Session): string {
  return `user:${session.user.username}`;
}

/**
 * The page's Content-Security-Policy. formTarget: one more origin a form may lead to: the choice
 * page of a kubectl bind run posts a form whose answer redirects to the plugin's loopback callback,
 * and browsers hold each redirect of a form's answer to the form-action of the page that sent it.
 */
function pageSecurityPolicy(formTarget?: string): string {
  const formAction = formTarget ? `'self' ${formTarget}` : "'self'";
  return `default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self'; form-action ${formAction}; frame-ancestors 'none'; base-uri 'none'`;
}

/** As many sign-ins as the page checks at once are being checked. */
class SignInBusy extends Error {
  constructor() {
    super("too many sign-ins are being checked at once; try again in a moment");
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export async function startWebServer(options: WebOptions): Promise<RunningWeb> {
  const secure = options.tls !== undefined;
  const sessionCookie = secure ? "__Host-klb-session" : "klb-session";
  const loginCookie = secure ? "__Host-klb-login" : "klb-login";
  /** ties an OpenID Connect sign-in in progress to the browser that began it (oidc.ts) */
  const flowCookie = secure ? "__Host-klb-oidc" : "klb-oidc";
  /** ties a `kubectl bind` run's pending bind (kubectl-bind.ts) to the browser that opened its URL */
  const cliBindCookie = secure ? "__Host-klb-cli-bind" : "klb-cli-bind";
  /** what the page remembers of a browser before sign-in, in that browser's cookies (sealed-cookie.ts) */
  const sealer = new CookieSealer();
  /** the ids of pending binds finished, kept only as long as their cookie could still be shown */
  const finishedBinds = new Map<string, number>();
  /** the pending `kubectl bind` run a cliBind cookie holds, unless it is altered, expired or finished */
  const pendingBind = (sealed: string | undefined): PendingBind | undefined => {
    const pending = sealer.open(pendingBindPurpose, sealed);
    return isPendingBind(pending) && !finishedBinds.has(pending.id) ? pending : undefined;
  };
  const pendingBindCookie = (pending: PendingBind) =>
    cookie(cliBindCookie, sealer.seal(pendingBindPurpose, pending, pendingBindMs), {
      secure,
      sameSite: "Lax",
      maxAgeSeconds: pendingBindMs / 1000,
    });
  const finishBind = (pending: PendingBind) => {
    const now = Date.now();
    for (const [id, at] of finishedBinds) {
      if (now - at <= pendingBindMs && finishedBinds.size < maxFinishedBinds) break;
      finishedBinds.delete(id);
    }
    finishedBinds.set(pending.id, now);
  };
  /**
   * Bindings made for klutch-bind's CLI, waiting for it to trade their one-time code (and its PKCE
   * verifier) for them: made only by signed-in people's binds, kept two minutes, the oldest dropped.
   */
  const handoffs = new Map<string, { response: unknown; challenge: string; created: number }>();
  const handOff = (response: unknown, challenge: string): string => {
    const now = Date.now();
    for (const [code, entry] of handoffs) {
      if (now - entry.created <= handoffMs && handoffs.size < maxHandoffs) break;
      handoffs.delete(code);
    }
    const code = randomToken();
    handoffs.set(code, { response, challenge, created: now });
    return code;
  };
  const oidc = options.oidc !== undefined ? new OidcLogin(options.oidc, sealer) : undefined;
  const tokenSignIn = options.tokenSignIn ?? true;
  if (!tokenSignIn && oidc === undefined) throw new Error("turning the bearer token sign-in off needs OpenID Connect");
  /** this page's own URL, known once it listens */
  let pageUrl = "";
  const log = withSafeErrors(options.logger);
  // the app clusters users name are looked up two at a time per signed-in user (lookup.ts): never
  // per namespace typed into the form, which would give a user as many lanes as names they type
  const lookups = options.lookups ?? new LookupGate();
  const appServers: ServerAddressPolicy = {
    allowLoopback: options.allowLoopbackAppServers ?? false,
    serviceNetworks: options.serviceNetworks ?? [],
  };
  const maxBindsPerUser = options.maxBindsPerUser ?? 2;
  const maxSignInsAtOnce = options.maxSignInsAtOnce ?? 8;
  let signInsInFlight = 0;
  /** A sign-in check, unless as many as allowed run already: then SignInBusy at once. */
  const gatedSignIn = async <T>(check: () => Promise<T>): Promise<T> => {
    if (signInsInFlight >= maxSignInsAtOnce) throw new SignInBusy();
    signInsInFlight++;
    try {
      return await check();
    } finally {
      signInsInFlight--;
    }
  };
  /** binds in flight, by user */
  const bindsInFlight = new Map<string, number>();
  /** discovery's answers a binding's page needs, kept a while per identity */
  const preferredVersions = new PreferredVersions();
  const sessions = new SessionStore({
    idleMs: options.idleMs ?? 60 * 60_000,
    maxMs: options.maxMs ?? 8 * 60 * 60_000,
    reviewIntervalMs: options.reviewIntervalMs ?? 2 * 60_000,
    review: (token) => checkToken(options.control, token),
    onEvent: (event) => {
      if (event.what === "ended") log.info({ user: event.user, reason: event.reason }, "session ended");
      else log.warn({ user: event.user, error: event.error }, "could not re-check the token of a session");
    },
  });

  const send = (res: ServerResponse, status: number, body: string, headers: Record<string, string | string[]> = {}) => {
    res.writeHead(status, { "content-type": "text/html; charset=utf-8", ...headers }).end(body);
  };
  const sendJson = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    res
      .writeHead(status, { "content-type": "application/json", "cache-control": "no-store", ...headers })
      .end(JSON.stringify(body));
  };
  const redirect = (res: ServerResponse, location: string, headers: Record<string, string | string[]> = {}) => {
    res.writeHead(303, { location, ...headers }).end();
  };

  /** A signed-in person's form that checkPost refused: logged, and a page saying why. */
  const refuseForm = (res: ServerResponse, session: Session, path: string, refused: string) => {
    log.warn({ user: session.user.username, path, reason: refused }, "form refused");
    send(res, 403, errorPage({ title: "Refused", message: refused, user: session.user.username, csrf: session.csrf }));
  };
  /** A POST must come from this site: same origin (when the browser says) and the session's token. */
  const checkPost = (req: IncomingMessage, form: URLSearchParams, expected: string | undefined): string | undefined => {
    const origin = req.headers.origin;
    const own = `${secure ? "https" : "http"}://${req.headers.host ?? ""}`;
    if (origin !== undefined && origin !== own) return `the form was sent from another site (${origin})`;
    const site = req.headers["sec-fetch-site"];
    if (site === "cross-site" || site === "same-site") return "the form was sent from another site";
    if (!sameToken(form.get("_csrf") ?? undefined, expected))
      return "the form's CSRF token is missing or wrong; reload the page and try again";
    return undefined;
  };

  const dashboard = async (session: Session, namespace: string, form: BindForm): Promise<string> => {
    const [apis, bindings, pull] = await Promise.all([
      listVisibleBindable(session.client, namespace).then(
        (apis) => ({ apis }),
        (err: unknown) => ({
          apis: [] as BindableApi[],
          error: explain(err, "list the bindable APIs", options.control.server, namespace).message,
        }),
      ),
      listBindings(session.client, namespace).then(
        (items) => ({ bindings: items.map(bindingView) }),
        (err: unknown) => ({
          bindings: [] as BindingView[],
          error: explain(err, "list AppClusterBindings", options.control.server, namespace).message,
        }),
      ),
      // a pull binding's ClusterBinding, when the person may read it (else there is nothing to link to)
      session.client.get(pullRefs.clusterBindings, clusterBindingName, namespace).catch(() => undefined),
    ]);
    return dashboardPage({
      ...(pull ? { pullBinding: true } : {}),
      user: session.user.username,
      csrf: session.csrf,
      apis: apis.apis,
      ...("error" in apis ? { apisError: apis.error } : {}),
      bindings: bindings.bindings,
      ...("error" in bindings ? { bindingsError: bindings.error } : {}),
      form,
    });
  };

  const bind = async (session: Session, form: URLSearchParams): Promise<string> => {
    const name = (form.get("name") ?? "").trim();
    const namespace = (form.get("namespace") ?? "").trim();
    const wanted = form.getAll("export");
    // browsers send a text area's line breaks as CRLF
    const kubeconfig = (form.get("kubeconfig") ?? "").replace(/\r\n/g, "\n");
    checkBindingName(name);
    namespaceName(namespace, "namespace");
    if (wanted.length === 0) throw new Error("choose at least one API to bind");
    if (kubeconfig.trim() === "") throw new Error("paste or choose the app cluster's kubeconfig");
    if (Buffer.byteLength(kubeconfig) > maxKubeconfigBytes) throw new Error("the kubeconfig is larger than 256 KiB");
    const bindable = await listVisibleBindable(session.client, namespace).catch((err: unknown) => {
      throw explain(err, "list the bindable APIs", options.control.server, namespace);
    });
    const exports = pickExports(bindable, wanted);
    // each claim as its box was: checked is Accepted, unchecked Rejected; a claim the page did not
    // show (the template changed since) is not decided here, the user sees it first
    const shown = new Set(form.getAll("shown-claim"));
    const checked = new Set(form.getAll("claim"));
    const unseen = choicesOf(exports).filter((c) => !shown.has(`${c.api.id}/${c.key}`));
    if (unseen.length > 0) {
      throw new Error(
        `the permission claims of ${[...new Set(unseen.map((c) => c.api.id))].join(", ")} changed since the page was shown (${unseen.map((c) => c.name).join(", ")}): review them and bind again`,
      );
    }
    const decisions = decide(exports, (c) => checked.has(`${c.api.id}/${c.key}`));
    const lookup = lookups.lookupFor(lookupKey(session));
    await checkAppCluster(kubeconfig, lookup, appServers);
    const { ref } = await createBinding(
      session.client,
      { name, namespace, kubeconfig, exports, decisions, lookup, serverAddresses: appServers },
      "klutch-bind-web",
    );
    log.info(
      {
        user: session.user.username,
        binding: `${namespace}/${name}`,
        exports: wanted,
        claims: choicesOf(exports).map((c) => `${c.api.id} ${c.name} ${stateOf(decisions, c)}`),
      },
      "bound an app cluster",
    );
    return bindingHref({ namespace, name, group: ref.group });
  };

  /** Unbinds as the person: the policy they chose set, the binding deleted; where the browser goes next. */
  const unbind = async (session: Session, binding: KubeObject, form: URLSearchParams): Promise<string> => {
    const { name, namespace = "" } = binding.metadata;
    const policy = form.get("policy");
    if (!isDeletionPolicy(policy)) throw new Error("choose what happens to the bound objects: Orphan or Delete");
    if ((form.get("confirm") ?? "").trim() !== name) {
      throw new Error(`type the binding's name, ${name}, to unbind it`);
    }
    const doing = `unbind AppClusterBinding ${name}`;
    try {
      await setDeletionPolicy(session.client, binding, policy);
      await deleteBinding(session.client, binding);
    } catch (err) {
      throw explain(err, doing, options.control.server, namespace);
    }
    log.info({ user: session.user.username, binding: `${namespace}/${name}`, policy }, "unbound an app cluster");
    return bindingSubHref(bindingView(binding), "", "unbinding=1");
  };

  /** The sign-in page, with what this page signs in with. */
  const signInPage = (page: Omit<LoginOptions, "oidcIssuer" | "tokenForm">): string =>
    loginPage({ ...page, tokenForm: tokenSignIn, ...(oidc ? { oidcIssuer: oidc.issuer } : {}) });

  /** The sign-in page again, with why the sign-in failed and a new form token. */
  const refuseSignIn = (res: ServerResponse, status: number, why: string, cookies: string[] = []) => {
    const token = randomToken();
    send(res, status, signInPage({ csrf: token, error: why }), {
      "set-cookie": [cookie(loginCookie, token, { secure }), ...cookies],
    });
  };

  /** A session for an identity TokenReview accepted; the cookies that tell the browser of it. */
  const startSession = (signIn: SignIn, via: "token" | "oidc"): string[] => {
    const created = sessions.create(
      signIn.identity,
      signIn.user,
      options.control.impersonating(signIn.user),
      signIn.token,
      signIn.expires,
    );
    log.info(
      { user: signIn.user.username, groups: signIn.user.groups, ends: new Date(created.ends).toISOString(), via },
      "signed in",
    );
    return [
      cookie(sessionCookie, created.id, { secure, maxAgeSeconds: sessions.maxAgeSeconds(created) }),
      cookie(loginCookie, "", { secure, maxAgeSeconds: 0 }),
    ];
  };

  /** GET /oidc/login: off to the provider, the sign-in's state, nonce and PKCE verifier kept here. */
  const beginOidc = async (login: OidcLogin, res: ServerResponse, flows: string | undefined) => {
    let begun: { url: URL; flowCookie: string };
    try {
      begun = await login.begin(flows, login.redirectUri(pageUrl));
    } catch (err) {
      if (!(err instanceof OidcError)) throw err;
      log.warn(
        { issuer: login.issuer, reason: err.message, cause: err.detail },
        "OpenID Connect sign-in could not begin",
      );
      return refuseSignIn(res, 502, err.message);
    }
    // Lax: the browser must send it back when the provider redirects it to the callback
    redirect(res, begun.url.href, {
      "set-cookie": cookie(flowCookie, begun.flowCookie, {
        secure,
        sameSite: "Lax",
        maxAgeSeconds: flowLifetimeMs / 1000,
      }),
    });
  };

  /** GET /oidc/callback: the code for an ID token, the ID token to TokenReview, then a session. */
  const finishOidc = async (
    login: OidcLogin,
    res: ServerResponse,
    query: URLSearchParams,
    flows?: string,
    cliBindCookieValue?: string,
  ) => {
    // the flow this answer belongs to is used up, however the sign-in ends
    const left = login.remaining(flows, query);
    const flowsLeft = left
      ? cookie(flowCookie, left, { secure, sameSite: "Lax", maxAgeSeconds: flowLifetimeMs / 1000 })
      : cookie(flowCookie, "", { secure, maxAgeSeconds: 0 });
    let signIn: SignIn;
    try {
      signIn = await gatedSignIn(async () => {
        const { idToken } = await login.finish(flows, query);
        return reviewToken(
          options.control,
          idToken,
          `the control plane did not accept the ID token of ${login.issuer}: its API server must trust this issuer ` +
            "and client ID (kube-apiserver --oidc-issuer-url and --oidc-client-id, or its authentication config)",
        );
      });
    } catch (err) {
      if (err instanceof SignInBusy) return refuseSignIn(res, 503, err.message, [flowsLeft]);
      if (!(err instanceof OidcError) && !(err instanceof SignInError)) throw err;
      const cause = err instanceof OidcError ? err.detail : undefined;
      log.warn({ issuer: login.issuer, reason: err.message, cause }, "OpenID Connect sign-in refused");
      return refuseSignIn(res, 401, err.message, [flowsLeft]);
    }
    // back to a pending kubectl bind (its cookie is Lax: sent on the provider's redirect here)
    const next = pendingBind(cliBindCookieValue) ? cliBindPath : "/";
    send(res, 200, signedInPage(signIn.user.username, next), {
      "set-cookie": [...startSession(signIn, "oidc"), flowsLeft],
    });
  };

  /** GET and POST /cli-bind: the choice for a pending `kubectl bind` run, and the bind (cli-bind.ts). */
  const cliBind = async (
    req: IncomingMessage,
    res: ServerResponse,
    session: Session,
    namespace: string,
    pendingCookie: string | undefined,
  ): Promise<void> => {
    const user = session.user.username;
    const page = { user, csrf: session.csrf };
    const form = req.method === "POST" ? await readForm(req) : undefined;
    if (form !== undefined) {
      const refused = checkPost(req, form, session.csrf);
      if (refused) return refuseForm(res, session, "/cli-bind", refused);
    }
    const pending = pendingBind(pendingCookie);
    if (pending === undefined) {
      return send(
        res,
        400,
        errorPage({
          title: "No kubectl bind waiting",
          message: "Open the URL kubectl bind printed (again) to bind an app cluster from it.",
          ...page,
        }),
      );
    }
    // the first signed-in session to take it up owns it: no other browser session may finish it
    const takenUp: Record<string, string> = {
      "content-security-policy": pageSecurityPolicy(`http://${pending.callbackHost}:${pending.port}`),
      ...(pending.pageSession === undefined
        ? { "set-cookie": pendingBindCookie({ ...pending, pageSession: session.id }) }
        : {}),
    };
    if (pending.pageSession !== undefined && pending.pageSession !== session.id) {
      return send(
        res,
        403,
        errorPage({ title: "Refused", message: "this kubectl bind belongs to another sign-in", ...page }),
      );
    }
    const shown = async (error?: string) => ({
      ...page,
      clusterId: pending.clusterId,
      client: pending.client,
      namespace,
      apis: await listVisibleBindable(session.client, namespace).catch(() => [] as BindableApi[]),
      ...(error ? { error } : {}),
    });
    if (form === undefined) return send(res, 200, cliBindPage(await shown()), takenUp);
    // taken before the bind, so that two posts of one cookie cannot both bind; given back on failure
    finishBind(pending);
    try {
      const done = await finishCliBind({
        control: options.control,
        person: session.client,
        identity: user,
        pending,
        choice: formChoice(form),
        ...(options.externalAddress?.server ? { server: options.externalAddress.server } : {}),
        ...(options.externalAddress?.certificateAuthorityData
          ? { certificateAuthorityData: options.externalAddress.certificateAuthorityData }
          : {}),
      });
      log.info(
        {
          user,
          clusterId: pending.clusterId,
          client: pending.client,
          namespace: done.namespace,
          api: done.api,
          claims: done.accepted,
          ...(pending.dryRun ? { dryRun: true } : {}),
        },
        pending.dryRun ? "answered a dry run of klutch-bind bind" : "bound an app cluster for kubectl bind",
      );
      const location =
        pending.codeChallenge !== undefined
          ? handoffLocation(pending, handOff(bindingResponse(pending, done.answer), pending.codeChallenge))
          : callbackLocation(pending, done.answer);
      return redirect(res, location, {
        "set-cookie": cookie(cliBindCookie, "", { secure, maxAgeSeconds: 0 }),
      });
    } catch (err) {
      const status =
        err instanceof CliBindRefused ? err.status : err instanceof ExplainedError && err.code === 403 ? 403 : 400;
      finishedBinds.delete(pending.id);
      log.info({ user, reason: message(err) }, "kubectl bind refused");
      return send(res, status, cliBindPage(await shown(message(err))), takenUp);
    }
  };

  /** POST /cli-bind/token: klutch-bind's CLI trades the code its callback got, with its verifier, for the binding. */
  const tradeCode = async (req: IncomingMessage, res: ServerResponse) => {
    const form = await readForm(req);
    const code = form.get("code") ?? "";
    const entry = handoffs.get(code);
    // one attempt per code, right or wrong: a verifier cannot be guessed at
    handoffs.delete(code);
    if (entry === undefined || Date.now() - entry.created > handoffMs) {
      return sendJson(res, 400, { error: "unknown, used or expired code: bind again" });
    }
    const verifier = form.get("code_verifier") ?? "";
    const challenge = createHash("sha256").update(verifier).digest("base64url");
    if (!sameToken(challenge, entry.challenge)) {
      log.warn("a CLI bind's code came with the wrong verifier; the binding it held is not handed out");
      return sendJson(res, 400, { error: "the code_verifier does not match the code_challenge: bind again" });
    }
    return sendJson(res, 200, entry.response);
  };

  /**
   * POST /cli-bind/headless: a bind for CI, with the person's bearer token instead of a browser.
   * The token is checked as the sign-in checks it (TokenReview), the choice as the page checks it.
   */
  const headlessBind = async (req: IncomingMessage, res: ServerResponse) => {
    const header = req.headers.authorization ?? "";
    const token = /^Bearer (\S+)$/.exec(header)?.[1];
    if (token === undefined) {
      req.resume();
      return sendJson(
        res,
        401,
        { error: "send the bearer token of the person binding: Authorization: Bearer TOKEN" },
        { "www-authenticate": "Bearer" },
      );
    }
    if (!tokenSignIn) {
      req.resume();
      return sendJson(res, 403, { error: "this page does not sign in with bearer tokens" });
    }
    let signIn: SignIn;
    try {
      signIn = await gatedSignIn(() => reviewToken(options.control, token));
    } catch (err) {
      req.resume();
      if (err instanceof SignInBusy) return sendJson(res, 503, { error: err.message }, { "retry-after": "5" });
      if (!(err instanceof SignInError)) throw err;
      log.info({ reason: err.message }, "headless bind refused");
      return sendJson(res, 401, { error: err.message });
    }
    const form = await readForm(req);
    const user = signIn.user.username;
    const clusterId = form.get("cluster-id") ?? "";
    if (!/^[A-Za-z0-9]{1,63}$/.test(clusterId)) {
      return sendJson(res, 400, { error: "cluster-id: must be the app cluster's id (letters and digits, at most 63)" });
    }
    const dryRun = form.get("dry-run") === "true";
    const inFlight = bindsInFlight.get(user) ?? 0;
    if (inFlight >= maxBindsPerUser) {
      return sendJson(
        res,
        429,
        { error: `${inFlight} binds of yours are in progress (at most ${maxBindsPerUser})` },
        { "retry-after": "10" },
      );
    }
    bindsInFlight.set(user, inFlight + 1);
    let done: CliBindDone;
    try {
      done = await finishCliBind({
        control: options.control,
        person: options.control.impersonating(signIn.user),
        identity: user,
        pending: { clusterId, ...(dryRun ? { dryRun: true } : {}) },
        choice: acceptedChoice(
          (form.get("namespace") ?? "").trim(),
          form.getAll("export"),
          form.getAll("accept-claims"),
        ),
        ...(options.externalAddress?.server ? { server: options.externalAddress.server } : {}),
        ...(options.externalAddress?.certificateAuthorityData
          ? { certificateAuthorityData: options.externalAddress.certificateAuthorityData }
          : {}),
      });
    } catch (err) {
      const status =
        err instanceof CliBindRefused ? err.status : err instanceof ExplainedError && err.code === 403 ? 403 : 400;
      log.info({ user, reason: message(err) }, "headless bind refused");
      return sendJson(res, status, { error: message(err) });
    } finally {
      const left = (bindsInFlight.get(user) ?? 1) - 1;
      if (left > 0) bindsInFlight.set(user, left);
      else bindsInFlight.delete(user);
    }
    log.info(
      {
        user,
        clusterId,
        namespace: done.namespace,
        api: done.api,
        claims: done.accepted,
        ...(dryRun ? { dryRun } : {}),
      },
      dryRun ? "answered a headless dry run" : "bound an app cluster headless",
    );
    return sendJson(res, 200, bindingResponse({ client: "klutch", sessionId: "headless" }, done.answer));
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? "/", "http://web.invalid");
    const path = url.pathname;
    const cookies = readCookies(req);

    if (req.method === "GET" && path === "/static/app.css") {
      res
        .writeHead(200, { "content-type": "text/css; charset=utf-8", "cache-control": "max-age=3600" })
        .end(styleSheet);
      return;
    }
    if (req.method === "GET" && path === "/static/app.js") {
      res
        .writeHead(200, { "content-type": "text/javascript; charset=utf-8", "cache-control": "max-age=3600" })
        .end(script);
      return;
    }
    if (path === "/favicon.ico") {
      res.writeHead(204).end();
      return;
    }
    const discoveryFor = Object.hasOwn(discoveryPaths, path) ? discoveryPaths[path] : undefined;
    if (req.method === "GET" && discoveryFor !== undefined) {
      res
        .writeHead(200, { "content-type": "application/json" })
        .end(JSON.stringify(bindingProvider(pageUrl, discoveryFor)));
      return;
    }
    if (req.method === "GET" && path === authorizePath) {
      let pending: PendingBind;
      try {
        pending = { ...readAuthorize(url.searchParams, Date.now()), id: randomToken() };
      } catch (err) {
        if (!(err instanceof AuthorizeError)) throw err;
        log.info({ reason: err.message }, "kubectl bind authorize refused");
        return send(res, 400, errorPage({ title: "Refused", message: err.message }));
      }
      // Lax: the person arrives from a terminal's link, a navigation from no site of ours
      return redirect(res, cliBindPath, { "set-cookie": pendingBindCookie(pending) });
    }
    if (req.method === "POST" && path === cliBindTokenPath) return tradeCode(req, res);
    if (req.method === "POST" && path === headlessBindPath) return headlessBind(req, res);
    const lookup = await sessions.get(cookies[sessionCookie]);
    // a session whose token could not be checked for too long may still sign out, or sign in anew
    const logout = req.method === "POST" && path === "/logout";
    if (lookup.state === "unchecked" && !logout && path !== "/login" && !path.startsWith("/oidc/")) {
      const user = lookup.session.user.username;
      return send(
        res,
        503,
        errorPage({
          title: "Try again",
          message:
            "The control plane could not check your token again for a while, so the page does not act for you now. Try again in a moment.",
          user,
          csrf: lookup.session.csrf,
        }),
        { "retry-after": "10" },
      );
    }
    const session = lookup.state === "live" || (lookup.state === "unchecked" && logout) ? lookup.session : undefined;
    const clearSession = cookie(sessionCookie, "", { secure, maxAgeSeconds: 0 });
    if (oidc !== undefined && req.method === "GET" && path === "/oidc/login") {
      if (session) return redirect(res, "/");
      return beginOidc(oidc, res, cookies[flowCookie]);
    }
    if (oidc !== undefined && req.method === "GET" && path === oidcCallbackPath) {
      return finishOidc(oidc, res, url.searchParams, cookies[flowCookie], cookies[cliBindCookie]);
    }
    if (path === "/login") {
      if (req.method === "GET") {
        if (session) return redirect(res, "/");
        // kept when present: several tabs (or the favicon's redirect) must not void each other's form
        const token = cookies[loginCookie] || randomToken();
        // why the session ended: told by this request's own lookup, or by the redirect here
        const ended = lookup.state === "none" && lookup.ended ? lookup.ended : url.searchParams.get("ended");
        return send(
          res,
          200,
          signInPage({ csrf: token, ...(isEndReason(ended) ? { notice: endedNotices[ended] } : {}) }),
          {
            "set-cookie": cookie(loginCookie, token, { secure }),
          },
        );
      }
      if (req.method === "POST") {
        const form = await readForm(req);
        const refused = checkPost(req, form, cookies[loginCookie]);
        if (refused) return send(res, 403, errorPage({ title: "Refused", message: refused }));
        if (!tokenSignIn) return refuseSignIn(res, 403, "this page does not sign in with bearer tokens");
        try {
          const signIn = await gatedSignIn(() => reviewToken(options.control, form.get("token") ?? ""));
          const next = pendingBind(cookies[cliBindCookie]) ? cliBindPath : "/";
          return redirect(res, next, { "set-cookie": startSession(signIn, "token") });
        } catch (err) {
          if (err instanceof SignInBusy) return refuseSignIn(res, 503, err.message);
          if (!(err instanceof SignInError)) throw err;
          log.info({ reason: err.message }, "sign-in refused");
          return refuseSignIn(res, 401, err.message);
        }
      }
    }
    if (session === undefined) {
      if (req.method === "GET") {
        // a session that just ended: say why on the sign-in page, and drop its cookie
        if (lookup.state === "none" && lookup.ended !== undefined) {
          return redirect(res, `/login?ended=${lookup.ended}`, { "set-cookie": clearSession });
        }
        return redirect(res, "/login");
      }
      // a form without a live session: the CSRF check cannot pass, say so before anything else
      const form = await readForm(req);
      const refused = checkPost(req, form, undefined);
      return send(res, 403, errorPage({ title: "Refused", message: refused ?? "sign in first" }));
    }

    const namespace = url.searchParams.get("namespace") || options.defaultNamespace;
    if (req.method === "GET" && path === "/") {
      return send(res, 200, await dashboard(session, namespace, { name: "", namespace, exports: [], claims: [] }));
    }
    if (path === cliBindPath && (req.method === "GET" || req.method === "POST")) {
      return cliBind(req, res, session, namespace, cookies[cliBindCookie]);
    }
    const clusterPath = /^\/clusters\/([^/]+)$/.exec(path);
    if (req.method === "GET" && clusterPath) {
      const ns = decodeURIComponent(clusterPath[1] ?? "");
      const page = { user: session.user.username, csrf: session.csrf };
      let pull: PullBindingView | undefined;
      try {
        namespaceName(ns, "namespace");
        pull = await readPullBinding(session.client, ns);
      } catch (err) {
        const why = explain(err, `read the ClusterBinding of ${ns}`, options.control.server, ns);
        return send(res, why.code === 403 ? 403 : 400, errorPage({ title: "Refused", message: why.message, ...page }));
      }
      if (pull === undefined) {
        return send(
          res,
          404,
          errorPage({ title: "Not found", message: `no pull binding (ClusterBinding) in namespace ${ns}`, ...page }),
        );
      }
      return send(res, 200, pullBindingPage({ ...page, pull, now: Date.now() }));
    }
    const bindingPath = /^\/bindings\/([^/]+)\/([^/]+)(\/unbind|\/status)?$/.exec(path);
    if (bindingPath && (req.method === "GET" || (req.method === "POST" && bindingPath[3] === "/unbind"))) {
      const [ns, name] = [decodeURIComponent(bindingPath[1] ?? ""), decodeURIComponent(bindingPath[2] ?? "")];
      const toUnbind = bindingPath[3] === "/unbind";
      const statusOnly = bindingPath[3] === "/status";
      const form = req.method === "POST" ? await readForm(req) : undefined;
      if (form !== undefined) {
        const refused = checkPost(req, form, session.csrf);
        if (refused) return refuseForm(res, session, path, refused);
      }
      // klutch-bind's kind unless the link names the older one (bind.klutch.dev)
      const group = url.searchParams.get("group") ?? undefined;
      let binding: KubeObject | undefined;
      try {
        [binding] = await findBindings(session.client, name, ns, group);
      } catch (err) {
        const why = explain(err, `read AppClusterBinding ${name}`, options.control.server, ns);
        return send(
          res,
          403,
          errorPage({ title: "Refused", message: why.message, user: session.user.username, csrf: session.csrf }),
        );
      }
      if (binding === undefined) {
        // the page's script loads the whole page again, which says what became of it
        if (statusOnly) return sendJson(res, 404, { gone: true });
        // the page an unbind goes to: the binding gone is what it waited for
        if (!toUnbind && url.searchParams.get("unbinding") === "1") {
          return send(res, 200, unboundPage({ user: session.user.username, csrf: session.csrf, namespace: ns, name }));
        }
        return send(
          res,
          404,
          errorPage({
            title: "Not found",
            message: `no AppClusterBinding ${name}${group ? ` of ${group}` : ""} in namespace ${ns}`,
            user: session.user.username,
            csrf: session.csrf,
          }),
        );
      }
      const view = bindingView(binding);
      if (statusOnly) return sendJson(res, 200, bindingStatus({ binding: view, conditions: conditionsOf(binding) }));
      const page = { user: session.user.username, csrf: session.csrf, binding: view };
      if (form !== undefined) {
        try {
          return redirect(res, await unbind(session, binding, form));
        } catch (err) {
          const refusedByRbac = err instanceof ExplainedError && err.code === 403;
          log.info({ user: session.user.username, binding: `${ns}/${name}`, reason: message(err) }, "unbind refused");
          return send(res, refusedByRbac ? 403 : 400, unbindPage({ ...page, error: message(err) }));
        }
      }
      if (toUnbind) return send(res, 200, unbindPage(page));
      const contents = await readBindingContents(
        session.client,
        binding,
        preferredVersions.for(session.user, session.client),
      );
      return send(res, 200, bindingPage({ ...page, conditions: conditionsOf(binding), contents }));
    }
    if (req.method === "POST" && (path === "/bind" || path === "/logout")) {
      const form = await readForm(req);
      const refused = checkPost(req, form, session.csrf);
      if (refused) return refuseForm(res, session, path, refused);
      if (path === "/logout") {
        sessions.end(session.id);
        return redirect(res, "/login", { "set-cookie": clearSession });
      }
      const user = session.user.username;
      const inFlight = bindsInFlight.get(user) ?? 0;
      if (inFlight >= maxBindsPerUser) {
        log.warn({ user, inFlight }, "bind refused: too many of the user's binds in flight");
        return send(
          res,
          429,
          errorPage({
            title: "Too many binds at once",
            message: `You have ${inFlight} binds in progress already (at most ${maxBindsPerUser} at once). Wait until they finish, then bind again.`,
            user,
            csrf: session.csrf,
          }),
          { "retry-after": "10" },
        );
      }
      bindsInFlight.set(user, inFlight + 1);
      try {
        return redirect(res, await bind(session, form));
      } catch (err) {
        const refusedByRbac = err instanceof ExplainedError && err.code === 403;
        log.info({ user: session.user.username, reason: message(err) }, "bind refused");
        // the form comes back as it was, but for the kubeconfig: it is never sent back to the browser
        const again: BindForm = {
          name: form.get("name") ?? "",
          namespace: form.get("namespace") ?? namespace,
          exports: form.getAll("export"),
          claims: form.getAll("claim"),
          error: message(err),
        };
        return send(res, refusedByRbac ? 403 : 400, await dashboard(session, again.namespace || namespace, again));
      } finally {
        const left = (bindsInFlight.get(user) ?? 1) - 1;
        if (left > 0) bindsInFlight.set(user, left);
        else bindsInFlight.delete(user);
      }
    }
    send(
      res,
      404,
      errorPage({ title: "Not found", message: `nothing at ${path}`, user: session.user.username, csrf: session.csrf }),
    );
  };

  const listener = (req: IncomingMessage, res: ServerResponse) => {
    res.setHeader("content-security-policy", pageSecurityPolicy());
    res.setHeader("x-content-type-options", "nosniff");
    res.setHeader("x-frame-options", "DENY");
    // not no-referrer: with it Chromium sends "Origin: null" on our own form posts
    res.setHeader("referrer-policy", "same-origin");
    res.setHeader("cache-control", "no-store");
    if (secure) res.setHeader("strict-transport-security", "max-age=31536000");
    handle(req, res).catch((err: unknown) => {
      if (err instanceof RequestError) {
        if (!res.headersSent) send(res, err.status, errorPage({ title: "Bad request", message: err.message }));
        return;
      }
      log.error({ err, path: req.url }, "web request failed");
      if (!res.headersSent) send(res, 500, errorPage({ title: "Error", message: `internal error: ${message(err)}` }));
      else res.destroy();
    });
  };
  const server: Server = secure
    ? createHttpsServer({ cert: options.tls?.cert, key: options.tls?.key }, listener)
    : createHttpServer(listener);
  server.headersTimeout = 20_000;
  server.requestTimeout = 60_000;
  server.maxConnections = options.maxConnections ?? 512;

  const boundPort = await listen(server, options.address);
  const host = options.address.slice(0, options.address.lastIndexOf(":")).replace(/^\[(.*)\]$/, "$1");
  const shownHost = host && host !== "0.0.0.0" && host !== "::" ? host : "localhost";
  pageUrl = `${secure ? "https" : "http"}://${shownHost.includes(":") ? `[${shownHost}]` : shownHost}:${boundPort}`;
  log.info(
    {
      url: pageUrl,
      tls: secure,
      ...(oidc ? { oidcIssuer: oidc.issuer, oidcRedirect: oidc.redirectUri(pageUrl) } : {}),
    },
    "web page serving",
  );
  return {
    url: pageUrl,
    stop: async () => {
      sessions.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      if (options.closeControl) options.control.close();
    },
    sessions: () => sessions.list(),
    signInsChecked: () => signInsInFlight,
  };
}
