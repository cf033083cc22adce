// mTLS with the client certificate judged here rather than by OpenSSL. Crossplane's
// `crossplane core init` issues its client certificate with the CA's own name as both subject and
// issuer and no authority key identifier. OpenSSL, and so Node's TLS, takes such a certificate for
// a self-signed one and ends the handshake (X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT), while Go, and
// so every Go function, accepts it. So the handshake asks for a client certificate without letting
// OpenSSL judge it, and each call goes through only when that certificate is signed by a CA of
// ca.crt, valid now, and meant for client authentication.
import { X509Certificate } from "node:crypto";
import { TLSSocket } from "node:tls";
import {
  ServerCredentials,
  ServerInterceptingCall,
  type ServerInterceptingCallInterface,
  type ServerInterceptor,
  status,
} from "@grpc/grpc-js";

const clientAuth = "1.3.6.1.5.5.7.3.2";
const anyExtendedKeyUsage = "2.5.29.37.0";

function pemBlocks(pem: Buffer): string[] {
  return pem.toString("utf8").match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

export class ClientCertificateCheck {
  readonly #cas: X509Certificate[];
  /** accepted certificates by fingerprint, with the end of their validity */
  readonly #accepted = new Map<string, number>();

  constructor(caPem: Buffer) {
    this.#cas = pemBlocks(caPem).map((block) => new X509Certificate(block));
    if (this.#cas.length === 0) throw new Error("ca.crt holds no PEM certificate");
  }

  /** Why the certificate (DER) is refused, or undefined when it is accepted. */
  problem(der: Buffer | undefined, now = Date.now()): string | undefined {
    if (der === undefined || der.length === 0) return "a client certificate is required";
    let leaf: X509Certificate;
    try {
      leaf = new X509Certificate(der);
    } catch {
      return "the client certificate cannot be parsed";
    }
    const validTo = Date.parse(leaf.validTo);
    if (this.#accepted.has(leaf.fingerprint256) && now <= validTo) return undefined;
    if (now < Date.parse(leaf.validFrom) || now > validTo) {
      return `the client certificate is valid from ${leaf.validFrom} to ${leaf.validTo} only`;
    }
    const usages = leaf.keyUsage;
    if (usages !== undefined && !usages.includes(clientAuth) && !usages.includes(anyExtendedKeyUsage)) {
      return "the client certificate is not meant for client authentication";
    }
    if (!this.#cas.some((ca) => leaf.checkIssued(ca) && leaf.verify(ca.publicKey))) {
      return `the client certificate (${leaf.subject.replaceAll("\n", ", ")}) is not signed by a CA of ca.crt`;
    }
    if (this.#accepted.size >= 64) this.#accepted.clear();
    this.#accepted.set(leaf.fingerprint256, validTo);
    return undefined;
  }
}

/** TLS that asks every client for a certificate and leaves judging it to the interceptor below. */
class RequestClientCertificate extends ServerCredentials {
  constructor(ca: Buffer, cert: Buffer, key: Buffer) {
    super({ requestCert: true, rejectUnauthorized: false }, { ca, cert, key });
  }
  _equals(other: ServerCredentials): boolean {
    return other === this;
  }
}

export function mtlsCredentials(ca: Buffer, cert: Buffer, key: Buffer): ServerCredentials {
  return new RequestClientCertificate(ca, cert, key);
}

/**
 * The certificate the peer sent. grpc-js's getAuthContext() hides it whenever OpenSSL did not
 * approve it, which is the case here by design, so it is read from the call's TLS socket; the only
 * interceptor gets grpc-js's own call object, whose `stream` is that connection's HTTP/2 stream.
 * Should grpc-js change that, no certificate is found and every call is refused (the mTLS tests
 * fail), never let through.
 */
function peerCertificate(call: ServerInterceptingCallInterface): Buffer | undefined {
  const socket = (call as { stream?: { session?: { socket?: unknown } } }).stream?.session?.socket;
  if (!(socket instanceof TLSSocket)) return undefined;
  return socket.getPeerCertificate().raw;
}

/** Refuses a call before its message is read when the peer's certificate does not pass `check`. */
export function clientCertificateInterceptor(check: ClientCertificateCheck): ServerInterceptor {
  return (_method, call: ServerInterceptingCallInterface) =>
    new ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, pass) => {
            const problem = check.problem(peerCertificate(call));
            if (problem === undefined) pass(metadata);
            else call.sendStatus({ code: status.UNAUTHENTICATED, details: problem });
          },
        }),
    });
}
