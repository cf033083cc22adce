// What the page must remember about a browser before anyone has signed in (an OpenID Connect
// sign-in in progress, a `kubectl bind` run waiting for its person) travels in that browser's own
// cookie, sealed with AES-256-GCM under a key of this process: the browser can neither read nor
// alter it, and the page keeps nothing per visitor. Keeping it in the process instead let anyone
// without a sign-in fill the page's table by visiting a URL in a loop, refusing everyone's sign-in
// or pushing out real pending binds. A sealed value names its purpose (the GCM additional data),
// so one kind can never be opened as another, and carries its own expiry.
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";

const ivBytes = 12;
const tagBytes = 16;
/** a browser keeps at most 4096 bytes per cookie; what we seal is far smaller */
const maxSealedChars = 3800;

export class CookieSealer {
  readonly #key: Buffer;
  readonly #now: () => number;

  constructor(key: Buffer = randomBytes(32), now: () => number = Date.now) {
    if (key.length !== 32) throw new Error("a cookie sealing key has 32 bytes");
    this.#key = key;
    this.#now = now;
  }

  /** value, sealed for purpose, good for lifetimeMs. */
  seal(purpose: string, value: unknown, lifetimeMs: number): string {
    const iv = randomBytes(ivBytes);
    const cipher = createCipheriv("aes-256-gcm", this.#key, iv);
    cipher.setAAD(Buffer.from(purpose));
    const plain = Buffer.from(JSON.stringify({ exp: this.#now() + lifetimeMs, value }));
    const sealed = Buffer.concat([iv, cipher.update(plain), cipher.final(), cipher.getAuthTag()]).toString("base64url");
    if (sealed.length > maxSealedChars)
      throw new Error(`a sealed ${purpose} of ${sealed.length} characters does not fit a cookie`);
    return sealed;
  }

  /** What was sealed for purpose, or undefined when text is missing, altered, of another purpose or expired. */
  open(purpose: string, text: string | undefined): unknown {
    if (!text || text.length > maxSealedChars) return undefined;
    const bytes = Buffer.from(text, "base64url");
    if (bytes.length < ivBytes + tagBytes + 1) return undefined;
    let plain: Buffer;
    try {
      const decipher = createDecipheriv("aes-256-gcm", this.#key, bytes.subarray(0, ivBytes));
      decipher.setAAD(Buffer.from(purpose));
      decipher.setAuthTag(bytes.subarray(bytes.length - tagBytes));
      plain = Buffer.concat([decipher.update(bytes.subarray(ivBytes, bytes.length - tagBytes)), decipher.final()]);
    } catch {
      return undefined;
    }
    const sealed: unknown = JSON.parse(plain.toString("utf8"));
    if (typeof sealed !== "object" || sealed === null || !("exp" in sealed) || typeof sealed.exp !== "number") {
      return undefined;
    }
    if (this.#now() > sealed.exp) return undefined;
    return "value" in sealed ? sealed.value : undefined;
  }
}
