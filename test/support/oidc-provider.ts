// A real OpenID provider on loopback for the web page's OpenID Connect tests: panva's oidc-provider
// over HTTPS (kube-apiserver only trusts an https issuer), with a certificate from certs.ts. People
// sign in on a small login form of ours with a name and a password; consent is implied, as for a
// first-party client. The ID tokens it issues are recorded, so a test can look for them where
// they must never be (pages, logs); the discovery requests are counted, so a test can wait until a
// kube-apiserver started with this issuer has read it. A test may also have the provider misbehave:
// ID tokens with other claims, signed anew with its key, or with a broken signature.
import { generateKeyPairSync, randomBytes, sign } from "node:crypto";
import { readFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import { join } from "node:path";
import Provider, { type ClientMetadata, type Configuration, type KoaContextWithOIDC } from "oidc-provider";
import { makePki } from "./certs.ts";

/** How the ID tokens issued from now on are altered. */
export type Tamper = {
  /** the claims changed, the token signed anew with the provider's own key */
  claims?: (claims: Record<string, unknown>) => Record<string, unknown>;
  /** the signature's last bytes flipped */
  breakSignature?: boolean;
};

export type OidcProvider = {
  /** https://127.0.0.1:PORT, as the discovery document and the ID tokens name it */
  issuer: string;
  /** PEM file of the CA that signed the provider's certificate (for kube-apiserver and the page) */
  caFile: string;
  ca: Buffer;
  /** name → password */
  users: Record<string, string>;
  /** every ID token issued so far */
  idTokens: () => readonly string[];
  /** how many times the discovery document was served */
  discoveries: () => number;
  /** alters the ID tokens issued from now on; undefined issues them as they are again */
  tamper: (how: Tamper | undefined) => void;
  stop: () => Promise<void>;
};

function escapeText(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function loginForm(uid: string, error?: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>Test provider sign-in</title></head><body>
<h1>Test provider</h1>${error ? `<p id="provider-error">${escapeText(error)}</p>` : ""}
<form method="post" action="/interaction/${escapeText(uid)}/login">
<label>Name <input id="provider-login" name="login" autocomplete="off"></label>
<label>Password <input id="provider-password" name="password" type="password"></label>
<button id="provider-submit" type="submit">Sign in</button>
</form></body></html>`;
}

async function readBody(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return new URLSearchParams(Buffer.concat(chunks).toString("utf8"));
}

export async function startOidcProvider(
  users: Record<string, string>,
  clients: ClientMetadata[],
): Promise<OidcProvider> {
  const pki = makePki();
  let handler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  let provider: Provider | undefined;
  const issued: string[] = [];
  let discoveries = 0;
  let tampering: Tamper | undefined;

  const interaction = async (p: Provider, req: IncomingMessage, res: ServerResponse, uid: string, submit: boolean) => {
    const details = await p.interactionDetails(req, res);
    if (details.uid !== uid || details.prompt.name !== "login") {
      res.writeHead(400, { "content-type": "text/plain" }).end(`unexpected interaction ${details.prompt.name}`);
      return;
    }
    if (!submit) {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(loginForm(uid));
      return;
    }
    const form = await readBody(req);
    const login = form.get("login") ?? "";
    const password = users[login];
    if (password === undefined || password !== form.get("password")) {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(loginForm(uid, "wrong name or password"));
      return;
    }
    await p.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
  };

  const server: Server = createServer(
    { cert: readFileSync(join(pki.serverDir, "tls.crt")), key: readFileSync(join(pki.serverDir, "tls.key")) },
    (req: IncomingMessage, res: ServerResponse) => {
      const p = provider;
      if (p === undefined || handler === undefined) {
        res.writeHead(503).end("starting"); // listening already, for the port in the issuer
        return;
      }
      const path = new URL(req.url ?? "/", "https://provider.invalid").pathname;
      if (path === "/.well-known/openid-configuration") res.once("finish", () => discoveries++);
      const own = /^\/interaction\/([^/]+)(\/login)?$/.exec(path);
      if (own) {
        const submit = req.method === "POST" && own[2] === "/login";
        interaction(p, req, res, own[1] ?? "", submit).catch((err: unknown) => {
          if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
          res.end(`interaction failed: ${(err as Error).message}`);
        });
        return;
      }
      handler(req, res);
    },
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (typeof address !== "object" || address === null) throw new Error("the provider has no address");
  const issuer = `https://127.0.0.1:${address.port}`;

  const keyPair = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const signingKey = keyPair.privateKey.export({ format: "jwk" });
  const alter = (token: string, how: Tamper): string => {
    const [header = "", payload = "", signature = ""] = token.split(".");
    if (how.breakSignature) {
      const bytes = Buffer.from(signature, "base64url");
      bytes[bytes.length - 1] = (bytes.at(-1) ?? 0) ^ 0xff;
      return `${header}.${payload}.${bytes.toString("base64url")}`;
    }
    const claims: Record<string, unknown> = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
    const changed = Buffer.from(JSON.stringify(how.claims?.(claims) ?? claims)).toString("base64url");
    const signed = sign("sha256", Buffer.from(`${header}.${changed}`), keyPair.privateKey).toString("base64url");
    return `${header}.${changed}.${signed}`;
  };
  const configuration: Configuration = {
    clients,
    jwks: { keys: [{ ...signingKey, kid: "test-key", use: "sig", alg: "RS256" }] },
    cookies: { keys: [randomBytes(32).toString("hex")] },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx, i) => `/interaction/${i.uid}` },
    pkce: { required: () => true },
    ttl: { AuthorizationCode: 60, AccessToken: 600, IdToken: 3600, Interaction: 600, Grant: 3600, Session: 3600 },
    findAccount: (_ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
    // a first-party client: what it asks for is granted without a consent page
    loadExistingGrant: async (ctx: KoaContextWithOIDC) => {
      const session = ctx.oidc.session;
      const client = ctx.oidc.client;
      if (session?.accountId === undefined || client === undefined) return undefined;
      const grantId = session.grantIdFor(client.clientId);
      if (grantId) return ctx.oidc.provider.Grant.find(grantId);
      const grant = new ctx.oidc.provider.Grant({ accountId: session.accountId, clientId: client.clientId });
      grant.addOIDCScope("openid");
      await grant.save();
      session.grantIdFor(client.clientId, grant.jti);
      return grant;
    },
  };
  const p = new Provider(issuer, configuration);
  p.on("grant.success", (ctx: KoaContextWithOIDC) => {
    const body = ctx.body as { id_token?: unknown } | undefined;
    const idToken = body?.id_token;
    if (body === undefined || typeof idToken !== "string") return;
    issued.push(idToken);
    if (tampering === undefined) return;
    const altered = alter(idToken, tampering);
    body.id_token = altered;
    issued.push(altered);
  });
  provider = p;
  handler = p.callback();

  return {
    issuer,
    caFile: join(pki.serverDir, "ca.crt"),
    ca: pki.ca,
    users,
    idTokens: () => issued,
    discoveries: () => discoveries,
    tamper: (how) => {
      tampering = how;
    },
    stop: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
