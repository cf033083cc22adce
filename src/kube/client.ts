// A small Kubernetes REST client: JSON over HTTP/2 to TLS servers that offer it (h2.ts: every
// request and watch a stream on one connection), else keep-alive HTTP/1.1 connections (a bounded
// pool for requests, one connection per watch); a client-side rate limit, 429 retries, paged lists
// and streaming watches. kubeconfig.ts reads the kubeconfig
// and supplies TLS material and credentials (without @kubernetes/client-node, see there).
//
// Why hand-written: measured (bench/kube-client.ts, BENCHMARKS.md, one run on 2 cores), 200
// concurrent GETs took 1 TLS connection here against 200 with @kubernetes/client-node, a GET 0.90 ms
// of client CPU against 6.05 ms, and an import 30 MiB of RSS against 81 MiB. undici (with HTTP/2)
// was as cheap, but sends an impersonated user's several groups as one (h2.ts says more).
//
// gated() makes a view of a client whose writes pass a gate (fence.ts: only while this replica
// holds the Lease). The gate is asked when the write is called and again right before it is handed
// to the socket: the wait for credentials, the rate limiter and a free connection (long under load,
// or after the event loop stalled) may have outlasted the Lease.
import * as http from "node:http";
import type * as http2 from "node:http2";
import * as https from "node:https";
import type { LookupFunction } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import * as tls from "node:tls";
import {
  apiVersionOf,
  decodeObject,
  isPathSegmentName,
  type ListPage,
  type Response,
  ResponseTooLarge,
  readResponse,
  WatchDecoder,
} from "./answers.ts";
import { asStatus, describeBody, isRecord, KubeApiError, KubeDecodeError } from "./errors.ts";
import { type AnswerStream, H2Answer, H2Sessions, negotiateH2 } from "./h2.ts";
import { type ClusterAccess, clusterAccess, type ParsedKubeconfig, parseKubeconfig } from "./kubeconfig.ts";
import { assertSelfContained } from "./self-contained.ts";
import { checkServerUrl, guardedLookup, type ServerAddressPolicy } from "./server-addresses.ts";
import { ShareTimeout, TenantShare } from "./tenant-share.ts";

export { KubeApiError, KubeDecodeError, type Status } from "./errors.ts";

export type ObjectMeta = {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  deletionTimestamp?: string;
  creationTimestamp?: string;
  ownerReferences?: Array<Record<string, unknown>>;
  managedFields?: unknown[];
};

export type KubeObject = { apiVersion: string; kind: string; metadata: ObjectMeta; [field: string]: unknown };

/** A resource type: where its REST path is. group "" is the core group. */
export type ResourceRef = { group: string; version: string; resource: string; namespaced: boolean };

export type ClientOptions = {
  qps?: number;
  burst?: number;
  userAgent?: string;
  /**
   * deadline of one request (default 30 s), from the call to the last byte of its answer, 429
   * retries and their waits included: a request never takes longer. Watches have their own (their
   * timeoutSeconds and 30 s more), lists one per page and listTimeoutMs for all pages.
   */
  timeoutMs?: number;
  /** deadline of one list, all its pages together (default 10 × timeoutMs) */
  listTimeoutMs?: number;
  /** the most objects one list may hold, all pages together (default 500,000); more is an error */
  maxListItems?: number;
  /**
   * the largest list, its pages' answers together (default 4 × maxResponseBytes); a larger one is
   * an error. maxResponseBytes bounds each page, this what a server paging on and on makes us hold.
   */
  maxListBytes?: number;
  /** the largest answer body read; a larger one is an error (default 64 MiB) */
  maxResponseBytes?: number;
  /** the largest single watch event (one line of the stream); a larger one ends the watch with an error (default 16 MiB) */
  maxWatchEventBytes?: number;
  /**
   * requests in flight at most (default 64; watches aside): HTTP/2 streams, or HTTP/1.1 connections
   * (watches have their own); more requests at once wait for one to finish
   */
  maxConnections?: number;
  /** HTTP/2 when the server offers it over TLS (default true; h2.ts); false: HTTP/1.1 connections only */
  http2?: boolean;
  /** how the server's host name is looked up (lookup.ts: a tenant's lookups gated); dns.lookup by default */
  lookup?: LookupFunction;
  /**
   * where the server may be (server-addresses.ts): for app clusters, whose kubeconfigs are a
   * tenant's word; checked before each connection, nothing is sent to a refused address
   */
  serverAddresses?: ServerAddressPolicy;
  /**
   * requests of one tenant (forTenant) in flight at most, its waits for the rate limit and a slot
   * included (default 16); more wait in the tenant's own line (tenant-share.ts)
   */
  maxRequestsPerTenant?: number;
};

/**
 * One finished request (watches excluded), for metrics: waitedSeconds from the call to sending it
 * (credentials, the rate limiter, a free connection), seconds from sending it to the answer's last
 * byte; status 0 when no answer came (a network error or the deadline).
 */
export type RequestObservation = { method: string; status: number; waitedSeconds: number; seconds: number };

/** Whom requests are made for (Kubernetes impersonation); the client's own identity needs `impersonate`. */
export type Impersonation = { username: string; groups?: string[]; uid?: string };

/**
 * limit is the page size of list (default 500); watches ignore it. kind, when known (from an
 * earlier list, say), is the kind every listed object must have.
 */
export type ListOptions = {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  limit?: number;
  kind?: string;
};

export type WatchEvent = { type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK"; object: KubeObject };

export type WatchOptions = ListOptions & {
  resourceVersion: string;
  timeoutSeconds?: number;
  allowBookmarks?: boolean;
  /** the kind every event's object must have (from the list the watch continues) */
  kind?: string;
};

type RequestOptions = {
  body?: unknown;
  contentType?: string;
  query?: Record<string, string | undefined>;
  /** a smaller answer limit than the client's, for answers known to be small */
  maxBytes?: number;
  /** ends the request, and a wait for a 429 retry (it rejects) */
  signal?: AbortSignal;
  /** told each chunk's size as the answer arrives; what it throws ends the request with that error */
  onChunk?: (bytes: number) => void;
  /** the answer's media type; JSON unless said (e.g. a PartialObjectMetadataList: names, never contents) */
  accept?: string;
};

/** when a request must have its answer (performance.now() time), and the time it was given, for messages */
type Deadline = { at: number; ms: number };

/**
 * Requests in flight per client at most (watches aside): over HTTP/2 streams at once, over HTTP/1.1
 * connections (watches have their own, one each). A burst waits for a free
 * one rather than opening more, and all stay open between bursts (each ~115 KiB). Unbounded, the
 * sync opened ~500 connections in a 3,000-object cold start and closed most again after each burst,
 * each new one a TLS handshake for both sides on a machine the API servers already saturate
 * (bench: 16 was too few for the control plane, requests waited seconds for one).
 */
const defaultMaxConnections = 64;
/** a quarter of the request slots: four flooding tenants leave others waiting on no more than those */
const defaultMaxRequestsPerTenant = 16;
/** idle watch connections kept for the next watch (a watch's connection is free again once it ends) */
const maxFreeWatchSockets = 4;
const defaultQps = 500;
const defaultBurst = 1000;
const defaultTimeoutMs = 30_000;
export const defaultMaxResponseBytes = 64 * 1024 * 1024;
export const defaultMaxWatchEventBytes = 16 * 1024 * 1024;
const defaultPageSize = 500;
/**
 * A list of more objects holds the sync's memory for one resource of one tenant: 50 times the
 * bench's 10,000 objects of all 20 bindings together, far more than any cluster we sync serves.
 */
const defaultMaxListItems = 500_000;
/** of the client's timeoutMs (each page's deadline): 200 pages of 500 objects at 1.5 s each fit in 10 × 30 s */
const listTimeoutFactor = 10;
/** of the client's maxResponseBytes */
const listBytesFactor = 4;
const max429Retries = 3;
const maxRetryAfterMs = 30_000;
/** a 429 without a usable hint waits this long */
const defaultRetryAfterMs = 1_000;
const applyPatch = "application/apply-patch+yaml";
const mergePatchType = "application/merge-patch+json";

/** The REST path of a collection, an object or an object's subresource. */
export function resourcePath(ref: ResourceRef, namespace?: string, name?: string, subresource?: string): string {
  let path = ref.group === "" ? `/api/${ref.version}` : `/apis/${ref.group}/${ref.version}`;
  if (ref.namespaced && namespace !== undefined && namespace !== "") {
    if (!isPathSegmentName(namespace))
      throw new Error(`${describeRef(ref)}: ${JSON.stringify(namespace)} is not a namespace`);
    path += `/namespaces/${encodeURIComponent(namespace)}`;
  } else if (ref.namespaced && name !== undefined) {
    throw new Error(`${describeRef(ref)} is namespaced: ${name} needs a namespace`);
  }
  path += `/${ref.resource}`;
  if (name !== undefined) {
    if (name === "") throw new Error(`${describeRef(ref)}: empty name`);
    // "." and ".." would address the collection or its parent once the URL is resolved
    if (!isPathSegmentName(name)) throw new Error(`${describeRef(ref)}: ${JSON.stringify(name)} is not a name`);
    path += `/${encodeURIComponent(name)}`;
    if (subresource !== undefined) path += `/${subresource}`;
  }
  return path;
}

/** "widgets.example.com/v1" or "configmaps/v1": for messages. */
export function describeRef(ref: ResourceRef): string {
  return `${ref.resource}${ref.group === "" ? "" : `.${ref.group}`}/${ref.version}`;
}

/** Reservations against a token bucket: each caller waits until its token has accrued. */
class RateLimiter {
  readonly #qps: number;
  readonly #burst: number;
  #tokens: number;
  #last = performance.now();

  constructor(qps: number, burst: number) {
    this.#qps = qps;
    this.#burst = Math.max(1, burst);
    this.#tokens = this.#burst;
  }

  async take(): Promise<void> {
    if (!(this.#qps > 0) || this.#qps === Number.POSITIVE_INFINITY) return;
    const now = performance.now();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#last) / 1000) * this.#qps);
    this.#last = now;
    this.#tokens -= 1;
    if (this.#tokens < 0) await sleep((-this.#tokens / this.#qps) * 1000);
  }
}

type Auth = { headers: Record<string, string>; expires: number };
/** one pool of connections for requests (bounded), one for watches (each holds its connection for minutes) */
type Agents = { requests: http.Agent; watches: http.Agent };
type Transport = { kind: "h1"; agents: Agents } | { kind: "h2"; sessions: H2Sessions };

/**
 * Asked right before a write (any request but GET) is sent: undefined lets it go, an Error refuses
 * it (the request rejects with that Error, and nothing is sent or counted).
 */
export type WriteGate = () => Error | undefined;

/**
 * What a client shares with every client made from it (gated, impersonating): the connections, the
 * rate limit and the credentials, a bearer token set on any of them included.
 */
class Connection {
  readonly access: ClusterAccess;
  readonly limiter: RateLimiter;
  readonly share: TenantShare;
  readonly maxConnections: number;
  readonly http2: boolean;
  /** the deadline of a new connection's handshake (the client's request timeout) */
  readonly connectTimeoutMs: number;
  closed = false;
  #transport: Promise<Transport> | undefined;
  #inFlight = 0;
  #slotWaiters: Array<() => void> = [];
  #auth: Promise<Auth> | undefined;
  /** a bearer token that replaced the kubeconfig's (setBearerToken) */
  #bearer: string | undefined;
  readonly #lookup: LookupFunction | undefined;
  readonly #serverAddresses: ServerAddressPolicy | undefined;

  constructor(
    access: ClusterAccess,
    limiter: RateLimiter,
    options: {
      maxConnections: number;
      http2: boolean;
      connectTimeoutMs: number;
      lookup?: LookupFunction;
      serverAddresses?: ServerAddressPolicy;
      maxRequestsPerTenant?: number;
    },
  ) {
    this.access = access;
    this.limiter = limiter;
    this.share = new TenantShare(options.maxRequestsPerTenant ?? defaultMaxRequestsPerTenant);
    this.maxConnections = options.maxConnections;
    this.http2 = options.http2;
    this.connectTimeoutMs = options.connectTimeoutMs;
    this.#serverAddresses = options.serverAddresses;
    // every connection's lookup checks the addresses it resolves to (an IP literal is looked up by
    // nobody: #makeTransport checks it)
    this.#lookup = options.serverAddresses ? guardedLookup(options.serverAddresses, options.lookup) : options.lookup;
  }

  setBearerToken(token: string): void {
    this.#bearer = token;
    this.#auth = undefined;
  }

  /** after a 401: the next request loads the credentials afresh */
  forgetAuth(): void {
    this.#auth = undefined;
  }

  close(): void {
    this.closed = true;
    const transport = this.#transport;
    this.#transport = undefined;
    transport
      ?.then((t) => {
        if (t.kind === "h2") t.sessions.close();
        else {
          t.agents.requests.destroy();
          t.agents.watches.destroy();
        }
      })
      .catch(() => {});
  }

  /**
   * How requests go: HTTP/2 streams when the server speaks it over TLS, else the HTTP/1.1 pools.
   * Decided by the first connection; a failure to connect is not kept (the next request tries again).
   */
  transport(): Promise<Transport> {
    if (this.#transport === undefined) {
      const transport = this.#makeTransport();
      // unusable TLS material fails every request that awaits it; held but unawaited, it must not
      // become an unhandled rejection (which ends the process)
      transport.catch(() => {
        if (this.#transport === transport) this.#transport = undefined;
      });
      this.#transport = transport;
    }
    return this.#transport;
  }

  /** the transport if one was made (and did not fail) */
  async peekTransport(): Promise<Transport | undefined> {
    return this.#transport?.catch(() => undefined);
  }

  /** a free request slot (HTTP/2: at most maxConnections requests at once, as the HTTP/1.1 pool) */
  async slot(signal: AbortSignal): Promise<() => void> {
    signal.throwIfAborted();
    if (this.#inFlight >= this.maxConnections) {
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => {
          this.#slotWaiters = this.#slotWaiters.filter((w) => w !== waiter);
          reject(signal.reason);
        };
        const waiter = () => {
          signal.removeEventListener("abort", onAbort);
          resolve();
        };
        signal.addEventListener("abort", onAbort, { once: true });
        this.#slotWaiters.push(waiter);
      });
    } else this.#inFlight++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#slotWaiters.shift();
      if (next !== undefined)
        next(); // the slot passes on
      else this.#inFlight--;
    };
  }

  async #makeTransport(): Promise<Transport> {
    const refused = this.#serverAddresses && checkServerUrl(this.access.server, this.#serverAddresses);
    if (refused) throw refused;
    const lookup = this.#lookup === undefined ? {} : { lookup: this.#lookup };
    const requests = {
      keepAlive: true,
      maxSockets: this.maxConnections,
      maxFreeSockets: this.maxConnections,
      ...lookup,
    };
    const watches = { keepAlive: true, maxFreeSockets: maxFreeWatchSockets, ...lookup };
    const server = this.access.server;
    if (server.protocol === "http:") {
      return { kind: "h1", agents: { requests: new http.Agent(requests), watches: new http.Agent(watches) } };
    }
    const { rejectUnauthorized, servername, ...material } = await this.access.tls();
    // one TLS context for all of this cluster's connections: an agent given ca/cert/key builds a
    // context per connection (measured: 160 KiB per idle socket against 115 KiB with one shared)
    const target = {
      secureContext: tls.createSecureContext(material),
      ...(rejectUnauthorized === undefined ? {} : { rejectUnauthorized }),
      ...(servername === undefined ? {} : { servername }),
      ...lookup,
    };
    const overHttp1 = (): Transport => ({
      kind: "h1",
      agents: {
        requests: new https.Agent({ ...requests, ...target }),
        watches: new https.Agent({ ...watches, ...target }),
      },
    });
    if (!this.http2) return overHttp1();
    const first = await negotiateH2(server, target, this.connectTimeoutMs);
    if (first === undefined) return overHttp1();
    if (this.closed) {
      first.destroy();
      throw new Error(`client for ${server.origin} is closed`);
    }
    return {
      kind: "h2",
      sessions: new H2Sessions(server, target, first, { connectTimeoutMs: this.connectTimeoutMs }),
    };
  }

  async auth(): Promise<Auth> {
    const current = this.#auth;
    if (current !== undefined) {
      const auth = await current.catch(() => undefined);
      if (auth !== undefined && auth.expires > Date.now()) return auth;
      // another caller may have started the refresh meanwhile
      if (this.#auth !== current && this.#auth !== undefined) return this.#auth;
    }
    const fresh = this.#loadAuth();
    this.#auth = fresh;
    fresh.catch(() => {
      if (this.#auth === fresh) this.#auth = undefined;
    });
    return fresh;
  }

  // Credentials from exec plugins and token files change: they expire after a minute (kubeconfig.ts).
  async #loadAuth(): Promise<Auth> {
    const { headers, expires } = await this.access.credentials();
    if (this.#bearer === undefined) return { headers, expires };
    return { headers: { ...headers, authorization: `Bearer ${this.#bearer}` }, expires };
  }
}

/** Requests sent and their observer: a client's own, shared with its gated views (they count as the client). */
type Tally = { requests: number; observer: ((observation: RequestObservation) => void) | undefined };

type Parts = {
  connection: Connection;
  tally: Tally;
  userAgent: string;
  timeoutMs: number;
  maxResponseBytes: number;
  maxWatchEventBytes: number;
  listTimeoutMs: number;
  maxListItems: number;
  maxListBytes: number;
  impersonationHeaders: Record<string, string | string[]>;
  gates: readonly WriteGate[];
  /** whose requests these are (forTenant): each tenant's requests in flight are bounded */
  tenant?: string;
  /** made from another client (gated, impersonating): closing it leaves the connections open */
  view: boolean;
};

export class KubeClient {
  readonly server: string;
  readonly #parts: Parts;
  readonly #connection: Connection;
  readonly #tally: Tally;
  readonly #gates: readonly WriteGate[];
  #closed = false;

  private constructor(parts: Parts) {
    this.#parts = parts;
    this.#connection = parts.connection;
    this.#tally = parts.tally;
    this.#gates = parts.gates;
    const server = parts.connection.access.server;
    this.server = server.origin + server.pathname.replace(/\/$/, "");
  }

  static #create(access: ClusterAccess, options: ClientOptions): KubeClient {
    const timeoutMs = options.timeoutMs ?? defaultTimeoutMs;
    const maxResponseBytes = options.maxResponseBytes ?? defaultMaxResponseBytes;
    return new KubeClient({
      connection: new Connection(access, new RateLimiter(options.qps ?? defaultQps, options.burst ?? defaultBurst), {
        maxConnections: options.maxConnections ?? defaultMaxConnections,
        http2: options.http2 ?? true,
        connectTimeoutMs: timeoutMs,
        ...(options.lookup ? { lookup: options.lookup } : {}),
        ...(options.serverAddresses ? { serverAddresses: options.serverAddresses } : {}),
        ...(options.maxRequestsPerTenant ? { maxRequestsPerTenant: options.maxRequestsPerTenant } : {}),
      }),
      tally: { requests: 0, observer: undefined },
      userAgent: options.userAgent ?? "klutch-bind",
      timeoutMs,
      maxResponseBytes,
      maxWatchEventBytes: options.maxWatchEventBytes ?? defaultMaxWatchEventBytes,
      listTimeoutMs: options.listTimeoutMs ?? timeoutMs * listTimeoutFactor,
      maxListItems: options.maxListItems ?? defaultMaxListItems,
      maxListBytes: options.maxListBytes ?? maxResponseBytes * listBytesFactor,
      impersonationHeaders: {},
      gates: [],
      view: false,
    });
  }

  /**
   * A client for the current context of a kubeconfig (see kubeconfig.ts: readKubeconfigFile,
   * defaultKubeconfig, inClusterKubeconfig). Throws an Error saying what is wrong with it.
   */
  static fromConfig(config: ParsedKubeconfig, options: ClientOptions = {}): KubeClient {
    return KubeClient.#create(clusterAccess(config), options);
  }

  /** Throws an Error saying what is wrong when text is not a usable kubeconfig. */
  static fromKubeconfigText(text: string, options: ClientOptions = {}): KubeClient {
    return KubeClient.fromConfig(parseKubeconfig(text), options);
  }

  /**
   * Like fromKubeconfigText, for a kubeconfig someone else supplied: refuses exec plugins and
   * file references (see self-contained.ts).
   */
  static fromUntrustedKubeconfig(text: string, options: ClientOptions = {}): KubeClient {
    assertSelfContained(text);
    return KubeClient.fromKubeconfigText(text, options);
  }

  /**
   * A client that sends every request on behalf of user, over this client's connections and
   * with this client's credentials; Kubernetes RBAC then decides as for that user.
   */
  impersonating(user: Impersonation): KubeClient {
    return new KubeClient({
      ...this.#parts,
      tally: { requests: 0, observer: this.#tally.observer },
      impersonationHeaders: {
        "impersonate-user": user.username,
        ...(user.groups?.length ? { "impersonate-group": user.groups } : {}),
        ...(user.uid ? { "impersonate-uid": user.uid } : {}),
      },
      view: true,
    });
  }

  /**
   * A view of this client whose writes (every request but GET; watches are GETs) go out only while
   * gate lets them, asked at the call and again right before each is sent; this client's gates
   * still apply. It shares everything else with this client: connections, rate limit, credentials
   * and setBearerToken, the requests count and observer. Its close() ends the view only.
   */
  gated(gate: WriteGate): KubeClient {
    return new KubeClient({ ...this.#parts, gates: [...this.#gates, gate], view: true });
  }

  /**
   * A view of this client whose requests (not watches) are tenant's: at most maxRequestsPerTenant
   * of them in flight, the rest wait their turn in tenant's own line before the shared rate limit
   * and request slots. It shares everything else with this client, as gated() does.
   */
  forTenant(tenant: string): KubeClient {
    return new KubeClient({ ...this.#parts, tenant, view: true });
  }

  /**
   * Sends token from the next request on instead of the kubeconfig's credentials (a renewed
   * service account token), for this client and every client made from it or that it was made
   * from. Requests and watches under way keep theirs: nothing is interrupted.
   */
  setBearerToken(token: string): void {
    this.#connection.setBearerToken(token);
  }

  /**
   * Calls observe after each request this client or a gated view of it sends (watches excluded);
   * an impersonating child made later too.
   */
  observeRequests(observe: (observation: RequestObservation) => void): void {
    this.#tally.observer = observe;
  }

  /** requests sent so far, gated views' included (for metrics: API requests per object synced) */
  get requests(): number {
    return this.#tally.requests;
  }

  /**
   * One request; resolves with the answer's JSON object. Rejects with KubeApiError for an error
   * status (or a Status of failure sent with 200), with KubeDecodeError when the answer is not a
   * JSON object.
   */
  async request<T = unknown>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    return this.#body<T>(method, path, await this.#send(method, path, options));
  }

  #body<T>(method: string, path: string, response: Response): T {
    const contentType = response.headers["content-type"];
    if (response.status >= 400) throw new KubeApiError(method, path, response.status, response.body, contentType);
    if (response.problem !== undefined) throw new KubeDecodeError(method, path, response.problem);
    if (response.status < 200 || response.status > 299) {
      throw new KubeDecodeError(method, path, `unexpected status ${response.status}`);
    }
    const body = response.body;
    if (!isRecord(body)) {
      throw new KubeDecodeError(method, path, `expected a JSON object, ${describeBody(body, contentType)}`);
    }
    if (body.kind === "Status" && body.status === "Failure") {
      const status = asStatus(body);
      throw new KubeApiError(method, path, typeof status?.code === "number" ? status.code : 500, body, contentType);
    }
    return body as T;
  }

  /** The object, or undefined when the API server answered 404 with a NotFound Status (nothing less proves it absent). */
  async get(ref: ResourceRef, name: string, namespace?: string): Promise<KubeObject | undefined> {
    const path = resourcePath(ref, namespace, name);
    let body: unknown;
    try {
      body = await this.request("GET", path);
    } catch (err) {
      if (err instanceof KubeApiError && err.isNotFound) return undefined;
      throw err;
    }
    const obj = decodeObject("GET", path, body, ref);
    if (obj.metadata.name !== name) {
      throw new KubeDecodeError("GET", path, `answered with an object named ${JSON.stringify(obj.metadata.name)}`);
    }
    return obj;
  }

  /**
   * Every object of a (paged) list; rejects unless every page is a real list of ref's objects, and
   * when the pages together outgrow maxListItems or maxListBytes, repeat a continue token, or take
   * longer than listTimeoutMs. signal ends it (it rejects). charge is told the size of each chunk
   * of every page as it arrives (cache-budget.ts: a cache's budget); what it throws ends the list.
   */
  async list(
    ref: ResourceRef,
    options: ListOptions = {},
    signal?: AbortSignal,
    charge?: (bytes: number) => void,
  ): Promise<{ items: KubeObject[]; resourceVersion: string; kind: string }> {
    const path = resourcePath(ref, options.namespace);
    const deadline = { expiry: AbortSignal.timeout(this.#parts.listTimeoutMs), ms: this.#parts.listTimeoutMs };
    const pages = (limit: number) => this.#pages(ref, path, options, limit, deadline, signal, charge);
    try {
      return await pages(options.limit ?? defaultPageSize);
    } catch (err) {
      if (!(err instanceof ContinueExpired)) throw err;
    }
    // The snapshot behind a continue token was compacted away: list everything in one go, once (a
    // server that expires that list's continue token too fails it).
    try {
      return await pages(0);
    } catch (err) {
      throw err instanceof ContinueExpired ? err.expired : err;
    }
  }

  async #pages(
    ref: ResourceRef,
    path: string,
    options: ListOptions,
    limit: number,
    deadline: { expiry: AbortSignal; ms: number },
    signal: AbortSignal | undefined,
    charge: ((bytes: number) => void) | undefined,
  ): Promise<{ items: KubeObject[]; resourceVersion: string; kind: string }> {
    const { maxListItems, maxListBytes } = this.#parts;
    const { expiry } = deadline;
    const until = signal ? AbortSignal.any([signal, expiry]) : expiry;
    const items: KubeObject[] = [];
    let bytes = 0;
    let resourceVersion = "";
    let kind = "";
    let continueToken: string | undefined;
    const tokens = new Set<string>();
    const outOfTime = (cause?: unknown) =>
      new Error(
        `GET ${path}: the list did not end within ${deadline.ms} ms (${tokens.size + 1} pages, ${items.length} objects so far)`,
        cause === undefined ? undefined : { cause },
      );
    do {
      if (expiry.aborted) throw outOfTime();
      let page: ListPage & { bytes: number };
      try {
        page = await this.#listPage(ref, path, options, {
          query: {
            labelSelector: options.labelSelector,
            fieldSelector: options.fieldSelector,
            limit: limit > 0 ? String(limit) : undefined,
            continue: continueToken,
          },
          signal: until,
          ...(charge ? { onChunk: charge } : {}),
        });
      } catch (err) {
        if (continueToken !== undefined && err instanceof KubeApiError && err.code === 410) {
          throw new ContinueExpired(err);
        }
        if (expiry.aborted && !signal?.aborted) throw outOfTime(err);
        throw err;
      }
      if (continueToken === undefined) {
        resourceVersion = page.resourceVersion;
        kind = page.kind;
      } else if (page.kind !== kind) {
        throw new KubeDecodeError("GET", path, `a later page lists ${page.kind}, the first listed ${kind}`);
      }
      bytes += page.bytes;
      if (items.length + page.items.length > maxListItems) {
        throw new KubeDecodeError("GET", path, `the list has more than ${maxListItems} objects (maxListItems)`);
      }
      if (bytes > maxListBytes) {
        throw new KubeDecodeError("GET", path, `the list's pages are larger than ${maxListBytes} bytes together`);
      }
      for (const item of page.items) items.push(item);
      continueToken = page.continue;
      if (continueToken !== undefined) {
        // a server that hands out a token again would have us page (and hold its pages) forever
        if (tokens.has(continueToken)) {
          throw new KubeDecodeError(
            "GET",
            path,
            `page ${tokens.size + 1} repeats the continue token ${describeToken(continueToken)} of an earlier page`,
          );
        }
        tokens.add(continueToken);
      }
    } while (continueToken !== undefined);
    return { items, resourceVersion, kind };
  }

  /** One page of a list, checked to be a list of ref's objects (in namespace, when given). */
  async #listPage(
    ref: ResourceRef,
    path: string,
    list: ListOptions,
    options: RequestOptions,
  ): Promise<ListPage & { bytes: number }> {
    const namespace = list.namespace;
    const response = await this.#send("GET", path, options);
    const body = this.#body<Record<string, unknown>>("GET", path, response);
    const apiVersion = apiVersionOf(ref);
    const listKind = body.kind;
    if (typeof listKind !== "string" || !listKind.endsWith("List") || listKind === "List") {
      throw new KubeDecodeError("GET", path, `expected a list, got kind ${JSON.stringify(listKind)}`);
    }
    if (body.apiVersion !== apiVersion) {
      throw new KubeDecodeError(
        "GET",
        path,
        `expected a list of ${apiVersion}, got ${JSON.stringify(body.apiVersion)}`,
      );
    }
    const metadata = body.metadata;
    if (!isRecord(metadata) || typeof metadata.resourceVersion !== "string") {
      throw new KubeDecodeError("GET", path, "the list has no metadata.resourceVersion");
    }
    if (!Array.isArray(body.items)) throw new KubeDecodeError("GET", path, "the list has no items array");
    const kind = listKind.slice(0, -"List".length);
    if (list.kind !== undefined && kind !== list.kind) {
      throw new KubeDecodeError("GET", path, `expected a list of ${list.kind}, got ${listKind}`);
    }
    const items = body.items.map((item: unknown, i: number) => {
      const obj = decodeObject("GET", path, item, ref, kind, `items[${i}]`);
      if (namespace !== undefined && namespace !== "" && obj.metadata.namespace !== namespace) {
        throw new KubeDecodeError("GET", path, `items[${i}] is in another namespace`);
      }
      return obj;
    });
    const next = metadata.continue;
    return {
      kind,
      resourceVersion: metadata.resourceVersion,
      items,
      continue: typeof next === "string" && next !== "" ? next : undefined,
      bytes: response.bytes,
    };
  }

  /** A request whose answer is one object of ref. */
  async #object(ref: ResourceRef, method: string, path: string, options: RequestOptions): Promise<KubeObject> {
    return decodeObject(method, path, await this.request(method, path, options), ref);
  }

  create(ref: ResourceRef, obj: KubeObject): Promise<KubeObject> {
    return this.#object(ref, "POST", resourcePath(ref, obj.metadata.namespace), { body: obj });
  }

  update(ref: ResourceRef, obj: KubeObject): Promise<KubeObject> {
    return this.#object(ref, "PUT", resourcePath(ref, obj.metadata.namespace, obj.metadata.name), { body: obj });
  }

  updateStatus(ref: ResourceRef, obj: KubeObject): Promise<KubeObject> {
    return this.#object(ref, "PUT", resourcePath(ref, obj.metadata.namespace, obj.metadata.name, "status"), {
      body: obj,
    });
  }

  apply(ref: ResourceRef, obj: KubeObject, fieldManager: string, force = true): Promise<KubeObject> {
    return this.#apply(ref, obj, fieldManager, force, undefined);
  }

  applyStatus(ref: ResourceRef, obj: KubeObject, fieldManager: string, force = true): Promise<KubeObject> {
    return this.#apply(ref, obj, fieldManager, force, "status");
  }

  #apply(
    ref: ResourceRef,
    obj: KubeObject,
    fieldManager: string,
    force: boolean,
    subresource: string | undefined,
  ): Promise<KubeObject> {
    const path = resourcePath(ref, obj.metadata.namespace, obj.metadata.name, subresource);
    return this.#object(ref, "PATCH", path, {
      body: obj,
      contentType: applyPatch,
      query: { fieldManager, force: force ? "true" : undefined },
    });
  }

  mergePatch(
    ref: ResourceRef,
    name: string,
    namespace: string | undefined,
    patch: unknown,
    subresource?: string,
  ): Promise<KubeObject> {
    return this.#object(ref, "PATCH", resourcePath(ref, namespace, name, subresource), {
      body: patch,
      contentType: mergePatchType,
    });
  }

  async delete(
    ref: ResourceRef,
    name: string,
    namespace?: string,
    options: { propagationPolicy?: "Background" | "Foreground" | "Orphan"; uid?: string } = {},
  ): Promise<boolean> {
    const body: Record<string, unknown> = { apiVersion: "v1", kind: "DeleteOptions" };
    if (options.propagationPolicy !== undefined) body.propagationPolicy = options.propagationPolicy;
    if (options.uid !== undefined) body.preconditions = { uid: options.uid };
    try {
      await this.request("DELETE", resourcePath(ref, namespace, name), { body });
      return true;
    } catch (err) {
      if (err instanceof KubeApiError && err.isNotFound) return false;
      throw err;
    }
  }

  /**
   * One watch request: resolves when the server ends the stream (or signal aborts it); rejects with
   * KubeApiError (410 for an expired resourceVersion, also when it arrives as an ERROR event in the
   * stream), with KubeDecodeError for a stream that is not a watch of ref's objects (a line that is
   * not JSON or not UTF-8, an event over the size limit, an object of another kind or namespace),
   * or with the error onEvent threw.
   */
  async watch(
    ref: ResourceRef,
    options: WatchOptions,
    onEvent: (event: WatchEvent) => void,
    signal: AbortSignal,
  ): Promise<void> {
    const path = resourcePath(ref, options.namespace);
    const timeoutSeconds = options.timeoutSeconds ?? 300;
    const query = {
      watch: "true",
      resourceVersion: options.resourceVersion,
      labelSelector: options.labelSelector,
      fieldSelector: options.fieldSelector,
      timeoutSeconds: String(timeoutSeconds),
      allowWatchBookmarks: options.allowBookmarks === false ? undefined : "true",
    };
    let res: AnswerStream | undefined;
    for (let attempt = 0; ; attempt++) {
      if (signal.aborted) return;
      // a refused watch is observed as a request is (a 403 counts); an open one, which lasts, is not
      const timing = { called: performance.now(), sent: Number.NaN };
      try {
        const ms = (timeoutSeconds + 30) * 1000;
        res = await this.#open("GET", path, { query }, signal, { at: performance.now() + ms, ms }, timing, "watches");
      } catch (err) {
        if (signal.aborted) return;
        throw err;
      }
      if (res.statusCode === 200) break;
      const response = await readResponse(res, this.#parts.maxResponseBytes);
      this.#observe("GET", response.status, timing);
      if (response.status === 401) this.#connection.forgetAuth();
      if (response.status === 429 && attempt < max429Retries) {
        await sleepOrAbort(retryDelayMs(response), signal);
        continue;
      }
      if (response.status >= 400) {
        throw new KubeApiError("GET", path, response.status, response.body, response.headers["content-type"]);
      }
      throw new KubeDecodeError("GET", path, `unexpected status ${response.status} for a watch`);
    }
    const stream = res;
    const contentType = stream.headers["content-type"] ?? "";
    if (!contentType.includes("json")) {
      stream.destroy();
      throw new KubeDecodeError(
        "GET",
        path,
        `the watch answered with ${contentType.split(";")[0] || "no content type"}`,
      );
    }
    const events = new WatchDecoder(path, ref, options, this.#parts.maxWatchEventBytes);
    await new Promise<void>((resolve, reject) => {
      let done = false;
      const finish = (err?: unknown) => {
        if (done) return;
        done = true;
        signal.removeEventListener("abort", onAbort);
        if (err === undefined) resolve();
        else {
          stream.destroy();
          reject(err);
        }
      };
      const onAbort = () => {
        stream.destroy();
        finish();
      };
      signal.addEventListener("abort", onAbort, { once: true });
      stream.on("data", (chunk: Buffer) => {
        if (done) return;
        try {
          for (const event of events.write(chunk)) {
            if (done) break;
            onEvent(event);
          }
        } catch (err) {
          finish(err);
        }
      });
      stream.on("end", () => {
        try {
          for (const event of events.end()) onEvent(event);
          finish();
        } catch (err) {
          finish(err);
        }
      });
      stream.on("error", (err) => finish(signal.aborted ? undefined : err));
      stream.on("close", () => {
        if (signal.aborted) finish();
        else if (!stream.complete) finish(new Error(`GET ${path}: watch connection closed before the stream ended`));
      });
    });
  }

  /**
   * How this client (and its views) talks to its server now: "h2" or "http/1.1", and the open
   * connections (HTTP/1.1: pooled and watching); undefined before the first request.
   */
  async connections(): Promise<{ protocol: "h2" | "http/1.1"; open: number } | undefined> {
    const transport = await this.#connection.peekTransport();
    if (transport === undefined) return undefined;
    if (transport.kind === "h2") return { protocol: "h2", open: transport.sessions.sessions };
    const count = (agent: http.Agent) =>
      [...Object.values(agent.sockets), ...Object.values(agent.freeSockets)].reduce(
        (sum, list) => sum + (list?.length ?? 0),
        0,
      );
    return { protocol: "http/1.1", open: count(transport.agents.requests) + count(transport.agents.watches) };
  }

  serverVersion(): Promise<{ gitVersion: string }> {
    return this.request<{ gitVersion?: unknown }>("GET", "/version", { maxBytes: 64 * 1024 }).then((v) => {
      if (typeof v.gitVersion !== "string" || v.gitVersion.length > 200) {
        throw new KubeDecodeError("GET", "/version", "the answer has no gitVersion");
      }
      return { gitVersion: v.gitVersion };
    });
  }

  /**
   * Destroys the keep-alive agent; later requests fail, also those of clients made from this one.
   * A view (gated, impersonating) only ends itself: the client it was made from still owns the connections.
   */
  close(): void {
    this.#closed = true;
    if (!this.#parts.view) this.#connection.close();
  }

  /** One request, its 429 retries included, within one deadline: the client's timeoutMs. */
  async #send(method: string, path: string, options: RequestOptions): Promise<Response> {
    const timeoutMs = this.#parts.timeoutMs;
    const deadline = { at: performance.now() + timeoutMs, ms: timeoutMs };
    for (let attempt = 0; ; attempt++) {
      const timing = { called: performance.now(), sent: Number.NaN };
      let response: Response;
      let leave = () => {};
      try {
        leave = await this.#turn(method, path, deadline, options.signal);
        const res = await this.#open(method, path, options, options.signal, deadline, timing);
        response = await readResponse(
          res,
          Math.min(options.maxBytes ?? Number.POSITIVE_INFINITY, this.#parts.maxResponseBytes),
          options.onChunk,
        ).catch((err: unknown) => {
          throw err instanceof ResponseTooLarge ? new KubeDecodeError(method, path, err.message) : err;
        });
      } catch (err) {
        this.#observe(method, 0, timing);
        throw err;
      } finally {
        leave();
      }
      this.#observe(method, response.status, timing);
      if (response.status === 401) this.#connection.forgetAuth();
      if (response.status === 429 && attempt < max429Retries) {
        const delay = retryDelayMs(response);
        // no time left for another attempt after the wait: this 429 is the answer
        if (performance.now() + delay >= deadline.at) return response;
        await sleep(delay, undefined, options.signal ? { signal: options.signal } : undefined);
        continue;
      }
      return response;
    }
  }

  /** The tenant's turn (forTenant): resolves with its release; at once for a client of no tenant. */
  async #turn(method: string, path: string, deadline: Deadline, signal?: AbortSignal): Promise<() => void> {
    const tenant = this.#parts.tenant;
    if (tenant === undefined) return () => {};
    return this.#connection.share.enter(tenant, deadline.at, signal).catch((err: unknown) => {
      if (!(err instanceof ShareTimeout)) throw err;
      throw new Error(
        `${method} ${path}: no complete answer from ${this.server} within ${deadline.ms} ms (waited for a turn among tenant ${tenant}'s requests)`,
      );
    });
  }

  #observe(method: string, status: number, timing: { called: number; sent: number }): void {
    const observe = this.#tally.observer;
    if (observe === undefined || Number.isNaN(timing.sent)) return;
    const now = performance.now();
    observe({
      method,
      status,
      waitedSeconds: (timing.sent - timing.called) / 1000,
      seconds: (now - timing.sent) / 1000,
    });
  }

  /**
   * Sends one request and resolves with the response once its headers are in. deadline bounds the
   * whole exchange: the response is destroyed when it has not ended by then.
   */
  async #open(
    method: string,
    path: string,
    options: RequestOptions,
    signal: AbortSignal | undefined,
    deadline: Deadline,
    timing?: { sent: number },
    use: keyof Agents = "requests",
  ): Promise<AnswerStream> {
    const closed = () => this.#closed || this.#connection.closed;
    if (closed()) throw new Error(`${method} ${path}: client for ${this.server} is closed`);
    const refusedEarly = this.#refusal(method);
    if (refusedEarly !== undefined) throw refusedEarly;
    const [transport, auth] = await Promise.all([
      this.#connection.transport().catch((err: unknown) => {
        throw wrapNetworkError(method, path, err instanceof Error ? err : new Error(String(err)));
      }),
      this.#connection.auth(),
    ]);
    await this.#connection.limiter.take();
    const url = new URL(this.#connection.access.server);
    const [pathname = "", search] = path.split("?", 2);
    url.pathname = url.pathname.replace(/\/$/, "") + pathname;
    if (search !== undefined) url.search = search;
    for (const [key, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, value);
    }
    const payload = options.body === undefined ? undefined : Buffer.from(JSON.stringify(options.body));
    const headers: Record<string, string | string[]> = {
      ...auth.headers,
      ...this.#parts.impersonationHeaders,
      accept: options.accept ?? "application/json",
      "user-agent": this.#parts.userAgent,
    };
    if (payload !== undefined) {
      headers["content-type"] = options.contentType ?? "application/json";
      headers["content-length"] = String(payload.length);
    }
    if (transport.kind === "h2") {
      const h2 = { method, path, payload, signal, deadline, timing, use, closed };
      return this.#openStream(transport.sessions, url, headers, h2);
    }
    const agent = transport.agents[use];
    const send = url.protocol === "https:" ? https.request : http.request;
    return new Promise((resolve, reject) => {
      const req = send(url, { method, headers, agent, signal });
      let response: AnswerStream | undefined;
      // made only when it happens: an Error takes a stack trace, and most requests never time out
      let timeout: Error | undefined;
      const timer = setTimeout(
        () => {
          timeout = new Error(`${method} ${path}: no complete answer from ${this.server} within ${deadline.ms} ms`);
          (response ?? req).destroy(timeout);
        },
        Math.max(0, deadline.at - performance.now()),
      );
      timer.unref();
      req.on("error", (err) => {
        clearTimeout(timer);
        reject(
          err === timeout || err === refused || err.name === "AbortError" ? err : wrapNetworkError(method, path, err),
        );
      });
      req.on("response", (res) => {
        response = res;
        res.on("close", () => clearTimeout(timer));
        resolve(res);
      });
      // Nothing is written before end(): the waits for credentials, the rate limit and a free
      // connection may have outlasted what the gates stand for, so they are asked once more here.
      let refused: Error | undefined;
      req.once("socket", () => {
        refused = closed()
          ? new Error(`${method} ${path}: client for ${this.server} is closed`)
          : this.#refusal(method);
        if (refused !== undefined) {
          req.destroy(refused);
          return;
        }
        this.#tally.requests++;
        if (timing !== undefined) timing.sent = performance.now();
        req.end(payload);
      });
    });
  }

  /**
   * #open over HTTP/2: a request slot (watches need none), then a stream; the gates are asked once
   * a connection has room, right before the stream is made, so nothing is sent when they refuse.
   */
  async #openStream(
    sessions: H2Sessions,
    url: URL,
    headers: Record<string, string | string[]>,
    request: {
      method: string;
      path: string;
      payload: Buffer | undefined;
      signal: AbortSignal | undefined;
      deadline: Deadline;
      timing: { sent: number } | undefined;
      use: keyof Agents;
      closed: () => boolean;
    },
  ): Promise<AnswerStream> {
    const { method, path, payload, signal, deadline, timing, closed } = request;
    // the deadline covers the waits for a request slot and a connection with room too: a server
    // that takes the connection and never answers its handshake must not hold the request
    let timeout: Error | undefined;
    let stream: http2.ClientHttp2Stream | undefined;
    const expiry = new AbortController();
    const timer = setTimeout(
      () => {
        timeout = new Error(`${method} ${path}: no complete answer from ${this.server} within ${deadline.ms} ms`);
        expiry.abort(timeout);
        stream?.destroy(timeout);
      },
      Math.max(0, deadline.at - performance.now()),
    );
    timer.unref();
    const until = signal ? AbortSignal.any([expiry.signal, signal]) : expiry.signal;
    const streamHeaders: http2.OutgoingHttpHeaders = { ":method": method, ":path": url.pathname + url.search };
    for (const [key, value] of Object.entries(headers)) streamHeaders[key.toLowerCase()] = value;
    let refused: Error | undefined;
    let release = () => {};
    try {
      if (request.use === "requests") release = await this.#connection.slot(until);
      stream = await sessions.request(
        streamHeaders,
        { endStream: payload === undefined, waitSignal: until, ...(signal ? { signal } : {}) },
        () => {
          refused = closed()
            ? new Error(`${method} ${path}: client for ${this.server} is closed`)
            : this.#refusal(method);
          return refused;
        },
      );
    } catch (err) {
      clearTimeout(timer);
      release();
      if (timeout !== undefined) throw timeout;
      throw err === refused || (err instanceof Error && err.name === "AbortError") || err === signal?.reason
        ? err
        : wrapNetworkError(method, path, err instanceof Error ? err : new Error(String(err)));
    }
    const opened = stream;
    opened.once("close", release);
    this.#tally.requests++;
    if (timing !== undefined) timing.sent = performance.now();
    if (payload !== undefined) opened.end(payload);
    return new Promise((resolve, reject) => {
      let answered = false;
      opened.on("error", (err) => {
        clearTimeout(timer);
        if (answered) return;
        if (timeout !== undefined) reject(timeout);
        else reject(err.name === "AbortError" ? err : wrapNetworkError(method, path, err));
      });
      opened.once("response", (responseHeaders) => {
        answered = true;
        resolve(new H2Answer(opened, responseHeaders));
      });
      opened.once("close", () => {
        clearTimeout(timer);
        if (!answered) {
          reject(
            timeout ?? new Error(`${method} ${path}: the stream closed before an answer (code ${opened.rstCode})`),
          );
        }
      });
    });
  }

  /** The Error of the first gate refusing a write now, if one does. */
  #refusal(method: string): Error | undefined {
    if (method === "GET") return undefined;
    for (const gate of this.#gates) {
      const refused = gate();
      if (refused !== undefined) return refused;
    }
    return undefined;
  }
}

function wrapNetworkError(method: string, path: string, err: Error): Error {
  return new Error(`${method} ${path}: ${err.message}`, { cause: err });
}

/**
 * How long a 429 asks us to wait: Retry-After, else the Status's retryAfterSeconds, at most
 * maxRetryAfterMs; a hint that is no finite number of seconds >= 0 is ignored (a timer given NaN,
 * a negative or an overlarge number fires at once).
 */
function retryDelayMs(response: Response): number {
  const header = response.headers["retry-after"];
  const hints = [
    header === undefined || header.trim() === "" ? Number.NaN : Number(header),
    asStatus(response.body)?.details?.retryAfterSeconds,
  ];
  const seconds = hints.find((hint) => typeof hint === "number" && Number.isFinite(hint) && hint >= 0);
  return seconds === undefined ? defaultRetryAfterMs : Math.min(maxRetryAfterMs, seconds * 1000);
}

/** the expired continue token's 410, for list() to list again in one go */
class ContinueExpired extends Error {
  readonly expired: KubeApiError;

  constructor(expired: KubeApiError) {
    super(expired.message);
    this.expired = expired;
  }
}

/** a continue token for a message: it comes from the server, so only its start, quoted */
function describeToken(token: string): string {
  return token.length <= 40
    ? JSON.stringify(token)
    : `${JSON.stringify(token.slice(0, 40))}… (${token.length} characters)`;
}

async function sleepOrAbort(ms: number, signal: AbortSignal): Promise<void> {
  try {
    await sleep(ms, undefined, { signal });
  } catch {
    // aborted: the caller checks signal.aborted
  }
}
