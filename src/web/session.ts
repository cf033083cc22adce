// Signed-in users, kept in this process only: the cookie holds a random id, never the token. The
// token stays in this process's memory, apart from the session objects, to be re-checked.
//
// A session ends: on sign-out; after idleMs without a request; at its end, the earlier of its
// token's expiry and maxMs after sign-in; or when a re-check finds the token refused (revoked,
// expired) or owned by someone else. TokenReview is asked again every reviewIntervalMs, for every
// session in the background and before serving a request whose last check is older.
//
// A re-check that cannot be made (network, timeout, 5xx, a TokenReview the page may not create)
// signs no one out: the session is served for one more interval on its last successful check,
// retried meanwhile; after that its requests are refused (503) until a re-check succeeds. Nothing
// ever moves a session's end, so an outage cannot keep a session alive past it.
import { randomBytes, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Impersonation, KubeClient } from "../kube/client.ts";
import { type Identity, sameIdentity } from "./auth.ts";

export type Session = {
  id: string;
  /** as TokenReview said at sign-in */
  identity: Identity;
  /** whom the client impersonates: the identity without system:authenticated */
  user: Impersonation;
  /** the control plane as this user (impersonation) */
  client: KubeClient;
  /** the token every form of this session must carry */
  csrf: string;
  created: number;
  lastSeen: number;
  /** the latest the session lives: the token's expiry (JWT exp), or created + maxMs if earlier */
  ends: number;
  /** when TokenReview last accepted the token */
  reviewed: number;
  /** when the last re-check could not be made; undefined after a successful one */
  unchecked: number | undefined;
};

/** Why a session ended, for the sign-in page. */
export type EndReason = "expired" | "idle" | "revoked" | "changed";

export type SessionEvent =
  | { what: "ended"; user: string; reason: EndReason }
  | { what: "unchecked"; user: string; error: string };

export type SessionOptions = {
  idleMs: number;
  maxMs: number;
  reviewIntervalMs: number;
  /** TokenReview: the token's identity, undefined when refused; throws when it could not be asked */
  review: (token: string) => Promise<Identity | undefined>;
  /** told when a session ends on its own and when a re-check could not be made; never given a token */
  onEvent?: (event: SessionEvent) => void;
  now?: () => number;
};

/**
 * A session to serve ("live"); one that may not be served now because its token could not be
 * re-checked for too long ("unchecked"); or none, with why it ended when it just did.
 */
export type Lookup =
  | { state: "live"; session: Session }
  | { state: "unchecked"; session: Session }
  | { state: "none"; ended?: EndReason };

/** how long the sign-in page can still say why a session ended */
const endedMemoryMs = 10 * 60_000;
const endedMemoryEntries = 10_000;
/** the least wait between two re-checks that could not be made */
const retryMs = 10_000;

export function randomToken(): string {
  return randomBytes(32).toString("base64url");
}

/** Constant-time comparison, so a forged token cannot be guessed byte by byte. */
export function sameToken(a: string | undefined, b: string | undefined): boolean {
  if (!a || !b) return false;
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export function readCookies(req: IncomingMessage): Record<string, string> {
  const cookies: Record<string, string> = {};
  for (const part of (req.headers.cookie ?? "").split(";")) {
    const at = part.indexOf("=");
    if (at > 0) cookies[part.slice(0, at).trim()] = part.slice(at + 1).trim();
  }
  return cookies;
}

/**
 * sameSite Lax (default Strict) only for a cookie that must come back on a top-level navigation
 * from another site: the OpenID Connect callback.
 */
export type CookieOptions = { secure: boolean; maxAgeSeconds?: number; sameSite?: "Strict" | "Lax" };

export function cookie(name: string, value: string, options: CookieOptions): string {
  const parts = [`${name}=${value}`, "Path=/", "HttpOnly", `SameSite=${options.sameSite ?? "Strict"}`];
  if (options.secure) parts.push("Secure");
  if (options.maxAgeSeconds !== undefined) parts.push(`Max-Age=${options.maxAgeSeconds}`);
  return parts.join("; ");
}

export class SessionStore {
  readonly #sessions = new Map<string, Session>();
  /** kept apart from the sessions, so that logging a session can never print one */
  readonly #tokens = new Map<string, string>();
  readonly #pending = new Map<string, Promise<void>>();
  readonly #ended = new Map<string, { reason: EndReason; at: number }>();
  readonly #options: SessionOptions;
  readonly #now: () => number;
  readonly #sweeper: NodeJS.Timeout;

  constructor(options: SessionOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#sweeper = setInterval(() => this.#sweep(), Math.max(250, Math.min(options.reviewIntervalMs / 2, 30_000)));
    this.#sweeper.unref();
  }

  /** A new session for a token TokenReview has just accepted; expires is the token's own end, if any. */
  create(identity: Identity, user: Impersonation, client: KubeClient, token: string, expires?: number): Session {
    const now = this.#now();
    const session: Session = {
      id: randomToken(),
      identity,
      user,
      client,
      csrf: randomToken(),
      created: now,
      lastSeen: now,
      ends: Math.min(now + this.#options.maxMs, expires ?? Number.POSITIVE_INFINITY),
      reviewed: now,
      unchecked: undefined,
    };
    this.#sessions.set(session.id, session);
    this.#tokens.set(session.id, token);
    return session;
  }

  /** The cookie's Max-Age: the seconds left until the session's end. */
  maxAgeSeconds(session: Session): number {
    return Math.max(0, Math.ceil((session.ends - this.#now()) / 1000));
  }

  /** The session with this id, re-checked first when due; its idle clock restarts when it is live. */
  async get(id: string | undefined): Promise<Lookup> {
    if (!id) return { state: "none" };
    const session = this.#sessions.get(id);
    if (session === undefined) return this.#whyEnded(id);
    const over = this.#over(session, this.#now());
    if (over !== undefined) {
      this.#end(session, over);
      return this.#whyEnded(id);
    }
    if (this.#due(session, this.#now())) await this.#recheck(session);
    if (!this.#sessions.has(id)) return this.#whyEnded(id);
    const now = this.#now();
    if (now - session.reviewed >= 2 * this.#options.reviewIntervalMs) return { state: "unchecked", session };
    session.lastSeen = now;
    return { state: "live", session };
  }

  /** The sessions, for diagnostics and tests (their tokens are not in them). */
  list(): Session[] {
    return [...this.#sessions.values()];
  }

  /** Sign-out. */
  end(id: string): void {
    const session = this.#sessions.get(id);
    if (session !== undefined) this.#end(session);
  }

  close(): void {
    clearInterval(this.#sweeper);
    for (const session of [...this.#sessions.values()]) this.#end(session);
  }

  #end(session: Session, reason?: EndReason): void {
    if (this.#sessions.get(session.id) !== session) return;
    this.#sessions.delete(session.id);
    this.#tokens.delete(session.id);
    session.client.close();
    if (reason === undefined) return;
    if (this.#ended.size >= endedMemoryEntries) {
      const oldest = this.#ended.keys().next();
      if (!oldest.done) this.#ended.delete(oldest.value);
    }
    this.#ended.set(session.id, { reason, at: this.#now() });
    this.#options.onEvent?.({ what: "ended", user: session.user.username, reason });
  }

  /** Said once: the sign-in page names the reason, later visits just see the page. */
  #whyEnded(id: string): Lookup {
    const ended = this.#ended.get(id);
    if (ended === undefined) return { state: "none" };
    this.#ended.delete(id);
    return { state: "none", ended: ended.reason };
  }

  #over(session: Session, now: number): EndReason | undefined {
    if (now >= session.ends) return "expired";
    if (now - session.lastSeen > this.#options.idleMs) return "idle";
    return undefined;
  }

  #due(session: Session, now: number): boolean {
    if (now - session.reviewed < this.#options.reviewIntervalMs) return false;
    const wait = Math.min(retryMs, this.#options.reviewIntervalMs);
    return session.unchecked === undefined || now - session.unchecked >= wait;
  }

  /** One re-check per session at a time: concurrent requests wait for the same answer. */
  #recheck(session: Session): Promise<void> {
    let pending = this.#pending.get(session.id);
    if (pending === undefined) {
      pending = this.#ask(session).finally(() => this.#pending.delete(session.id));
      this.#pending.set(session.id, pending);
    }
    return pending;
  }

  async #ask(session: Session): Promise<void> {
    const token = this.#tokens.get(session.id);
    if (token === undefined) return;
    let identity: Identity | undefined;
    try {
      identity = await this.#options.review(token);
    } catch (err) {
      session.unchecked = this.#now();
      const error = err instanceof Error ? err.message : String(err);
      this.#options.onEvent?.({ what: "unchecked", user: session.user.username, error });
      return;
    }
    if (identity === undefined) this.#end(session, "revoked");
    else if (!sameIdentity(identity, session.identity)) this.#end(session, "changed");
    else {
      session.reviewed = this.#now();
      session.unchecked = undefined;
    }
  }

  #sweep(): void {
    const now = this.#now();
    for (const session of [...this.#sessions.values()]) {
      const over = this.#over(session, now);
      if (over !== undefined) this.#end(session, over);
      else if (this.#due(session, now)) void this.#recheck(session);
    }
    for (const [id, ended] of this.#ended) if (now - ended.at > endedMemoryMs) this.#ended.delete(id);
  }
}
