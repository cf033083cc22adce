// Signed-in users, kept in this process only: the cookie holds a random id, never the token. A
// session ends after idleMs without a request, after maxMs in all, or on sign-out.
import { randomBytes, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Impersonation, KubeClient } from "../kube/client.ts";

export type Session = {
  id: string;
  user: Impersonation;
  /** the control plane as this user (impersonation) */
  client: KubeClient;
  /** the token every form of this session must carry */
  csrf: string;
  created: number;
  lastSeen: number;
};

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

export type CookieOptions = { secure: boolean; maxAgeSeconds?: number };

export function cookie(name: string, value: string, options: CookieOptions): string {
  const parts = [`${name}=${value}`, "Path=/", "HttpOnly", "SameSite=Strict"];
  if (options.secure) parts.push("Secure");
  if (options.maxAgeSeconds !== undefined) parts.push(`Max-Age=${options.maxAgeSeconds}`);
  return parts.join("; ");
}

export class SessionStore {
  readonly #sessions = new Map<string, Session>();
  readonly #idleMs: number;
  readonly #maxMs: number;
  readonly #sweeper: NodeJS.Timeout;

  constructor(idleMs: number, maxMs: number) {
    this.#idleMs = idleMs;
    this.#maxMs = maxMs;
    this.#sweeper = setInterval(() => this.#sweep(), 60_000);
    this.#sweeper.unref();
  }

  get maxAgeSeconds(): number {
    return Math.floor(this.#maxMs / 1000);
  }

  create(user: Impersonation, client: KubeClient): Session {
    const now = Date.now();
    const session = { id: randomToken(), user, client, csrf: randomToken(), created: now, lastSeen: now };
    this.#sessions.set(session.id, session);
    return session;
  }

  /** The live session with this id, its idle clock restarted; undefined when unknown or expired. */
  get(id: string | undefined): Session | undefined {
    if (!id) return undefined;
    const session = this.#sessions.get(id);
    if (session === undefined) return undefined;
    const now = Date.now();
    if (now - session.lastSeen > this.#idleMs || now - session.created > this.#maxMs) {
      this.end(id);
      return undefined;
    }
    session.lastSeen = now;
    return session;
  }

  end(id: string): void {
    const session = this.#sessions.get(id);
    if (session === undefined) return;
    this.#sessions.delete(id);
    session.client.close();
  }

  close(): void {
    clearInterval(this.#sweeper);
    for (const id of [...this.#sessions.keys()]) this.end(id);
  }

  #sweep(): void {
    for (const id of [...this.#sessions.keys()]) this.get(id);
  }
}
