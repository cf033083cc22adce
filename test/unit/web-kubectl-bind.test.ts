// The wire shapes the page speaks with `kubectl bind` (src/web/kubectl-bind.ts), per plugin: the
// discovery document both accept, and the BindingResponse in each plugin's own group, standard
// base64 with padding. The real kube-bind v0.3.0 plugin checks them in
// test/integration/web-kubectl-bind.test.ts; klutch-bind's plugin is not built here.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { bindingProvider, callbackLocation, discoveryPaths, readAuthorize } from "../../src/web/kubectl-bind.ts";

const api = { group: "anynines.com", resource: "postgresqlinstances", version: "v1", claims: [] };

describe("kubectl bind wire shapes", () => {
  it("serves one discovery document per plugin, told apart by the authorize URL's own query", () => {
    assert.deepEqual(discoveryPaths, { "/export": "kube-bind", "/export/klutch": "klutch" });
    for (const client of ["kube-bind", "klutch"] as const) {
      const doc = bindingProvider("https://cp.example:8443", client) as Record<string, unknown>;
      assert.equal(doc.apiVersion, "v1alpha1", "both plugins compare with the bare version");
      assert.equal(doc.version, "v0.3.0");
      assert.deepEqual(doc.authenticationMethods, [
        {
          method: "OAuth2CodeGrant",
          oauth2CodeGrant: { authenticatedURL: `https://cp.example:8443/authorize?client=${client}` },
        },
      ]);
    }
  });

  it("answers each plugin in its own group, to its loopback callback only", () => {
    for (const [client, group] of [
      ["kube-bind", "kube-bind.io"],
      ["klutch", "klutch.anynines.com"],
    ] as const) {
      const pending = readAuthorize(new URLSearchParams({ client, p: "4242", s: "Ab12Cd", c: "xY9z01" }), 0);
      // a kubeconfig whose base64 holds + and /, which URL-safe base64 would spell otherwise
      const kubeconfig = "\u00fb\u00ef\u00bf";
      const location = new URL(callbackLocation(pending, { identity: "dana", kubeconfig, api, requestName: "pg" }));
      assert.equal(`${location.origin}${location.pathname}`, "http://localhost:4242/callback");
      const text = location.searchParams.get("response") ?? "";
      assert.match(text, /^[A-Za-z0-9+/]+=*$/, "standard base64");
      const response = JSON.parse(Buffer.from(text, "base64").toString());
      assert.equal(response.apiVersion, `${group}/v1alpha1`);
      assert.equal(response.kind, "BindingResponse");
      assert.deepEqual(response.authentication, { oauth2CodeGrant: { sid: "Ab12Cd", id: "dana" } });
      assert.equal(Buffer.from(response.kubeconfig, "base64").toString(), kubeconfig);
      assert.equal(response.requests[0].apiVersion, `${group}/v1alpha1`);
      assert.equal(response.requests[0].kind, "APIServiceExportRequest");
    }
  });
});
