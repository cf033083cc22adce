// A browser stand-in for the web page's tests: keeps cookies, follows no redirect, signs in with a
// token.
import assert from "node:assert/strict";

export type Answer = { status: number; headers: Headers; body: string };

export class WebAgent {
  readonly cookies = new Map<string, string>();
  readonly base: string;
  constructor(base: string) {
    this.base = base;
  }

  async send(method: string, path: string, form?: Record<string, string | string[]>): Promise<Answer> {
    const body = new URLSearchParams();
    for (const [k, v] of Object.entries(form ?? {})) for (const one of [v].flat()) body.append(k, one);
    const response = await fetch(`${this.base}${path}`, {
      method,
      redirect: "manual",
      headers: {
        cookie: [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; "),
        ...(form ? { "content-type": "application/x-www-form-urlencoded", origin: this.base } : {}),
      },
      ...(form ? { body: body.toString() } : {}),
    });
    for (const line of response.headers.getSetCookie()) {
      const [pair = ""] = line.split(";");
      const at = pair.indexOf("=");
      this.cookies.set(pair.slice(0, at), pair.slice(at + 1));
    }
    return { status: response.status, headers: response.headers, body: await response.text() };
  }

  csrf(page: string): string {
    const token = /name="_csrf" value="([^"]+)"/.exec(page)?.[1];
    assert.ok(token, "the page carries a CSRF token");
    return token;
  }

  /** Signs in with token; returns the session's CSRF token. */
  async signIn(token: string): Promise<string> {
    const signedIn = await this.tryToken(token);
    assert.equal(signedIn.status, 303, signedIn.body);
    const home = await this.send("GET", "/");
    assert.equal(home.status, 200);
    return this.csrf(home.body);
  }

  /** Posts token to the sign-in form; the answer as it comes. */
  async tryToken(token: string): Promise<Answer> {
    const login = await this.send("GET", "/login");
    return this.send("POST", "/login", { _csrf: this.csrf(login.body), token });
  }
}
