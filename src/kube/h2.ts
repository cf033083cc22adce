// HTTP/2 to one API server, as client-go speaks it: every request and watch of a client is a stream
// on one TLS connection, a second one opened only when the server's stream limit is reached
// (kube-apiserver: 100 per connection). Measured (bench/sync, 10,000 objects, 20 bindings): over
// HTTP/1.1 the sync held 649 TLS connections after a cold start (one per watch, a kept pool for
// requests), about 105 KiB of resident memory each; requests waited seconds for a free connection
// at saturation. A GET costs the client about as much CPU either way (0.26-0.30 ms against 0.35 ms).

import type { IncomingHttpHeaders } from "node:http";
import * as http2 from "node:http2";
import { isIP } from "node:net";
import * as tls from "node:tls";

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
};

/** streams per connection at most, even when a server allows more */
const maxStreamsPerSession = 100;
/** a connection without streams this long is closed (the first one opened again when needed) */
const idleSessionMs = 60_000;

/**
 * Opens a TLS connection offering h2 and http/1.1; resolves with it when the server chose h2, or
 * undefined (the connection closed) when it speaks HTTP/1.1 only.
 */
export function negotiateH2(origin: URL, target: TlsTarget): Promise<tls.TLSSocket | undefined> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: origin.hostname.replace(/^\[|\]$/g, ""),
      port: Number(origin.port || 443),
      ...tlsOptions(origin, target),
      ALPNProtocols: ["h2", "http/1.1"],
    });
    socket.once("secureConnect", () => {
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
  };
}

type Session = { session: http2.ClientHttp2Session; streams: number };

/** The HTTP/2 connections of one client (and its views) to one API server. */
export class H2Sessions {
  readonly #origin: URL;
  readonly #target: TlsTarget;
  readonly #sessions: Session[] = [];
  readonly #idleMs: number;
  #opening: Promise<Session> | undefined;
  #closed = false;

  /** first: a connection negotiateH2 made, used for the first session */
  constructor(origin: URL, target: TlsTarget, first?: tls.TLSSocket, options: { idleMs?: number } = {}) {
    this.#origin = origin;
    this.#target = target;
    this.#idleMs = options.idleMs ?? idleSessionMs;
    if (first !== undefined) this.#sessions.push(this.#adopt(first));
  }

  /** connections open now (for tests and metrics) */
  get sessions(): number {
    return this.#sessions.length;
  }

  /**
   * A new stream for headers on a connection with room for it. beforeSend is called once the
   * connection is ready, right before the stream is made (and nothing sent): an Error it returns
   * rejects the request unsent.
   */
  async request(
    headers: http2.OutgoingHttpHeaders,
    options: { endStream: boolean; signal?: AbortSignal },
    beforeSend: () => Error | undefined,
  ): Promise<http2.ClientHttp2Stream> {
    if (this.#closed) throw new Error("connection closed");
    const entry = await this.#withRoom();
    const refused = beforeSend();
    if (refused !== undefined) throw refused;
    const stream = entry.session.request(headers, {
      endStream: options.endStream,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    entry.streams++;
    if (entry.streams === 1) entry.session.ref();
    stream.once("close", () => {
      entry.streams--;
      if (entry.streams === 0 && !entry.session.destroyed) entry.session.unref();
    });
    return stream;
  }

  close(): void {
    this.#closed = true;
    for (const s of this.#sessions.splice(0)) s.session.destroy();
  }

  async #withRoom(): Promise<Session> {
    for (;;) {
      const open = this.#sessions.find((s) => !s.session.destroyed && !s.session.closed && s.streams < limitOf(s));
      if (open !== undefined) return open;
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
      const opened = await this.#opening;
      if (this.#closed) {
        opened.session.destroy();
        throw new Error("connection closed");
      }
      if (!this.#sessions.includes(opened)) this.#sessions.push(opened);
    }
  }

  #open(): Promise<Session> {
    return new Promise((resolve, reject) => {
      const session = http2.connect(this.#origin, tlsOptions(this.#origin, this.#target));
      const entry = this.#watch(session);
      session.once("connect", () => {
        session.removeListener("error", reject);
        resolve(entry);
      });
      session.once("error", reject);
    });
  }

  #adopt(socket: tls.TLSSocket): Session {
    return this.#watch(http2.connect(this.#origin, { createConnection: () => socket }));
  }

  /** a session that leaves the pool when it ends, goes away or fails */
  #watch(session: http2.ClientHttp2Session): Session {
    const entry: Session = { session, streams: 0 };
    const drop = () => {
      const at = this.#sessions.indexOf(entry);
      if (at >= 0) this.#sessions.splice(at, 1);
    };
    session.on("error", drop); // its streams fail with it; the next request opens another
    session.on("goaway", drop);
    session.on("close", drop);
    session.setTimeout(this.#idleMs, () => {
      if (entry.streams === 0) {
        drop();
        session.close();
      }
    });
    // held while it connects; idle after that, it does not keep the process alive
    session.once("connect", () => {
      if (entry.streams === 0) session.unref();
    });
    return entry;
  }
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
    // first listener: complete before anyone else hears of the end
    stream.once("end", () => {
      this.#complete = true;
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
    this.#stream.on(event, listener as (...args: unknown[]) => void);
    return this;
  }
}
