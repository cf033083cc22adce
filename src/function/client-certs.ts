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
    if (now < Date.parse(leaf.validFrom) || now > Date.parse(leaf.validTo)) {
      return `the client certificate is valid from ${leaf.validFrom} to ${leaf.validTo} only`;
    }
    const usages = leaf.keyUsage;
    if (usages !== undefined && !usages.includes(clientAuth) && !usages.includes(anyExtendedKeyUsage)) {
      return "the client certificate is not meant for client authentication";
    }
    if (!this.#cas.some((ca) => leaf.checkIssued(ca) && leaf.verify(ca.publicKey))) {
      return `the client certificate (${leaf.subject.replaceAll("\n", ", ")}) is not signed by a CA of ca.crt`;
    }
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
 * The TLS connection a call came on. grpc-js's getAuthContext() hides the peer's certificate
 * whenever OpenSSL did not approve it, which is the case here by design, so the certificate is read
 * from the call's socket; the only interceptor gets grpc-js's own call object, whose `stream` is
 * that connection's HTTP/2 stream. Should grpc-js change that, no socket is found and every call is
 * refused (the mTLS tests fail), never let through.
 */
function tlsSocketOf(call: ServerInterceptingCallInterface): TLSSocket | undefined {
  const socket = (call as { stream?: { session?: { socket?: unknown } } }).stream?.session?.socket;
  return socket instanceof TLSSocket ? socket : undefined;
}

/**
 * Refuses a call before its message is read when the peer's certificate does not pass `check`.
 * The certificate is judged once per connection, as a TLS handshake would, not on every call.
 */
export function clientCertificateInterceptor(check: ClientCertificateCheck): ServerInterceptor {
  const judged = new WeakMap<TLSSocket, string | undefined>();
  const problemOf = (call: ServerInterceptingCallInterface): string | undefined => {
    const socket = tlsSocketOf(call);
    if (socket === undefined) return "a client certificate is required";
    if (!judged.has(socket)) judged.set(socket, check.problem(socket.getPeerCertificate().raw));
    return judged.get(socket);
  };
  return (_method, call: ServerInterceptingCallInterface) =>
    new ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, pass) => {
            const problem = problemOf(call);
            if (problem === undefined) pass(metadata);
            else call.sendStatus({ code: status.UNAUTHENTICATED, details: problem });
          },
        }),
    });
}
