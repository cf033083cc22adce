// Renewing the app cluster token of a binding made with a service account (see account.ts):
// at a share of its lifetime (default 80 %), the sync asks the app cluster for a new token for the
// account (TokenRequest; the account may ask for itself only), writes it into the binding's
// kubeconfig Secret and swaps it into the running client, whose informers keep their watches:
// there is no gap in syncing. A token that expired (the sync was down longer than what was left of
// it) cannot renew itself: the binding says to bind again.
import type { Logger } from "pino";
import { refs } from "../api/resources.ts";
import { KubeApiError, type KubeClient, type KubeObject, resourcePath } from "../kube/client.ts";
import {
  type AppAccount,
  appAccessAnnotation,
  appAccessServiceAccount,
  defaultTokenSeconds,
  kubeconfigToken,
  minTokenSeconds,
  renewalTime,
  type TokenTimes,
  tokenAccount,
  tokenTimes,
  withToken,
} from "./account.ts";

/** A token of a service account, and when it expires. The token is never logged nor put in a message. */
export type IssuedToken = { token: string; expires: Date };

/** A new token for account, asked of the app cluster as whoever app is (the account itself, or an admin). */
export async function requestToken(app: KubeClient, account: AppAccount, seconds: number): Promise<IssuedToken> {
  // the account's names come from the token's claims: the checked builder refuses "..", "/" and "%"
  const path = resourcePath(refs.serviceAccounts, account.namespace, account.name, "token");
  const answer = await app.request<{ status?: { token?: unknown; expirationTimestamp?: unknown } }>("POST", path, {
    body: {
      apiVersion: "authentication.k8s.io/v1",
      kind: "TokenRequest",
      spec: { expirationSeconds: Math.round(seconds) },
    },
  });
  const token = answer.status?.token;
  const expires = new Date(String(answer.status?.expirationTimestamp ?? ""));
  if (typeof token !== "string" || token === "" || Number.isNaN(expires.getTime())) {
    throw new Error(`POST ${path}: the answer holds no token and expiry`);
  }
  return { token, expires };
}

/** What a binding's Secret says of its app access: a renewable service account token, or nothing (any other kubeconfig). */
export type AppAccess = { account: AppAccount; times: TokenTimes };

export function appAccessOf(secret: KubeObject, kubeconfigText: string): AppAccess | undefined {
  if (secret.metadata.annotations?.[appAccessAnnotation] !== appAccessServiceAccount) return undefined;
  const token = kubeconfigToken(kubeconfigText);
  if (token === undefined) return undefined;
  const account = tokenAccount(token);
  const times = tokenTimes(token);
  return account && times ? { account, times } : undefined;
}

export type RenewalOptions = {
  /** renew at this share of the token's lifetime (0 < f < 1) */
  fraction: number;
  /** the lifetime to ask for; default the current token's (within minTokenSeconds and maxDerivedSeconds) */
  seconds?: number;
  /** when this process last renewed the binding's token (ms since the epoch, local clock) */
  lastRenewal?: number;
  log: Logger;
};

/** A longer lifetime read off the current token is not asked for again: its times are the app cluster's word. */
export const maxDerivedSeconds = 366 * 86_400;
/**
 * Successful renewals are at least this far apart, or fraction of the lifetime asked for when that
 * is shorter (a 600 s token renewed at 1 % of it, as tests do): never sooner than 1 s.
 */
export const renewalFloorMs = 60_000;

export type RenewalOutcome =
  /** nothing to do until then (ms from now) */
  | { kind: "wait"; ms: number }
  /** renewed: the Secret as written (its resourceVersion is the client's from now on) and its kubeconfig text */
  | { kind: "renewed"; secret: KubeObject; text: string; access: AppAccess; ms: number }
  /** not renewed this time; try again in ms */
  | { kind: "failed"; message: string; ms: number }
  | { kind: "expired"; message: string };

/**
 * Renews the token of a binding's kubeconfig Secret when it is due; app is the client running on
 * the current token, and gets the new one in place.
 */
export async function renewIfDue(
  control: KubeClient,
  app: KubeClient,
  kubeconfig: { secret: KubeObject; key: string; text: string },
  access: AppAccess,
  options: RenewalOptions,
  now = Date.now(),
): Promise<RenewalOutcome> {
  const { account, times } = access;
  const who = `service account ${account.namespace}/${account.name}`;
  if (now >= times.expires) {
    return {
      kind: "expired",
      message: `the app cluster token of ${who} expired at ${new Date(times.expires).toISOString()} before the sync could renew it: bind again (klutch-bind bind) to issue a new one`,
    };
  }
  const asked = options.seconds ?? askedSeconds(times);
  const floor = floorMs(asked, options.fraction);
  const due = Math.max(renewalTime(times, options.fraction), (options.lastRenewal ?? -Infinity) + floor);
  if (now < due) return { kind: "wait", ms: due - now };
  const retry = Math.max(1000, Math.min(30_000, (times.expires - now) / 10));
  let issued: IssuedToken;
  let lifetimeMs: number;
  try {
    issued = await requestToken(app, account, asked);
    lifetimeMs = issuedLifetimeMs(issued.token, asked);
  } catch (err) {
    const message = `renewing the app cluster token of ${who} failed (it expires at ${new Date(times.expires).toISOString()}): ${err instanceof Error ? err.message : String(err)}`;
    options.log.warn({ account: `${account.namespace}/${account.name}`, retryMs: retry }, message);
    return { kind: "failed", message, ms: retry };
  }
  const { secret, key } = kubeconfig;
  const text = withToken(kubeconfig.text, issued.token);
  let written: KubeObject;
  try {
    written = await control.update(refs.secrets, {
      ...secret,
      data: {
        ...(secret.data as Record<string, string>),
        [key]: Buffer.from(text).toString("base64"),
      },
    });
  } catch (err) {
    // changed meanwhile (bound again, say): the next reconcile reads it afresh
    const conflict = err instanceof KubeApiError && err.code === 409;
    const message = `storing the renewed app cluster token of ${who} in secret ${secret.metadata.namespace}/${secret.metadata.name} failed: ${err instanceof Error ? err.message : String(err)}`;
    if (!conflict) options.log.warn({ retryMs: retry }, message);
    return { kind: "failed", message, ms: conflict ? 0 : retry };
  }
  app.setBearerToken(issued.token);
  // the token's own times are in the app cluster's clock and unverified: only its lifetime counts, from now
  const renewed = { issuedAt: now, expires: now + lifetimeMs };
  options.log.info(
    { account: `${account.namespace}/${account.name}`, expires: issued.expires.toISOString() },
    "renewed the app cluster token",
  );
  return {
    kind: "renewed",
    secret: written,
    text,
    access: { account, times: renewed },
    ms: Math.max(floor, renewalTime(renewed, options.fraction) - now),
  };
}

/** The lifetime to ask for when none is configured: the current token's, within what makes sense. */
function askedSeconds(times: TokenTimes): number {
  const seconds = Math.round((times.expires - times.issuedAt) / 1000);
  if (!Number.isFinite(seconds)) return defaultTokenSeconds;
  return Math.min(maxDerivedSeconds, Math.max(minTokenSeconds, seconds));
}

/**
 * How long a renewed token lives: what it says (exp - iat, a span the app cluster's clock cannot
 * skew), never longer than asked for, or what was asked for when it says nothing usable. Throws
 * when it says less than any TokenRequest may issue.
 */
function issuedLifetimeMs(token: string, askedSeconds: number): number {
  const times = tokenTimes(token);
  const says = times === undefined ? Number.NaN : times.expires - times.issuedAt;
  if (!Number.isFinite(says)) return askedSeconds * 1000;
  if (says < minTokenSeconds * 1000) {
    throw new Error(
      `the app cluster issued a token of ${Math.round(says / 1000)} s, less than any TokenRequest may (${minTokenSeconds} s); it is not used`,
    );
  }
  return Math.min(says, askedSeconds * 1000);
}

function floorMs(askedSeconds: number, fraction: number): number {
  return Math.max(1000, Math.min(renewalFloorMs, askedSeconds * 1000 * fraction));
}
