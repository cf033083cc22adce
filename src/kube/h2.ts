// HTTP/2 to one API server, as client-go speaks it: every request and watch of a client is a stream
// on one TLS connection, a second one opened only when the server's stream limit is reached
// (kube-apiserver: 100 per connection). Measured (bench/sync, 10,000 objects, 20 bindings): over
// HTTP/1.1 the sync held 649 TLS connections after a cold start (one per watch, a kept pool for
// requests), about 105 KiB of resident memory each; over HTTP/2, 22. A GET costs the client about
// as much CPU either way (0.26-0.30 ms against 0.35 ms).
// Why hand-written: measured (bench/kube-client.ts, one run on 2 cores), 200 concurrent GETs opened
// 1 TLS connection here, 200 with @kubernetes/client-node, 2 with undici (allowH2); client CPU per
// GET 0.90 ms, 6.05 ms and 0.76 ms. undici is on a par with this file on both (issue 25), but
// 8.13.1 cannot replace it (tried 2026-12-07): it folds a request's repeated header fields into one
// ("a, b"), on HTTP/2 and HTTP/1.1 alike, and kube-apiserver takes one group per Impersonate-Group
// field, never splitting at commas, so a user impersonated with groups a and b became a member of
// one group "a, b" (test/integration/kube-client.test.ts, "several groups"). It also writes the
// first request of a new connection before the server's SETTINGS, and keeps a connection that
// never sends them until a PING goes unanswered; here nothing is sent before them, and such a
// connection is given up at the request's deadline.

import type { IncomingHttpHeaders } from "node:http";
import * as http2 from "node:http2";
import { isIP, type LookupFunction } from "node:net";
import * as tls from "node:tls";
import { untilAborted } from "./abort.ts";

/** What a request's answer is read from: an HTTP/1.1 response or an HTTP/2 stream (H2Answer). */
export interface AnswerStream {
  readonly statusCode?: number | undefined;
  readonly headers: IncomingHttpHeaders;
  /** true once the whole body arrived */
  readonly complete: boolean;
  destroy(err?: Error): void;
  on(event: "data", listener: (chunk: Buffer) => void): this;
  on(event: "end" | "close", listener: () => void): this;
  on(event: "error", listener: (err: Error) => void): this;
}

export type TlsTarget = {
  secureContext: tls.SecureContext;
  rejectUnauthorized?: boolean;
  servername?: string;
  /** how the server's host name is looked up (lookup.ts); dns.lookup by default */
  lookup?: LookupFunction;
};

/**
 * No server push (an API server never pushes; a hostile one gets no streams we did not ask for);
 * the answers' sizes are bounded where they are read (answers.ts), the buffered bytes per
 * connection by Node (maxSessionMemory, 10 MB).
 */
const sessionOptions: http2.ClientSessionOptions = { settings: { enablePush: false } };

/** streams per connection at most, even when a server allows more */
const maxStreamsPerSession = 100;
/**
 * A connection without streams this long is closed (opened again when needed). One with streams
 * (watches wait quietly for minutes) is sent a PING as often, and closed, failing its streams, when
 * no answer comes within pingTimeoutMs: a peer gone without a word (a dead node, a dropped route)
 * would otherwise hold its watches until their own deadlines, minutes later. client-go pings a
 * connection after 30 s without a frame and gives it 15 s; Node tells of no frame, so we ping
 * every 30 s (a PING is 17 bytes each way).
 */
const idleSessionMs = 30_000;
const defaultPingTimeoutMs = 15_000;
/** a connection whose handshake and first SETTINGS take longer is given up */
const defaultConnectTimeoutMs = 30_000;

/**
 * Opens a TLS connection offering h2 and http/1.1; resolves with it when the server chose h2, or
 * undefined (the connection closed) when it speaks HTTP/1.1 only.
 */
export function negotiateH2(origin: URL, target: TlsTarget, timeoutMs: number): Promise<tls.TLSSocket | undefined> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: origin.hostname.replace(/^\[|\]$/g, ""),
      port: Number(origin.port || 443),
      ...tlsOptions(origin, target),
      ALPNProtocols: ["h2", "http/1.1"],
    });
    // a server that takes the connection and never finishes the handshake must not hold us
    const timer = setTimeout(
      () => socket.destroy(new Error(`no TLS handshake with ${origin.host} within ${timeoutMs} ms`)),
      timeoutMs,
    );
    timer.unref();
    socket.once("close", () => {
      clearTimeout(timer);
      reject(new Error(`the connection to ${origin.host} closed during the TLS handshake`));
    });
    socket.once("secureConnect", () => {
      clearTimeout(timer);
      socket.removeListener("error", reject);
      if (socket.alpnProtocol === "h2") resolve(socket);
      else {
        socket.destroy();
        resolve(undefined);
      }
    });
    socket.once("error", reject);
  });
}

function tlsOptions(origin: URL, target: TlsTarget): tls.ConnectionOptions {
  const host = origin.hostname.replace(/^\[|\]$/g, "");
  const servername = target.servername ?? (isIP(host) === 0 ? host : undefined);
  return {
    secureContext: target.secureContext,
    ...(target.rejectUnauthorized === undefined ? {} : { rejectUnauthorized: target.rejectUnauthorized }),
    ...(servername === undefined ? {} : { servername }),
    ...(target.lookup === undefined ? {} : { lookup: target.lookup }),
  };
}

/**
 * streams: made and reserved; settled once the server's SETTINGS (its stream limit) arrived; ready
 * resolves then, or when it closes before; failure: why it ended, when it failed
 */
type Session = {
  session: http2.ClientHttp2Session;
  streams: number;
  settled: boolean;
  ready: Promise<void>;
  failure?: Error;
};

/** The HTTP/2 connections of one client (and its views) to one API server. */
export class H2Sessions {
  readonly #origin: URL;
  readonly #target: TlsTarget;
  readonly #sessions: Session[] = [];
  readonly #idleMs: number;
  readonly #connectTimeoutMs: number;
  readonly #pingTimeoutMs: number;
  #opening: Promise<Session> | undefined;
  #closed = false;

  /** first: a connection negotiateH2 made, used for the first session */
  constructor(
    origin: URL,
    target: TlsTarget,
    first?: tls.TLSSocket,
    options: { idleMs?: number; connectTimeoutMs?: number; pingTimeoutMs?: number } = {},
  ) {
    this.#origin = origin;
    this.#target = target;
    this.#idleMs = options.idleMs ?? idleSessionMs;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? defaultConnectTimeoutMs;
    this.#pingTimeoutMs = options.pingTimeoutMs ?? defaultPingTimeoutMs;
    if (first !== undefined) this.#sessions.push(this.#adopt(first));
  }

  /** connections open now (for tests and metrics) */
  get sessions(): number {
    return this.#sessions.length;
  }

  /**
   * A new stream for headers on a connection with room for it. beforeSend is called once the
   * connection is ready, right before the stream is made (and nothing sent): an Error it returns
   * rejects the request unsent. waitSignal ends the wait for room (rejecting with its reason);
   * signal ends the stream.
   */
  async request(
    headers: http2.OutgoingHttpHeaders,
    options: { endStream: boolean; signal?: AbortSignal; waitSignal?: AbortSignal },
    beforeSend: () => Error | undefined,
  ): Promise<http2.ClientHttp2Stream> {
    if (this.#closed) throw new Error("connection closed");
    const entry = await this.#withRoom(options.waitSignal ?? options.signal); // its stream counted already: no one else takes that room
    let stream: http2.ClientHttp2Stream;
    try {
      const refused = beforeSend();
      if (refused !== undefined) throw refused;
      stream = entry.session.request(headers, {
        endStream: options.endStream,
        ...(options.signal ? { signal: options.signal } : {}),
      });
    } catch (err) {
      release(entry);
      throw err;
    }
    stream.once("close", () => release(entry));
    return stream;
  }

  close(): void {
    this.#closed = true;
    for (const s of this.#sessions.splice(0)) s.session.destroy();
  }

  async #withRoom(signal: AbortSignal | undefined): Promise<Session> {
    for (;;) {
      signal?.throwIfAborted();
      const usable = this.#sessions.filter((s) => !s.session.destroyed && !s.session.closed);
      const open = usable.find((s) => s.settled && s.streams < limitOf(s));
      if (open !== undefined) {
        if (open.streams++ === 0) open.session.ref();
        return open;
      }
      // its limit unknown yet: wait for it rather than open another
      const waitFor = usable.find((s) => !s.settled) ?? (await this.#opened(signal));
      await untilAborted(waitFor.ready, signal);
      // A connection that ends before it is ready fails the requests that waited for it: opening
      // another at once would have a server that completes the TLS handshake and then closes (a
      // front whose backend is gone) cost a handshake per turn of this loop until the deadline.
      if (!waitFor.settled || waitFor.session.destroyed || waitFor.session.closed) {
        const why = waitFor.failure === undefined ? "" : ` (${waitFor.failure.message})`;
        throw new Error(`the HTTP/2 connection to ${this.#origin.host} closed before it was ready${why}`);
      }
    }
  }

  /** a new connection, or the one being opened already; resolves once it is connected */
  async #opened(signal: AbortSignal | undefined): Promise<Session> {
    if (this.#opening === undefined) {
      const opening = this.#open();
      this.#opening = opening;
      opening.then(
        () => {
          if (this.#opening === opening) this.#opening = undefined;
        },
        () => {
          if (this.#opening === opening) this.#opening = undefined;
        },
      );
    }
    const opened = await untilAborted(this.#opening, signal);
    if (this.#closed) throw new Error("connection closed");
    return opened;
  }

  #open(): Promise<Session> {
    return new Promise((resolve, reject) => {
      const session = http2.connect(this.#origin, { ...tlsOptions(this.#origin, this.#target), ...sessionOptions });
      const entry = this.#watch(session);
      session.once("connect", () => {
        session.removeListener("error", reject);
        // in the pool even when every request that waited for it gave up meanwhile (idle, it closes)
        if (this.#closed) session.destroy();
        else this.#sessions.push(entry);
        resolve(entry);
      });
      session.once("error", reject);
      session.once("close", () =>
        reject(new Error(`the connection to ${this.#origin.host} closed before it was ready`)),
      );
    });
  }

  #adopt(socket: tls.TLSSocket): Session {
    return this.#watch(http2.connect(this.#origin, { createConnection: () => socket, ...sessionOptions }));
  }

  /** a session that leaves the pool when it ends, goes away or fails */
  #watch(session: http2.ClientHttp2Session): Session {
    let settle = () => {};
    const ready = new Promise<void>((resolve) => {
      settle = resolve;
    });
    const entry: Session = { session, streams: 0, settled: false, ready };
    // held while it connects and until its limit is known; idle after that, it does not keep the process alive
    session.once("remoteSettings", () => {
      entry.settled = true;
      settle();
      if (entry.streams === 0) session.unref();
    });
    session.once("close", settle); // dropped then
    // a server that takes the connection and never gets as far as its SETTINGS must not hold us
    const timer = setTimeout(() => {
      if (!entry.settled) {
        session.destroy(new Error(`no HTTP/2 settings from ${this.#origin.host} within ${this.#connectTimeoutMs} ms`));
      }
    }, this.#connectTimeoutMs);
    timer.unref();
    session.once("remoteSettings", () => clearTimeout(timer));
    session.once("close", () => clearTimeout(timer));
    const drop = () => {
      const at = this.#sessions.indexOf(entry);
      if (at >= 0) this.#sessions.splice(at, 1);
    };
    session.on("error", drop); // its streams fail with it; the next request opens another
    session.once("error", (err: Error) => {
      entry.failure = err;
    });
    session.on("goaway", drop);
    session.on("close", drop);
    // Idle means settled and without streams: one still connecting has requests waiting for it (the
    // connect timeout bounds it), one with streams is busy. Node fires a session's timeout once and
    // arms it again only when asked: a session found busy asks, or it would never be closed as idle.
    const idle = () => {
      if (session.closed || session.destroyed) return;
      if (entry.streams === 0 && entry.settled) {
        drop();
        session.close();
      } else {
        session.setTimeout(this.#idleMs, idle);
      }
    };
    session.setTimeout(this.#idleMs, idle);
    let pinging = false;
    const health = setInterval(() => {
      if (pinging || entry.streams === 0 || !entry.settled || session.destroyed) return;
      pinging = true;
      this.#ping(session, () => {
        pinging = false;
      });
    }, this.#idleMs);
    health.unref();
    session.once("close", () => clearInterval(health));
    return entry;
  }

  /** a PING; the session destroyed when its answer does not come in time. done when settled either way */
  #ping(session: http2.ClientHttp2Session, done: () => void): void {
    const timer = setTimeout(() => {
      done();
      session.destroy(new Error(`no answer from ${this.#origin.host} to a PING within ${this.#pingTimeoutMs} ms`));
    }, this.#pingTimeoutMs);
    timer.unref();
    const settled = () => {
      clearTimeout(timer);
      done();
    };
    try {
      if (!session.ping(settled)) settled();
    } catch {
      settled(); // the session is closing already
    }
  }
}

function release(s: Session): void {
  s.streams--;
  if (s.streams === 0 && !s.session.destroyed) s.session.unref();
}

function limitOf(s: Session): number {
  const remote = s.session.remoteSettings.maxConcurrentStreams;
  return Math.min(maxStreamsPerSession, remote === undefined || remote <= 0 ? maxStreamsPerSession : remote);
}

/** An HTTP/2 stream read as an answer: its status and headers from the response, complete at its end. */
export class H2Answer implements AnswerStream {
  readonly statusCode: number | undefined;
  readonly headers: IncomingHttpHeaders;
  #complete = false;
  readonly #stream: http2.ClientHttp2Stream;

  constructor(stream: http2.ClientHttp2Stream, headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader) {
    this.#stream = stream;
    const status = headers[":status"];
    this.statusCode = typeof status === "number" ? status : undefined;
    this.headers = headers;
    // first listener: complete before anyone else hears of the end. A connection that ends under
    // the stream ends it too (rstCode NGHTTP2_CANCEL): that answer was cut short.
    stream.once("end", () => {
      this.#complete = stream.rstCode === http2.constants.NGHTTP2_NO_ERROR;
    });
  }

  get complete(): boolean {
    return this.#complete;
  }

  destroy(err?: Error): void {
    this.#stream.destroy(err);
  }

  on(event: "data", listener: (chunk: Buffer) => void): this;
  on(event: "end" | "close", listener: () => void): this;
  on(event: "error", listener: (err: Error) => void): this;
  on(event: string, listener: ((chunk: Buffer) => void) | ((err: Error) => void) | (() => void)): this {
    // a cut answer's end is not passed on: its close comes, incomplete
    const forward = event === "end" ? () => this.#complete && (listener as () => void)() : listener;
    this.#stream.on(event, forward as (...args: unknown[]) => void);
    return this;
  }
}
