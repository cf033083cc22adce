// Throwaway PKI for mTLS tests, made with the openssl command.
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export type KeyPair = { cert: Buffer; key: Buffer };

export type Pki = {
  ca: Buffer;
  /** tls.crt, tls.key and ca.crt: the layout Crossplane mounts for a function */
  serverDir: string;
  client: KeyPair;
  /** a client certificate from another CA, which the server must refuse */
  foreignClient: KeyPair;
  /**
   * what `crossplane core init` issues: signed by the CA, but with the CA's name as subject and
   * issuer and no key identifiers, so OpenSSL calls it self-signed
   */
  crossplaneLikeClient: KeyPair;
};

const newKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];

export function makePki(): Pki {
  const dir = mkdtempSync(join(tmpdir(), "klb-pki-"));
  const openssl = (...args: string[]) =>
    execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
  const ca = (name: string) =>
    openssl(
      "req",
      "-x509",
      ...newKey,
      "-days",
      "2",
      "-subj",
      `/CN=${name}`,
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.crt`,
    );
  const issue = (issuer: string, name: string, extensions: string, subject = `/CN=${name}`) => {
    writeFileSync(join(dir, `${name}.ext`), extensions);
    openssl("req", ...newKey, "-subj", subject, "-keyout", `${name}.key`, "-out", `${name}.csr`);
    openssl(
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      `${issuer}.crt`,
      "-CAkey",
      `${issuer}.key`,
      "-CAcreateserial",
      "-days",
      "2",
      "-extfile",
      `${name}.ext`,
      "-out",
      `${name}.crt`,
    );
  };
  ca("ca");
  ca("foreign-ca");
  issue("ca", "server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
  issue("ca", "client", "extendedKeyUsage=clientAuth\n");
  issue("foreign-ca", "foreign-client", "extendedKeyUsage=clientAuth\n");
  issue(
    "ca",
    "crossplane-client",
    "extendedKeyUsage=clientAuth\nsubjectKeyIdentifier=none\nauthorityKeyIdentifier=none\n",
    "/CN=ca",
  );

  const serverDir = join(dir, "server");
  mkdirSync(serverDir);
  copyFileSync(join(dir, "server.crt"), join(serverDir, "tls.crt"));
  copyFileSync(join(dir, "server.key"), join(serverDir, "tls.key"));
  copyFileSync(join(dir, "ca.crt"), join(serverDir, "ca.crt"));
  const read = (file: string) => readFileSync(join(dir, file));
  return {
    ca: read("ca.crt"),
    serverDir,
    client: { cert: read("client.crt"), key: read("client.key") },
    foreignClient: { cert: read("foreign-client.crt"), key: read("foreign-client.key") },
    crossplaneLikeClient: { cert: read("crossplane-client.crt"), key: read("crossplane-client.key") },
  };
}
