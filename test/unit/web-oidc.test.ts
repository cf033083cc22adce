// The web page's OpenID Connect settings, sign-in page and flow cookie, without a provider (the
// sign-in itself is tested against a real one in test/integration/web-oidc.test.ts).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { checkOidcSettings, OidcError, OidcLogin } from "../../src/web/oidc.ts";
import { loginPage, signedInPage } from "../../src/web/pages.ts";
import { CookieSealer } from "../../src/web/sealed-cookie.ts";
import { cookie } from "../../src/web/session.ts";

const good = { issuerUrl: "https://issuer.example", clientId: "klutch-bind-web" };

describe("OpenID Connect settings", () => {
  it("refuses what cannot work, naming the flag", () => {
    const cases: Array<[Parameters<typeof checkOidcSettings>[0], RegExp]> = [
      [{ ...good, issuerUrl: "issuer.example" }, /--oidc-issuer-url issuer\.example: not a URL/],
      [{ ...good, issuerUrl: "http://issuer.example" }, /--oidc-issuer-url http:\/\/issuer\.example: must be https/],
      [{ ...good, clientId: "" }, /--oidc-client-id is required/],
      [
        { ...good, redirectUrl: "https://page.example/callback" },
        /--oidc-redirect-url .*: its path must be \/oidc\/callback/,
      ],
      [{ ...good, scopes: ["email"] }, /--oidc-scopes email: must include openid/],
    ];
    for (const [settings, why] of cases) assert.throws(() => checkOidcSettings(settings), why);
    checkOidcSettings({ ...good, redirectUrl: "https://page.example/oidc/callback", scopes: ["openid", "email"] });
  });

  it("sends the provider back to the page's own address unless told otherwise", () => {
    assert.equal(
      new OidcLogin(good, new CookieSealer()).redirectUri("http://127.0.0.1:8090"),
      "http://127.0.0.1:8090/oidc/callback",
    );
    const behindProxy = new OidcLogin(
      { ...good, redirectUrl: "https://bind.example/oidc/callback" },
      new CookieSealer(),
    );
    assert.equal(behindProxy.redirectUri("http://127.0.0.1:8090"), "https://bind.example/oidc/callback");
  });

  it("refuses a callback of no sign-in in progress before asking the provider anything", async () => {
    const login = new OidcLogin({ ...good, issuerUrl: "https://127.0.0.1:1" }, new CookieSealer());
    for (const flows of [undefined, "", "not-sealed", new CookieSealer().seal("oidc-flows", [], 60_000)]) {
      await assert.rejects(
        login.finish(flows, new URLSearchParams({ code: "c", state: "made-up" })),
        (err) => err instanceof OidcError && /matches no sign-in in progress in this browser/.test(err.message),
      );
    }
  });
});

describe("the sign-in page with OpenID Connect", () => {
  it("offers the issuer, and the token form unless it is turned off", () => {
    const both = loginPage({ csrf: "c", oidcIssuer: "https://issuer.example" });
    assert.match(
      both,
      /<a class="button" id="oidc-sign-in" href="\/oidc\/login">Sign in with https:\/\/issuer\.example<\/a>/,
    );
    assert.match(both, /id="token"/);
    const oidcOnly = loginPage({ csrf: "c", oidcIssuer: "https://issuer.example", tokenForm: false });
    assert.doesNotMatch(oidcOnly, /id="token"/);
    assert.doesNotMatch(loginPage({ csrf: "c" }), /oidc-sign-in/);
  });

  it("goes on to the dashboard from a page of its own", () => {
    assert.match(signedInPage("oidc:alice"), /<meta http-equiv="refresh" content="0;url=\/">/);
    assert.match(signedInPage("<b>"), /Signed in as <span id="signed-in-user">&lt;b&gt;<\/span>/);
  });

  it("keeps the flow cookie HttpOnly, SameSite=Lax only where asked", () => {
    assert.equal(
      cookie("klb-oidc", "v", { secure: true, sameSite: "Lax", maxAgeSeconds: 600 }),
      "klb-oidc=v; Path=/; HttpOnly; SameSite=Lax; Secure; Max-Age=600",
    );
    assert.match(cookie("klb-session", "v", { secure: false }), /SameSite=Strict/);
  });
});
