import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { it } from "node:test";
import { ClientCertificateCheck } from "../../src/function/client-certs.ts";
import { makePki } from "../support/certs.ts";

const pki = makePki();
const der = (pem: Buffer) => new X509Certificate(pem).raw;

it("accepts client certificates of its CA, Crossplane's self-named one too", () => {
  const check = new ClientCertificateCheck(pki.ca);
  assert.equal(check.problem(der(pki.client.cert)), undefined);
  assert.equal(check.problem(der(pki.crossplaneLikeClient.cert)), undefined);
});

it("refuses certificates of another CA, for servers, out of their validity, or none at all", () => {
  const check = new ClientCertificateCheck(pki.ca);
  assert.match(check.problem(der(pki.foreignClient.cert)) ?? "", /not signed by a CA of ca\.crt/);
  const server = readFileSync(join(pki.serverDir, "tls.crt"));
  assert.match(check.problem(der(server)) ?? "", /not meant for client authentication/);
  const inThreeDays = Date.now() + 3 * 24 * 3600 * 1000;
  assert.match(check.problem(der(pki.client.cert), inThreeDays) ?? "", /is valid from .* to .* only/);
  assert.match(check.problem(undefined) ?? "", /a client certificate is required/);
  assert.match(check.problem(Buffer.from("not a certificate")) ?? "", /cannot be parsed/);
});

it("takes a bundle of CAs, and refuses a ca.crt without any", () => {
  const bundle = Buffer.concat([readFileSync(join(pki.serverDir, "ca.crt")), pki.ca]);
  assert.equal(new ClientCertificateCheck(bundle).problem(der(pki.client.cert)), undefined);
  assert.throws(() => new ClientCertificateCheck(Buffer.from("nothing")), /ca\.crt holds no PEM certificate/);
});
