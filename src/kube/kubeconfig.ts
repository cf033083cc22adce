// Kubeconfigs, read without @kubernetes/client-node. Importing that package costs 86 MiB of RSS
// (measured: bare node 42 MiB, after `import("@kubernetes/client-node")` 128 MiB) of the sync's
// 200 MiB budget (issue #14), and the sync needs of it only what is here: a kubeconfig file (or the
// pod's service account) read, and its current context turned into a server URL, TLS material and
// request headers. A user with an exec plugin or an auth-provider still goes through client-node,
// loaded only for that user, so such kubeconfigs work as they always did.
import { existsSync, readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import type * as https from "node:https";
import { isIPv6 } from "node:net";
import { homedir } from "node:os";
import { delimiter, dirname, isAbsolute, join, resolve } from "node:path";
import { readKubeconfigYaml, withoutSource } from "./self-contained.ts";

export type ClusterEntry = {
  readonly server: string;
  readonly certificateAuthority?: string;
  /** base64 */
  readonly certificateAuthorityData?: string;
  readonly insecureSkipTlsVerify: boolean;
  readonly tlsServerName?: string;
  /** kept to be refused when the cluster is used: requests are never sent through a proxy */
  readonly proxyUrl?: string;
};

export type UserEntry = {
  readonly token?: string;
  readonly tokenFile?: string;
  readonly clientCertificate?: string;
  /** base64 */
  readonly clientCertificateData?: string;
  readonly clientKey?: string;
  /** base64 */
  readonly clientKeyData?: string;
  readonly username?: string;
  readonly password?: string;
  /** `as`: the user every request is made for (Impersonate-User) */
  readonly impersonate?: string;
  /** the other impersonation fields this user sets (as-groups, as-uid, as-user-extra), refused when it is used */
  readonly unsupported: readonly string[];
  /** passed to client-node as written */
  readonly exec?: Readonly<Record<string, unknown>>;
  /** passed to client-node as written */
  readonly authProvider?: Readonly<Record<string, unknown>>;
};

export type ContextEntry = { readonly cluster: string; readonly user?: string; readonly namespace?: string };

/**
 * A kubeconfig as read: its entries by name, file paths in it absolute when it came from a file.
 * origin names it in messages ("kubeconfig", "kubeconfig /path", "in-cluster config").
 */
export type ParsedKubeconfig = {
  readonly clusters: ReadonlyMap<string, ClusterEntry>;
  readonly users: ReadonlyMap<string, UserEntry>;
  readonly contexts: ReadonlyMap<string, ContextEntry>;
  readonly currentContext: string | undefined;
  readonly origin: string;
};

/** What an https.Agent takes of a kubeconfig. */
export type TlsOptions = Pick<
  https.AgentOptions,
  "ca" | "cert" | "key" | "pfx" | "passphrase" | "rejectUnauthorized" | "servername"
>;

/** Request headers (lowercase names) and when to ask for them again (ms since the epoch). */
export type Credentials = { headers: Record<string, string>; expires: number };

/** The current context of a kubeconfig, resolved: where to connect, how, and as whom. */
export type ClusterAccess = {
  readonly server: URL;
  readonly context: string;
  readonly cluster: string;
  readonly user: string;
  /** the context's namespace */
  readonly namespace: string | undefined;
  /** read when a connection pool is made: files named in the kubeconfig are read then */
  tls(): Promise<TlsOptions>;
  credentials(): Promise<Credentials>;
};

/** An unusable kubeconfig. The message names the field, never a value of the kubeconfig's secrets. */
export class KubeconfigError extends Error {}

export const serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";

/** How long credentials that can change (token files, exec plugins, auth-providers) are used before asking again. */
export const refreshMs = 60_000;

type Doc = Record<string, unknown>;

function isRecord(value: unknown): value is Doc {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A name from the kubeconfig, for messages. */
function quote(name: string): string {
  return JSON.stringify(name.length > 100 ? `${name.slice(0, 100)}…` : name);
}

/** The fields of one entry, read strictly: the wrong type is an error naming the field. */
class Fields {
  readonly #doc: Doc;
  readonly #at: string;
  readonly #fail: (what: string) => KubeconfigError;

  constructor(doc: Doc, at: string, fail: (what: string) => KubeconfigError) {
    this.#doc = doc;
    this.#at = at;
    this.#fail = fail;
  }

  /** set to something: not absent, null, "" or an empty list */
  has(key: string): boolean {
    const value = this.#doc[key];
    return value !== undefined && value !== null && value !== "" && !(Array.isArray(value) && value.length === 0);
  }

  /** A string; absent, null and "" are undefined. */
  string(key: string): string | undefined {
    const value = this.#doc[key];
    if (value === undefined || value === null || value === "") return undefined;
    if (typeof value !== "string") throw this.#fail(`${this.#at}.${key} must be a string`);
    return value;
  }

  /** A path, relative ones taken from base (the kubeconfig file's directory). */
  path(key: string, base: string | undefined): string | undefined {
    const value = this.string(key);
    return value === undefined || base === undefined || isAbsolute(value) ? value : join(base, value);
  }

  /** base64 data; checked here so that a broken one fails when read, not in the TLS handshake. */
  base64(key: string): string | undefined {
    const value = this.string(key);
    if (value === undefined) return undefined;
    if (!/^[A-Za-z0-9+/\s]*=?=?\s*$/.test(value) || value.replace(/\s/g, "").length % 4 === 1) {
      throw this.#fail(`${this.#at}.${key} is not base64`);
    }
    return value;
  }

  boolean(key: string): boolean {
    const value = this.#doc[key];
    if (value === undefined || value === null) return false;
    if (typeof value !== "boolean") throw this.#fail(`${this.#at}.${key} must be true or false`);
    return value;
  }

  record(key: string): Doc | undefined {
    const value = this.#doc[key];
    if (value === undefined || value === null) return undefined;
    if (!isRecord(value)) throw this.#fail(`${this.#at}.${key} must be a mapping`);
    return value;
  }
}

/** The named entries of one list (clusters, users, contexts), in order; a name used twice is an error. */
function namedEntries<T>(
  doc: Doc,
  list: string,
  field: string,
  fail: (what: string) => KubeconfigError,
  read: (body: Fields, at: string) => T,
): Map<string, T> {
  const items = doc[list];
  const out = new Map<string, T>();
  if (items === undefined || items === null) return out;
  if (!Array.isArray(items)) throw fail(`${list} must be a list`);
  items.forEach((item: unknown, i: number) => {
    const at = `${list}[${i}]`;
    if (!isRecord(item)) throw fail(`${at} must be a mapping`);
    const name = new Fields(item, at, fail).string("name");
    if (name === undefined) throw fail(`${at}.name is missing`);
    if (out.has(name)) throw fail(`${at}: a second entry named ${quote(name)}`);
    const body = item[field];
    if (body !== undefined && body !== null && !isRecord(body)) throw fail(`${at}.${field} must be a mapping`);
    out.set(name, read(new Fields(body ?? {}, `${at}.${field}`, fail), `${at}.${field}`));
  });
  return out;
}

/**
 * Reads a kubeconfig. file, when it came from one, is where relative paths in it start (as kubectl
 * has it) and what messages call it. Throws a KubeconfigError naming the field that is wrong.
 */
export function parseKubeconfig(text: string, options: { file?: string } = {}): ParsedKubeconfig {
  const origin = options.file === undefined ? "kubeconfig" : `kubeconfig ${options.file}`;
  const fail = (what: string) => new KubeconfigError(`invalid ${origin}: ${what}`);
  let doc: unknown;
  try {
    doc = readKubeconfigYaml(text);
  } catch (err) {
    throw fail(withoutSource(err));
  }
  // an empty file is an empty kubeconfig (kubectl's view too): "no contexts" when it is used
  if (doc === null || doc === undefined) doc = {};
  if (!isRecord(doc)) throw fail("not a YAML or JSON object");
  const base = options.file === undefined ? undefined : dirname(resolve(options.file));

  const clusters = namedEntries(doc, "clusters", "cluster", fail, (c, at): ClusterEntry => {
    const server = c.string("server");
    if (server === undefined) throw fail(`${at}.server is missing`);
    return defined({
      server,
      certificateAuthority: c.path("certificate-authority", base),
      certificateAuthorityData: c.base64("certificate-authority-data"),
      insecureSkipTlsVerify: c.boolean("insecure-skip-tls-verify"),
      tlsServerName: c.string("tls-server-name"),
      proxyUrl: c.string("proxy-url"),
    });
  });

  const users = namedEntries(doc, "users", "user", fail, (u, at): UserEntry => {
    const authProvider = u.record("auth-provider");
    if (
      authProvider !== undefined &&
      new Fields(authProvider, `${at}.auth-provider`, fail).string("name") === undefined
    ) {
      throw fail(`${at}.auth-provider.name is missing`);
    }
    return defined({
      token: u.string("token"),
      tokenFile: u.path("token-file", base),
      clientCertificate: u.path("client-certificate", base),
      clientCertificateData: u.base64("client-certificate-data"),
      clientKey: u.path("client-key", base),
      clientKeyData: u.base64("client-key-data"),
      username: u.string("username"),
      password: u.string("password"),
      impersonate: u.string("as"),
      unsupported: ["as-groups", "as-uid", "as-user-extra"].filter((key) => u.has(key)),
      exec: u.record("exec"),
      authProvider,
    });
  });

  const contexts = namedEntries(doc, "contexts", "context", fail, (c, at): ContextEntry => {
    const cluster = c.string("cluster");
    if (cluster === undefined) throw fail(`${at}.cluster is missing`);
    return defined({ cluster, user: c.string("user"), namespace: c.string("namespace") });
  });

  const current = doc["current-context"];
  if (current !== undefined && current !== null && typeof current !== "string") {
    throw fail("current-context must be a string");
  }
  return { clusters, users, contexts, currentContext: current || undefined, origin };
}

/** obj without its undefined fields (for exact types and deepEqual). */
function defined<T extends object>(obj: T): T {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as T;
}

/** Reads and parses one kubeconfig file. */
export function readKubeconfigFile(file: string): ParsedKubeconfig {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new KubeconfigError(`kubeconfig ${file}: ${(err as Error).message}`);
  }
  return parseKubeconfig(text, { file });
}

/**
 * The kubeconfig of a list of files (KUBECONFIG's, split at ":"), merged as kubectl merges: the
 * first file that has an entry of a name, or a current-context, wins; a file that does not exist is
 * skipped, but not all of them.
 */
export function readKubeconfigFiles(files: readonly string[]): ParsedKubeconfig {
  const paths = files.filter((f) => f !== "");
  const found = paths.filter((f) => existsSync(f));
  if (found.length === 0) {
    throw new KubeconfigError(
      paths.length === 0 ? "KUBECONFIG names no file" : `no kubeconfig: none of ${paths.join(delimiter)} exists`,
    );
  }
  return mergeKubeconfigs(found.map(readKubeconfigFile));
}

/** configs merged, the first one of each name (and the first current-context) winning. */
export function mergeKubeconfigs(configs: readonly ParsedKubeconfig[]): ParsedKubeconfig {
  const [only] = configs;
  if (configs.length === 1 && only !== undefined) return only;
  const firstWins = <T>(pick: (c: ParsedKubeconfig) => ReadonlyMap<string, T>): Map<string, T> => {
    const out = new Map<string, T>();
    for (const config of configs) for (const [name, entry] of pick(config)) if (!out.has(name)) out.set(name, entry);
    return out;
  };
  return {
    clusters: firstWins((c) => c.clusters),
    users: firstWins((c) => c.users),
    contexts: firstWins((c) => c.contexts),
    currentContext: configs.find((c) => c.currentContext !== undefined)?.currentContext,
    origin: `kubeconfig ${configs.map((c) => c.origin.replace(/^kubeconfig /, "")).join(delimiter)}`,
  };
}

/**
 * The pod's own service account, as client-node's loadFromCluster has it: the API server from
 * KUBERNETES_SERVICE_HOST and _PORT, the CA, token and namespace files of dir; the token is read
 * again every minute (it rotates).
 */
export function inClusterKubeconfig(options: { env?: NodeJS.ProcessEnv; dir?: string } = {}): ParsedKubeconfig {
  const env = options.env ?? process.env;
  const dir = options.dir ?? serviceAccountDir;
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) {
    throw new KubeconfigError(
      "not in a cluster (KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set): give a kubeconfig",
    );
  }
  const namespaceFile = join(dir, "namespace");
  const namespace = existsSync(namespaceFile) ? readFileSync(namespaceFile, "utf8").trim() : "";
  return {
    clusters: new Map([
      [
        "inCluster",
        {
          server: `https://${isIPv6(host) ? `[${host}]` : host}:${port}`,
          certificateAuthority: join(dir, "ca.crt"),
          insecureSkipTlsVerify: false,
        },
      ],
    ]),
    users: new Map([["inClusterUser", { tokenFile: join(dir, "token"), unsupported: [] }]]),
    contexts: new Map([
      ["inClusterContext", defined({ cluster: "inCluster", user: "inClusterUser", namespace: namespace || undefined })],
    ]),
    currentContext: "inClusterContext",
    origin: "in-cluster config",
  };
}

/**
 * The kubeconfig a command-line tool uses, as kubectl finds it: the files of KUBECONFIG (merged),
 * else ~/.kube/config, else the pod's service account.
 */
export function defaultKubeconfig(
  options: { env?: NodeJS.ProcessEnv; home?: string; serviceAccountDir?: string } = {},
): ParsedKubeconfig {
  const env = options.env ?? process.env;
  if (env.KUBECONFIG) return readKubeconfigFiles(env.KUBECONFIG.split(delimiter));
  const home = options.home ?? (env.HOME || homedir());
  const file = join(home, ".kube", "config");
  if (existsSync(file)) return readKubeconfigFile(file);
  const dir = options.serviceAccountDir ?? serviceAccountDir;
  if (existsSync(join(dir, "token"))) return inClusterKubeconfig({ env, dir });
  throw new KubeconfigError(`no kubeconfig: KUBECONFIG is not set and ${file} does not exist (give --kubeconfig)`);
}

const resolved = new WeakMap<ParsedKubeconfig, ClusterAccess>();

/**
 * The current context of config (the only one, when none is named), checked and resolved; the
 * same object for the same config, so that clients of one kubeconfig share an exec plugin's
 * credentials. Throws a KubeconfigError saying what is wrong.
 */
export function clusterAccess(config: ParsedKubeconfig): ClusterAccess {
  let access = resolved.get(config);
  if (access === undefined) {
    access = resolveAccess(config);
    resolved.set(config, access);
  }
  return access;
}

function resolveAccess(config: ParsedKubeconfig): ClusterAccess {
  const origin = config.origin;
  const fail = (what: string) => new KubeconfigError(`invalid ${origin}: ${what}`);
  if (config.contexts.size === 0) throw fail("no contexts");
  const [onlyContext] = config.contexts.keys();
  const contextName = config.currentContext ?? (config.contexts.size === 1 ? onlyContext : undefined);
  if (contextName === undefined)
    throw fail(`current-context is not set and there are ${config.contexts.size} contexts`);
  const context = config.contexts.get(contextName);
  if (context === undefined) throw fail(`current-context ${quote(contextName)} does not exist`);
  const cluster = config.clusters.get(context.cluster);
  if (cluster === undefined) {
    throw fail(`context ${quote(contextName)} names cluster ${quote(context.cluster)}, which does not exist`);
  }
  if (context.user === undefined) throw fail(`context ${quote(contextName)} names no user`);
  const user = config.users.get(context.user);
  if (user === undefined) {
    throw fail(`context ${quote(contextName)} names user ${quote(context.user)}, which does not exist`);
  }
  const inCluster = `cluster ${quote(context.cluster)}`;
  const asUser = `user ${quote(context.user)}`;

  let server: URL;
  try {
    server = new URL(cluster.server);
  } catch {
    throw fail(`${inCluster} has an invalid server URL`);
  }
  if (server.protocol !== "https:" && server.protocol !== "http:")
    throw fail(`${inCluster}: the server URL is not http(s)`);
  if (server.username !== "" || server.password !== "") {
    throw fail(`${inCluster}: the server URL must not carry credentials`);
  }
  if (server.protocol === "http:" && !cluster.insecureSkipTlsVerify) {
    // as client-node has it: credentials in clear text only when the kubeconfig says it is insecure
    throw fail(`${inCluster}: an http: server needs insecure-skip-tls-verify: true`);
  }
  if (cluster.proxyUrl !== undefined) throw fail(`${inCluster}: proxy-url is not supported`);
  const [unsupported] = user.unsupported;
  if (unsupported !== undefined) throw fail(`${asUser}: ${unsupported} is not supported`);

  const base = {
    server,
    context: contextName,
    cluster: context.cluster,
    user: context.user,
    namespace: context.namespace,
  };
  if (user.exec !== undefined || user.authProvider !== undefined) {
    return { ...base, ...delegated(cluster, user, base) };
  }

  if (cluster.certificateAuthority !== undefined && cluster.certificateAuthorityData !== undefined) {
    throw fail(`${inCluster}: certificate-authority and certificate-authority-data are both set`);
  }
  if (user.clientCertificate !== undefined && user.clientCertificateData !== undefined) {
    throw fail(`${asUser}: client-certificate and client-certificate-data are both set`);
  }
  if (user.clientKey !== undefined && user.clientKeyData !== undefined) {
    throw fail(`${asUser}: client-key and client-key-data are both set`);
  }
  const hasCert = user.clientCertificate !== undefined || user.clientCertificateData !== undefined;
  const hasKey = user.clientKey !== undefined || user.clientKeyData !== undefined;
  if (hasCert !== hasKey) {
    throw fail(
      `${asUser}: ${hasCert ? "a client certificate without a client key" : "a client key without a client certificate"}`,
    );
  }
  if (user.password !== undefined && user.username === undefined) throw fail(`${asUser}: password without username`);
  if (user.username !== undefined && (user.token !== undefined || user.tokenFile !== undefined)) {
    throw fail(`${asUser}: a token and a username/password are both set; use one`);
  }

  const read = async (what: string, file: string): Promise<Buffer> => {
    try {
      return await readFile(file);
    } catch (err) {
      throw new KubeconfigError(`${origin}: ${what}: ${(err as Error).message}`);
    }
  };
  const tls = async (): Promise<TlsOptions> => {
    const options: TlsOptions = {};
    if (cluster.certificateAuthority !== undefined) {
      options.ca = await read(`${inCluster} certificate-authority`, cluster.certificateAuthority);
    } else if (cluster.certificateAuthorityData !== undefined) {
      options.ca = Buffer.from(cluster.certificateAuthorityData, "base64");
    }
    if (user.clientCertificate !== undefined) {
      options.cert = await read(`${asUser} client-certificate`, user.clientCertificate);
    } else if (user.clientCertificateData !== undefined) {
      options.cert = Buffer.from(user.clientCertificateData, "base64");
    }
    if (user.clientKey !== undefined) options.key = await read(`${asUser} client-key`, user.clientKey);
    else if (user.clientKeyData !== undefined) options.key = Buffer.from(user.clientKeyData, "base64");
    if (cluster.insecureSkipTlsVerify) options.rejectUnauthorized = false;
    if (cluster.tlsServerName !== undefined) options.servername = cluster.tlsServerName;
    return options;
  };

  const fixed: Record<string, string> = {};
  if (user.impersonate !== undefined) fixed["impersonate-user"] = user.impersonate;
  if (user.username !== undefined) {
    fixed.authorization = `Basic ${Buffer.from(`${user.username}:${user.password ?? ""}`).toString("base64")}`;
  }
  const token = user.token;
  const tokenFile = user.tokenFile;
  const credentials = async (): Promise<Credentials> => {
    if (token !== undefined) {
      // a token in the kubeconfig wins over its token-file, as in kubectl
      return { headers: { ...fixed, authorization: `Bearer ${token}` }, expires: Number.POSITIVE_INFINITY };
    }
    if (tokenFile !== undefined) {
      const fromFile = (await read(`${asUser} token-file`, tokenFile)).toString("utf8").trim();
      if (fromFile === "") throw new KubeconfigError(`${origin}: ${asUser} token-file ${tokenFile} is empty`);
      return { headers: { ...fixed, authorization: `Bearer ${fromFile}` }, expires: Date.now() + refreshMs };
    }
    return { headers: { ...fixed }, expires: Number.POSITIVE_INFINITY };
  };
  return { ...base, tls, credentials };
}

type ClientNodeConfig = InstanceType<typeof import("@kubernetes/client-node")["KubeConfig"]>;

/**
 * An exec plugin or auth-provider user: client-node, imported now, runs the plugin (and caches its
 * credential until it expires); its headers are asked for again every minute, as before.
 */
function delegated(
  cluster: ClusterEntry,
  user: UserEntry,
  names: { server: URL; context: string; cluster: string; user: string; namespace: string | undefined },
): Pick<ClusterAccess, "tls" | "credentials"> {
  let loaded: Promise<ClientNodeConfig> | undefined;
  const kubeConfig = (): Promise<ClientNodeConfig> => {
    loaded ??= import("@kubernetes/client-node").then(({ KubeConfig }) => {
      const kc = new KubeConfig();
      kc.loadFromString(JSON.stringify(clientNodeDocument(cluster, user, names)));
      return kc;
    });
    return loaded;
  };
  return {
    async tls() {
      const options: https.RequestOptions = {};
      await (await kubeConfig()).applyToHTTPSOptions(options);
      return defined({
        ca: options.ca,
        cert: options.cert,
        key: options.key,
        pfx: options.pfx,
        passphrase: options.passphrase,
        rejectUnauthorized: options.rejectUnauthorized,
        servername: options.servername,
      });
    },
    async credentials() {
      const options: https.RequestOptions = { headers: {} };
      await (await kubeConfig()).applyToHTTPSOptions(options);
      const headers: Record<string, string> = {};
      for (const [key, value] of Object.entries(options.headers ?? {})) {
        if (value !== undefined) headers[key.toLowerCase()] = String(value);
      }
      if (typeof options.auth === "string" && options.auth !== "") {
        headers.authorization = `Basic ${Buffer.from(options.auth).toString("base64")}`;
      }
      return { headers, expires: Date.now() + refreshMs };
    },
  };
}

/** The one context's kubeconfig, as client-node reads it (paths already absolute). */
function clientNodeDocument(
  cluster: ClusterEntry,
  user: UserEntry,
  names: { server: URL; context: string; cluster: string; user: string; namespace: string | undefined },
): Doc {
  return {
    apiVersion: "v1",
    kind: "Config",
    clusters: [
      {
        name: names.cluster,
        cluster: {
          server: cluster.server,
          "certificate-authority": cluster.certificateAuthority,
          "certificate-authority-data": cluster.certificateAuthorityData,
          "insecure-skip-tls-verify": cluster.insecureSkipTlsVerify,
          "tls-server-name": cluster.tlsServerName,
        },
      },
    ],
    users: [
      {
        name: names.user,
        user: {
          token: user.token,
          "token-file": user.tokenFile,
          "client-certificate": user.clientCertificate,
          "client-certificate-data": user.clientCertificateData,
          "client-key": user.clientKey,
          "client-key-data": user.clientKeyData,
          username: user.username,
          password: user.password,
          as: user.impersonate,
          exec: user.exec,
          "auth-provider": user.authProvider,
        },
      },
    ],
    contexts: [
      { name: names.context, context: { cluster: names.cluster, user: names.user, namespace: names.namespace } },
    ],
    "current-context": names.context,
  };
}
