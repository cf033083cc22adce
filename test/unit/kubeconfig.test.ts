// Kubeconfigs read without @kubernetes/client-node (src/kube/kubeconfig.ts): every field, the
// defaults and merges kubectl has, the pod's service account, and errors that name the field and
// never a secret.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import { KubeClient } from "../../src/kube/client.ts";
import {
  clusterAccess,
  defaultKubeconfig,
  inClusterKubeconfig,
  mergeKubeconfigs,
  type ParsedKubeconfig,
  parseKubeconfig,
  readKubeconfigFile,
  readKubeconfigFiles,
} from "../../src/kube/kubeconfig.ts";
import { assertSelfContained } from "../../src/kube/self-contained.ts";

const secret = "s3cr3t-do-not-print";
const b64 = (text: string) => Buffer.from(text).toString("base64");

type Doc = Record<string, unknown>;

/** A kubeconfig of one context, with overrides of its cluster, user and context. */
function doc(cluster: Doc = {}, user: Doc = { token: secret }, context: Doc = {}): Doc {
  return {
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "c", cluster: { server: "https://k.example:6443", ...cluster } }],
    users: [{ name: "u", user }],
    contexts: [{ name: "x", context: { cluster: "c", user: "u", ...context } }],
    "current-context": "x",
  };
}

const text = (d: Doc) => JSON.stringify(d);

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), "klb-kubeconfig-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** An error that names what and leaks no secret. */
function failsWith(fn: () => unknown, what: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof Error);
    assert.match(err.message, what);
    assert.ok(!err.message.includes(secret), `leaks the secret: ${err.message}`);
    assert.ok(!err.message.includes("cGFzc3dvcmQ"), `leaks base64: ${err.message}`);
    return true;
  });
}

async function rejectsWith(promise: Promise<unknown>, what: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof Error);
    assert.match(err.message, what);
    assert.ok(!err.message.includes(secret), `leaks the secret: ${err.message}`);
    return true;
  });
}

describe("parseKubeconfig", () => {
  it("reads every field of clusters, users and contexts", () => {
    const config = parseKubeconfig(
      text({
        clusters: [
          {
            name: "c",
            cluster: {
              server: "https://k.example:6443",
              "certificate-authority": "/etc/ca.crt",
              "insecure-skip-tls-verify": true,
              "tls-server-name": "api.internal",
              "proxy-url": "http://proxy:3128",
              "disable-compression": true,
              extensions: [{ name: "e", extension: {} }],
            },
          },
          { name: "d", cluster: { server: "https://d", "certificate-authority-data": b64("CA") } },
        ],
        users: [
          {
            name: "u",
            user: {
              token: secret,
              "token-file": "/t",
              "client-certificate": "/c.crt",
              "client-key": "/c.key",
              as: "jane",
              "as-groups": ["g"],
            },
          },
          { name: "v", user: { "client-certificate-data": b64("C"), "client-key-data": b64("K") } },
          { name: "w", user: { username: "admin", password: secret } },
          { name: "e", user: { exec: { command: "plugin", apiVersion: "client.authentication.k8s.io/v1" } } },
          { name: "a", user: { "auth-provider": { name: "oidc", config: { "id-token": secret } } } },
          { name: "none", user: null },
        ],
        contexts: [
          { name: "x", context: { cluster: "c", user: "u", namespace: "ns" } },
          { name: "y", context: { cluster: "d" } },
        ],
        "current-context": "y",
        preferences: {},
      }),
    );
    assert.deepEqual(config.clusters.get("c"), {
      server: "https://k.example:6443",
      certificateAuthority: "/etc/ca.crt",
      insecureSkipTlsVerify: true,
      tlsServerName: "api.internal",
      proxyUrl: "http://proxy:3128",
    });
    assert.deepEqual(config.clusters.get("d"), {
      server: "https://d",
      certificateAuthorityData: b64("CA"),
      insecureSkipTlsVerify: false,
    });
    assert.deepEqual(config.users.get("u"), {
      token: secret,
      tokenFile: "/t",
      clientCertificate: "/c.crt",
      clientKey: "/c.key",
      impersonate: "jane",
      unsupported: ["as-groups"],
    });
    assert.deepEqual(config.users.get("v"), {
      clientCertificateData: b64("C"),
      clientKeyData: b64("K"),
      unsupported: [],
    });
    assert.deepEqual(config.users.get("w"), { username: "admin", password: secret, unsupported: [] });
    assert.deepEqual(config.users.get("e")?.exec, { command: "plugin", apiVersion: "client.authentication.k8s.io/v1" });
    assert.equal(config.users.get("a")?.authProvider?.name, "oidc");
    assert.deepEqual(config.users.get("none"), { unsupported: [] });
    assert.deepEqual(config.contexts.get("x"), { cluster: "c", user: "u", namespace: "ns" });
    assert.deepEqual(config.contexts.get("y"), { cluster: "d" });
    assert.equal(config.currentContext, "y");
    assert.equal(config.origin, "kubeconfig");
  });

  it("treats empty strings and nulls as absent, and an empty file as an empty kubeconfig", () => {
    const config = parseKubeconfig(
      text(doc({ "tls-server-name": "" }, { token: "", username: null }, { namespace: "" })),
    );
    assert.deepEqual(config.users.get("u"), { unsupported: [] });
    assert.deepEqual(config.contexts.get("x"), { cluster: "c", user: "u" });
    const empty = parseKubeconfig("");
    assert.equal(empty.contexts.size, 0);
    failsWith(() => clusterAccess(empty), /^invalid kubeconfig: no contexts$/);
  });

  it("takes paths in a file relative to the file's directory, in text as written", () => {
    const confDir = join(dir, "relative", "conf");
    mkdirSync(confDir, { recursive: true });
    const file = join(confDir, "config");
    writeFileSync(
      file,
      text(
        doc(
          { "certificate-authority": "ca.crt" },
          { "client-certificate": "../certs/c.crt", "client-key": "/abs/c.key", "token-file": "tok" },
        ),
      ),
    );
    const fromFile = readKubeconfigFile(file);
    assert.equal(fromFile.clusters.get("c")?.certificateAuthority, join(confDir, "ca.crt"));
    assert.equal(fromFile.users.get("u")?.clientCertificate, join(dir, "relative", "certs", "c.crt"));
    assert.equal(fromFile.users.get("u")?.clientKey, "/abs/c.key");
    assert.equal(fromFile.users.get("u")?.tokenFile, join(confDir, "tok"));
    assert.equal(fromFile.origin, `kubeconfig ${file}`);
    const fromText = parseKubeconfig(text(doc({ "certificate-authority": "ca.crt" })));
    assert.equal(fromText.clusters.get("c")?.certificateAuthority, "ca.crt");
  });
});

describe("errors", () => {
  const cases: Array<[string, () => unknown, RegExp]> = [
    [
      "YAML that does not parse",
      () => parseKubeconfig(`users: [{name: u, user: {token: ${secret}`),
      /^invalid kubeconfig: /,
    ],
    ["not a mapping", () => parseKubeconfig(`- ${secret}\n`), /^invalid kubeconfig: not a YAML or JSON object$/],
    ["clusters not a list", () => parseKubeconfig(text({ clusters: { c: {} } })), /clusters must be a list/],
    ["an entry not a mapping", () => parseKubeconfig(text({ users: [secret] })), /users\[0\] must be a mapping/],
    [
      "a nameless cluster",
      () => parseKubeconfig(text({ clusters: [{ cluster: { server: "https://x" } }] })),
      /clusters\[0\]\.name is missing/,
    ],
    [
      "a cluster without server",
      () => parseKubeconfig(text(doc({ server: "" }))),
      /invalid kubeconfig: clusters\[0\]\.cluster\.server is missing/,
    ],
    [
      "a cluster body not a mapping",
      () => parseKubeconfig(text({ clusters: [{ name: "c", cluster: secret }] })),
      /clusters\[0\]\.cluster must be a mapping/,
    ],
    [
      "a token not a string",
      () => parseKubeconfig(text(doc({}, { token: [secret] }))),
      /users\[0\]\.user\.token must be a string/,
    ],
    [
      "a password not a string",
      () => parseKubeconfig(text(doc({}, { username: "a", password: { p: secret } }))),
      /users\[0\]\.user\.password must be a string/,
    ],
    [
      "client-key-data not base64",
      () => parseKubeconfig(text(doc({}, { "client-key-data": `${secret}!` }))),
      /users\[0\]\.user\.client-key-data is not base64/,
    ],
    [
      "certificate-authority-data not base64",
      () => parseKubeconfig(text(doc({ "certificate-authority-data": "a" }))),
      /clusters\[0\]\.cluster\.certificate-authority-data is not base64/,
    ],
    [
      "insecure-skip-tls-verify not a boolean",
      () => parseKubeconfig(text(doc({ "insecure-skip-tls-verify": "yes" }))),
      /clusters\[0\]\.cluster\.insecure-skip-tls-verify must be true or false/,
    ],
    [
      "exec not a mapping",
      () => parseKubeconfig(text(doc({}, { exec: secret }))),
      /users\[0\]\.user\.exec must be a mapping/,
    ],
    [
      "an auth-provider without name",
      () => parseKubeconfig(text(doc({}, { "auth-provider": { config: { "id-token": secret } } }))),
      /users\[0\]\.user\.auth-provider\.name is missing/,
    ],
    [
      "a name used twice",
      () =>
        parseKubeconfig(
          text({
            ...doc(),
            users: [
              { name: "u", user: {} },
              { name: "u", user: { token: secret } },
            ],
          }),
        ),
      /users\[1\]: a second entry named "u"/,
    ],
    [
      "a context without cluster",
      () => parseKubeconfig(text({ contexts: [{ name: "x", context: { user: "u" } }] })),
      /contexts\[0\]\.context\.cluster is missing/,
    ],
    [
      "current-context not a string",
      () => parseKubeconfig(text({ ...doc(), "current-context": 3 })),
      /current-context must be a string/,
    ],
  ];
  const access = (d: Doc) => () => clusterAccess(parseKubeconfig(text(d)));
  cases.push(
    ["no contexts", access({ ...doc(), contexts: [] }), /^invalid kubeconfig: no contexts$/],
    [
      "current-context missing",
      access({ ...doc(), "current-context": "gone" }),
      /current-context "gone" does not exist/,
    ],
    [
      "no current-context among two",
      access({
        ...doc(),
        contexts: [...(doc().contexts as Doc[]), { name: "y", context: { cluster: "c", user: "u" } }],
        "current-context": undefined,
      }),
      /current-context is not set and there are 2 contexts/,
    ],
    [
      "an unknown cluster",
      access(doc({}, { token: secret }, { cluster: "nope" })),
      /context "x" names cluster "nope", which does not exist/,
    ],
    [
      "an unknown user",
      access(doc({}, { token: secret }, { user: "nobody" })),
      /context "x" names user "nobody", which does not exist/,
    ],
    ["no user", access(doc({}, { token: secret }, { user: null })), /context "x" names no user/],
    ["an invalid server URL", access(doc({ server: `not a url ${secret}` })), /cluster "c" has an invalid server URL/],
    [
      "a server URL with credentials",
      access(doc({ server: `https://admin:${secret}@k.example` })),
      /cluster "c": the server URL must not carry credentials/,
    ],
    [
      "a server URL not http(s)",
      access(doc({ server: "ftp://k.example" })),
      /cluster "c": the server URL is not http\(s\)/,
    ],
    [
      "http without insecure-skip-tls-verify",
      access(doc({ server: "http://k.example" })),
      /cluster "c": an http: server needs insecure-skip-tls-verify: true/,
    ],
    [
      "proxy-url",
      access(doc({ "proxy-url": `http://u:${secret}@proxy:3128` })),
      /cluster "c": proxy-url is not supported/,
    ],
    [
      "as-groups",
      access(doc({}, { token: secret, as: "jane", "as-groups": ["admins"] })),
      /user "u": as-groups is not supported/,
    ],
    ["as-uid", access(doc({}, { token: secret, "as-uid": "1" })), /user "u": as-uid is not supported/],
    [
      "two CAs",
      access(doc({ "certificate-authority": "/ca", "certificate-authority-data": b64("CA") })),
      /certificate-authority and certificate-authority-data are both set/,
    ],
    [
      "two certificates",
      access(doc({}, { "client-certificate": "/c", "client-certificate-data": b64("C"), "client-key": "/k" })),
      /client-certificate and client-certificate-data are both set/,
    ],
    [
      "two keys",
      access(doc({}, { "client-certificate": "/c", "client-key": "/k", "client-key-data": b64("password") })),
      /client-key and client-key-data are both set/,
    ],
    [
      "a certificate without key",
      access(doc({}, { "client-certificate-data": b64("C") })),
      /user "u": a client certificate without a client key/,
    ],
    [
      "a key without certificate",
      access(doc({}, { "client-key-data": b64("password") })),
      /user "u": a client key without a client certificate/,
    ],
    ["a password without username", access(doc({}, { password: secret })), /user "u": password without username/],
    [
      "a token and a username",
      access(doc({}, { token: secret, username: "admin", password: secret })),
      /user "u": a token and a username\/password are both set/,
    ],
    [
      "a token-file and a username",
      access(doc({}, { "token-file": "/t", username: "admin" })),
      /user "u": a token and a username\/password are both set/,
    ],
  );
  for (const [name, fn, what] of cases) {
    it(`names the field: ${name}`, () => failsWith(fn, what));
  }

  it("names the file and its fields", () => {
    const file = join(dir, "broken.yaml");
    writeFileSync(file, text(doc({}, { token: 7 })));
    failsWith(
      () => readKubeconfigFile(file),
      new RegExp(`^invalid kubeconfig ${file}: users\\[0\\]\\.user\\.token must be a string$`),
    );
    failsWith(() => readKubeconfigFile(join(dir, "absent.yaml")), /^kubeconfig .*absent\.yaml: ENOENT/);
  });

  it("says which file a certificate or token could not be read from, when it is read", async () => {
    const missing = parseKubeconfig(
      text(doc({ "certificate-authority": join(dir, "no-ca.crt") }, { "token-file": join(dir, "no-token") })),
    );
    const access = clusterAccess(missing);
    await rejectsWith(access.tls(), /cluster "c" certificate-authority: ENOENT.*no-ca\.crt/);
    await rejectsWith(access.credentials(), /user "u" token-file: ENOENT.*no-token/);
    const empty = join(dir, "empty-token");
    writeFileSync(empty, "\n");
    await rejectsWith(
      clusterAccess(parseKubeconfig(text(doc({}, { "token-file": empty })))).credentials(),
      /user "u" token-file .*empty-token is empty/,
    );
  });
});

describe("clusterAccess", () => {
  it("takes the only context when none is current, with its namespace", () => {
    const access = clusterAccess(
      parseKubeconfig(text({ ...doc({}, {}, { namespace: "team" }), "current-context": "" })),
    );
    assert.equal(access.context, "x");
    assert.equal(access.cluster, "c");
    assert.equal(access.user, "u");
    assert.equal(access.namespace, "team");
    assert.equal(access.server.href, "https://k.example:6443/");
  });

  it("is the same for the same kubeconfig (clients share an exec plugin's credentials)", () => {
    const config = parseKubeconfig(text(doc()));
    assert.equal(clusterAccess(config), clusterAccess(config));
  });

  it("gives TLS material from data and from files", async () => {
    writeFileSync(join(dir, "ca.crt"), "CA FILE");
    writeFileSync(join(dir, "c.crt"), "CERT FILE");
    writeFileSync(join(dir, "c.key"), "KEY FILE");
    const fromData = clusterAccess(
      parseKubeconfig(
        text(
          doc(
            { "certificate-authority-data": b64("CA"), "tls-server-name": "api.internal" },
            { "client-certificate-data": b64("CERT"), "client-key-data": b64("KEY") },
          ),
        ),
      ),
    );
    assert.deepEqual(await fromData.tls(), {
      ca: Buffer.from("CA"),
      cert: Buffer.from("CERT"),
      key: Buffer.from("KEY"),
      servername: "api.internal",
    });
    const file = join(dir, "files.yaml");
    writeFileSync(
      file,
      text(doc({ "certificate-authority": "ca.crt" }, { "client-certificate": "c.crt", "client-key": "c.key" })),
    );
    assert.deepEqual(await clusterAccess(readKubeconfigFile(file)).tls(), {
      ca: Buffer.from("CA FILE"),
      cert: Buffer.from("CERT FILE"),
      key: Buffer.from("KEY FILE"),
    });
    const insecure = clusterAccess(parseKubeconfig(text(doc({ "insecure-skip-tls-verify": true }))));
    assert.deepEqual(await insecure.tls(), { rejectUnauthorized: false });
  });

  it("gives headers for a token, basic auth, impersonation and no credentials; they never expire", async () => {
    const headers = async (user: Doc) => {
      const creds = await clusterAccess(parseKubeconfig(text(doc({}, user)))).credentials();
      assert.equal(creds.expires, Number.POSITIVE_INFINITY);
      return creds.headers;
    };
    assert.deepEqual(await headers({ token: secret }), { authorization: `Bearer ${secret}` });
    assert.deepEqual(await headers({ token: secret, "token-file": "/never/read" }), {
      authorization: `Bearer ${secret}`,
    });
    assert.deepEqual(await headers({ username: "admin", password: "pw" }), {
      authorization: `Basic ${b64("admin:pw")}`,
    });
    assert.deepEqual(await headers({ username: "admin" }), { authorization: `Basic ${b64("admin:")}` });
    assert.deepEqual(await headers({ token: secret, as: "jane" }), {
      authorization: `Bearer ${secret}`,
      "impersonate-user": "jane",
    });
    assert.deepEqual(await headers({}), {});
  });

  it("reads a token-file again on every ask, good for a minute", async () => {
    const tokenFile = join(dir, "rotating-token");
    writeFileSync(tokenFile, "first\n");
    const access = clusterAccess(parseKubeconfig(text(doc({}, { "token-file": tokenFile }))));
    const first = await access.credentials();
    assert.deepEqual(first.headers, { authorization: "Bearer first" });
    assert.ok(Math.abs(first.expires - (Date.now() + 60_000)) < 5_000, "expires in a minute");
    writeFileSync(tokenFile, "second");
    assert.deepEqual((await access.credentials()).headers, { authorization: "Bearer second" });
  });
});

describe("KUBECONFIG and the default kubeconfig", () => {
  function writeConfig(name: string, d: Doc): string {
    const file = join(dir, name);
    writeFileSync(file, text(d));
    return file;
  }

  it("merges files, the first entry of a name and the first current-context winning", () => {
    const first = writeConfig("first.yaml", {
      clusters: [{ name: "c", cluster: { server: "https://first", "certificate-authority": "ca.crt" } }],
      users: [{ name: "u", user: { token: "first" } }],
      contexts: [{ name: "x", context: { cluster: "c", user: "u" } }],
    });
    mkdirSync(join(dir, "second"), { recursive: true });
    const second = writeConfig("second/config", {
      clusters: [
        { name: "c", cluster: { server: "https://second" } },
        { name: "d", cluster: { server: "https://d", "certificate-authority": "ca.crt" } },
      ],
      users: [{ name: "u", user: { token: "second" } }],
      contexts: [
        { name: "x", context: { cluster: "d", user: "u" } },
        { name: "y", context: { cluster: "d", user: "u", namespace: "n" } },
      ],
      "current-context": "y",
    });
    const third = writeConfig("third.yaml", { ...doc(), "current-context": "x" });
    const merged = readKubeconfigFiles(["", first, join(dir, "missing.yaml"), second, third]);
    assert.equal(merged.clusters.get("c")?.server, "https://first");
    assert.equal(merged.clusters.get("c")?.certificateAuthority, join(dir, "ca.crt"));
    assert.equal(merged.clusters.get("d")?.certificateAuthority, join(dir, "second", "ca.crt"));
    assert.equal(merged.users.get("u")?.token, "first");
    assert.equal(merged.contexts.get("x")?.cluster, "c");
    assert.equal(merged.currentContext, "y");
    assert.deepEqual([...merged.contexts.keys()], ["x", "y"]);
    const access = clusterAccess(merged);
    assert.equal(access.server.origin, "https://d");
    assert.equal(access.namespace, "n");
    assert.equal(merged.origin, `kubeconfig ${first}:${second}:${third}`);

    const viaEnv = defaultKubeconfig({ env: { KUBECONFIG: `${first}:${second}` }, home: "/nonexistent" });
    assert.equal(viaEnv.currentContext, "y");
    assert.equal(mergeKubeconfigs([viaEnv]), viaEnv);
    failsWith(
      () => readKubeconfigFiles([join(dir, "a.yaml"), join(dir, "b.yaml")]),
      /no kubeconfig: none of .*a\.yaml:.*b\.yaml exists/,
    );
    failsWith(() => readKubeconfigFiles([""]), /KUBECONFIG names no file/);
  });

  it("falls back to ~/.kube/config, then the pod's service account, then says there is none", () => {
    const home = join(dir, "home");
    mkdirSync(join(home, ".kube"), { recursive: true });
    writeFileSync(join(home, ".kube", "config"), text(doc({ server: "https://from-home" })));
    const sa = join(dir, "no-sa");
    assert.equal(
      clusterAccess(defaultKubeconfig({ env: {}, home, serviceAccountDir: sa })).server.origin,
      "https://from-home",
    );
    assert.equal(
      clusterAccess(defaultKubeconfig({ env: { HOME: home }, serviceAccountDir: sa })).server.origin,
      "https://from-home",
    );
    const podDir = join(dir, "pod-sa");
    mkdirSync(podDir, { recursive: true });
    writeFileSync(join(podDir, "token"), "pod-token");
    const inPod = defaultKubeconfig({
      env: { KUBERNETES_SERVICE_HOST: "10.0.0.1", KUBERNETES_SERVICE_PORT: "443" },
      home: join(dir, "nohome"),
      serviceAccountDir: podDir,
    });
    assert.equal(inPod.origin, "in-cluster config");
    failsWith(
      () => defaultKubeconfig({ env: {}, home: join(dir, "nohome"), serviceAccountDir: sa }),
      /no kubeconfig: KUBECONFIG is not set and .*nohome\/\.kube\/config does not exist/,
    );
  });
});

describe("inClusterKubeconfig", () => {
  let sa: string;
  beforeEach(() => {
    sa = mkdtempSync(join(dir, "sa-"));
    writeFileSync(join(sa, "token"), "token-1");
    writeFileSync(join(sa, "ca.crt"), "POD CA");
    writeFileSync(join(sa, "namespace"), "crossplane-system");
  });

  it("reads the service account's files and the service's address", async () => {
    const config = inClusterKubeconfig({
      env: { KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "443" },
      dir: sa,
    });
    const access = clusterAccess(config);
    assert.equal(access.server.href, "https://10.96.0.1/");
    assert.equal(access.namespace, "crossplane-system");
    assert.deepEqual(await access.tls(), { ca: Buffer.from("POD CA") });
    const creds = await access.credentials();
    assert.deepEqual(creds.headers, { authorization: "Bearer token-1" });
    assert.ok(creds.expires < Date.now() + 61_000, "the token is read again within a minute");
    writeFileSync(join(sa, "token"), "token-2");
    assert.deepEqual((await access.credentials()).headers, { authorization: "Bearer token-2" });
  });

  it("puts an IPv6 address in brackets and does without a namespace file", () => {
    rmSync(join(sa, "namespace"));
    const access = clusterAccess(
      inClusterKubeconfig({ env: { KUBERNETES_SERVICE_HOST: "fd00::1", KUBERNETES_SERVICE_PORT: "6443" }, dir: sa }),
    );
    assert.equal(access.server.host, "[fd00::1]:6443");
    assert.equal(access.namespace, undefined);
  });

  it("says when this is not a pod", () => {
    failsWith(() => inClusterKubeconfig({ env: {}, dir: sa }), /not in a cluster \(KUBERNETES_SERVICE_HOST/);
  });
});

describe("KubeClient.fromConfig against a scripted server", () => {
  let server: Server;
  let seen: IncomingMessage["headers"][] = [];
  let url: string;
  before(async () => {
    server = createServer((req, res) => {
      seen.push(req.headers);
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ gitVersion: "v1.99.0" }));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  beforeEach(() => {
    seen = [];
  });

  function config(user: Doc): ParsedKubeconfig {
    return parseKubeconfig(text(doc({ server: url, "insecure-skip-tls-verify": true }, user)));
  }

  it("re-reads a token-file after a minute, and at once after a 401", async (t) => {
    const tokenFile = join(dir, "client-token");
    writeFileSync(tokenFile, "one");
    t.mock.timers.enable({ apis: ["Date"], now: Date.now() });
    const client = KubeClient.fromConfig(config({ "token-file": tokenFile }));
    try {
      await client.serverVersion();
      writeFileSync(tokenFile, "two");
      await client.serverVersion();
      t.mock.timers.tick(61_000);
      await client.serverVersion();
      assert.deepEqual(
        seen.map((h) => h.authorization),
        ["Bearer one", "Bearer one", "Bearer two"],
      );
    } finally {
      client.close();
    }
  });

  it("sends as's Impersonate-User, overridden by an impersonating client", async () => {
    const client = KubeClient.fromConfig(config({ token: secret, as: "jane" }));
    try {
      await client.serverVersion();
      await client.impersonating({ username: "bob" }).serverVersion();
      assert.deepEqual(
        seen.map((h) => [h.authorization, h["impersonate-user"]]),
        [
          [`Bearer ${secret}`, "jane"],
          [`Bearer ${secret}`, "bob"],
        ],
      );
    } finally {
      client.close();
    }
  });

  it("runs an exec plugin through client-node, loaded for it", async () => {
    const plugin = join(dir, "exec-plugin.sh");
    writeFileSync(
      plugin,
      `#!/bin/sh\necho '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"from-exec"}}'\n`,
    );
    chmodSync(plugin, 0o755);
    const client = KubeClient.fromConfig(
      config({ exec: { apiVersion: "client.authentication.k8s.io/v1", command: plugin, interactiveMode: "Never" } }),
    );
    try {
      await client.serverVersion();
      assert.equal(seen[0]?.authorization, "Bearer from-exec");
    } finally {
      client.close();
    }
  });
});

describe("the cost of a plain kubeconfig", () => {
  // In a process of its own: which modules a token kubeconfig loads, and an exec one.
  const probe = (user: string) => `
    import { registerHooks } from "node:module";
    const loaded = [];
    registerHooks({ resolve(specifier, context, next) { const r = next(specifier, context); loaded.push(r.url); return r; } });
    const { KubeClient } = await import(${JSON.stringify(new URL("../../src/kube/client.ts", import.meta.url).href)});
    const { createServer } = await import("node:http");
    const server = createServer((req, res) => { res.setHeader("content-type", "application/json"); res.end('{"gitVersion":"v1.99.0"}'); });
    await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
    const kubeconfig = JSON.stringify({
      clusters: [{ name: "c", cluster: { server: "http://127.0.0.1:" + server.address().port, "insecure-skip-tls-verify": true } }],
      users: [{ name: "u", user: ${user} }],
      contexts: [{ name: "x", context: { cluster: "c", user: "u" } }],
    });
    const client = KubeClient.fromKubeconfigText(kubeconfig);
    await client.serverVersion();
    client.close();
    server.close();
    console.log(JSON.stringify({ clientNode: loaded.filter((u) => u.includes("@kubernetes/client-node")).length }));
  `;
  const run = (user: string): { clientNode: number } => {
    const child = spawnSync(process.execPath, ["--input-type=module", "-e", probe(user)], {
      encoding: "utf8",
      timeout: 60_000,
    });
    assert.equal(child.status, 0, child.stderr);
    return JSON.parse(child.stdout.trim().split("\n").at(-1) ?? "{}");
  };

  it("does not load @kubernetes/client-node for a token user, and does for an exec user", () => {
    assert.equal(run(`{ token: "t" }`).clientNode, 0);
    const plugin = join(dir, "probe-plugin.sh");
    writeFileSync(
      plugin,
      `#!/bin/sh\necho '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"x"}}'\n`,
    );
    chmodSync(plugin, 0o755);
    const exec = JSON.stringify({ exec: { apiVersion: "client.authentication.k8s.io/v1", command: plugin } });
    assert.ok(run(exec).clientNode > 0, "the probe sees client-node when it is loaded");
  });
});

describe("YAML errors of an untrusted kubeconfig", () => {
  // each quotes the secret where a library's message could pick it up: an alias, a key, a line
  const kinds: Array<[string, string]> = [
    ["an unresolved alias", `users: [{name: u, user: {token: *${secret}}}]`],
    ["an unresolved alias in block style", `users:\n- name: u\n  user:\n    token: *${secret}\n`],
    ["a duplicate key", `users:\n- name: u\n  user:\n    token: a\n    token: ${secret}\n`],
    ["a duplicate secret key", `${secret}: 1\n${secret}: 2\n`],
    ["bad indentation", `users:\n  - name: u\n user: {token: ${secret}}\n`],
    ["a tab as indentation", `users:\n\t- {name: u, user: {token: ${secret}}}\n`],
    ["an unterminated quote", `users: [{name: u, user: {token: "${secret}}}]\n`],
    ["an unterminated flow mapping", `users: [{name: u, user: {token: ${secret}`],
    ["a bad escape", `users: [{name: u, user: {token: "\\q${secret}"}}]\n`],
    ["two anchors", `token: &${secret} &b x\n`],
    ["two documents", `a: 1\n---\n${secret}: 2\n`],
    ["a bad merge source", `a:\n  <<: ${secret}\n`],
    ["a nested compact mapping", `token: b: ${secret}\n`],
    [
      "too many aliases",
      `a: &${secret} [x, x, x, x, x, x, x, x, x, x]\nb: [${Array(200).fill(`*${secret}`).join(", ")}]\n`,
    ],
  ];
  for (const [kind, yaml] of kinds) {
    it(`${kind}: the message has no part of the text`, () => {
      for (const read of [() => parseKubeconfig(yaml), () => assertSelfContained(yaml)]) {
        assert.throws(read, (err: Error) => {
          assert.match(err.message, /^invalid kubeconfig: /);
          assert.doesNotMatch(err.message, /s3cr3t|do-not-print/, `${kind}: ${err.message}`);
          return true;
        });
      }
    });
  }

  it("names the kind and position of the error", () => {
    assert.throws(() => parseKubeconfig(`a: 1\n${secret}: [\n`), {
      message: /^invalid kubeconfig: YAML error BAD_INDENT at line 3, column 1$/,
    });
    assert.throws(() => parseKubeconfig(`token: *${secret}\n`), {
      message: /^invalid kubeconfig: YAML error BAD_ALIAS: an alias names no anchor set before it$/,
    });
  });
});
