// What the client says when an answer is an error (KubeApiError) or not what the request expects
// (KubeDecodeError), and never more than a real Status says.
import * as http from "node:http";

/** metav1.StatusReason for answers without a Status body (e.g. "404 page not found" for an unknown group) */
const defaultReasons: Record<number, string> = {
  400: "BadRequest",
  401: "Unauthorized",
  403: "Forbidden",
  404: "NotFound",
  405: "MethodNotAllowed",
  406: "NotAcceptable",
  409: "Conflict",
  410: "Expired",
  413: "RequestEntityTooLarge",
  415: "UnsupportedMediaType",
  422: "Invalid",
  429: "TooManyRequests",
  500: "InternalError",
  503: "ServiceUnavailable",
  504: "Timeout",
};

/**
 * An answer of the API server with status >= 400 (or an ERROR event of a watch). Only a real
 * Status object's message is repeated: any other body (an HTML page of a proxy, say) may hold
 * anything, so the message says what it was, never what it said.
 */
export class KubeApiError extends Error {
  readonly code: number;
  readonly reason: string;
  /**
   * What the error keeps of the Status, when the answer was one: code, reason, message (cut) and
   * retry hint. Never the rest of the body: it may be megabytes, and pino logs every field.
   */
  readonly status: Status | undefined;

  constructor(method: string, path: string, code: number, body: unknown, contentType?: string) {
    const given = asStatus(body);
    const status = given === undefined ? undefined : keptOf(given);
    const reason = status?.reason || defaultReasons[code] || (http.STATUS_CODES[code] ?? "Unknown").replace(/\W/g, "");
    // a Status comes from a server we may not trust either: its message is kept short
    const detail = status !== undefined ? (status.message ?? "(no message)") : describeBody(body, contentType);
    super(`${method} ${path}: ${code} ${reason}: ${detail}`);
    this.name = "KubeApiError";
    this.code = code;
    this.reason = reason;
    this.status = status;
  }

  /** The server's retry hint (Status details.retryAfterSeconds), if it is a finite number of seconds > 0. */
  get retryAfterSeconds(): number | undefined {
    const seconds = this.status?.details?.retryAfterSeconds;
    return typeof seconds === "number" && Number.isFinite(seconds) && seconds > 0 ? seconds : undefined;
  }

  /** A 404 the API server itself answered with a Status: proof the object is not there. */
  get isNotFound(): boolean {
    return this.code === 404 && this.status?.code === 404 && this.status.reason === "NotFound";
  }
}

/**
 * An answer that is not the Kubernetes JSON the request expects (an HTML sign-in page with 200, a
 * list without items, an object of another kind, bytes that are not UTF-8 or JSON, an answer over
 * the size limit). Never an empty result: nothing may be concluded from it.
 */
export class KubeDecodeError extends Error {
  constructor(method: string, path: string, problem: string) {
    super(`${method} ${path}: ${problem}`);
    this.name = "KubeDecodeError";
  }
}

export type Status = {
  kind: "Status";
  code?: number;
  reason?: string;
  message?: string;
  details?: { retryAfterSeconds?: number };
};

export function asStatus(body: unknown): Status | undefined {
  if (!isRecord(body) || body.kind !== "Status") return undefined;
  const status = body as Status;
  return typeof status.message === "string" || status.message === undefined ? status : { ...status, message: "" };
}

/** A Status as small as what it says: bounded message, a reason that is a word, no other fields. */
function keptOf(status: Status): Status {
  const kept: Status = { kind: "Status" };
  if (typeof status.code === "number" && Number.isInteger(status.code)) kept.code = status.code;
  if (typeof status.reason === "string" && /^[A-Za-z]{1,64}$/.test(status.reason)) kept.reason = status.reason;
  if (typeof status.message === "string") kept.message = bounded(status.message);
  const seconds: unknown = isRecord(status.details) ? status.details.retryAfterSeconds : undefined;
  if (typeof seconds === "number") kept.details = { retryAfterSeconds: seconds };
  return kept;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** What an answer was, without what it said. */
export function describeBody(body: unknown, contentType: string | undefined): string {
  if (body === undefined) return "(no message)";
  const type = (contentType ?? "no content type").split(";")[0]?.trim();
  if (typeof body === "string")
    return `the answer was ${type}, ${Buffer.byteLength(body)} bytes, not a Kubernetes Status`;
  return `the answer was ${type}, not a Kubernetes Status`;
}

const maxMessage = 1000;

function bounded(message: string): string {
  return message.length <= maxMessage ? message : `${message.slice(0, maxMessage)}… (${message.length} characters)`;
}
