// A binding's conditions and Warning events from what its reconcile observed (conditions.ts): every
// reason each condition can give, and the messages the status and events say.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Condition } from "../../src/api/binding-spec.ts";
import type { KubeObject } from "../../src/kube/client.ts";
import {
  type BindingFacts,
  bindingConditions,
  bindingWarnings,
  unreachableMessage,
} from "../../src/sync/binding/conditions.ts";
import { passingStates } from "../../src/sync/binding/export-reconcile.ts";
import type { ExportStatus } from "../../src/sync/binding/status.ts";

const ours: KubeObject = {
  apiVersion: "bind.klutch.dev/v1alpha1",
  kind: "AppClusterBinding",
  metadata: { name: "b", namespace: "team" },
  spec: { exports: [{ group: "db.example.org", resource: "postgresqls" }] },
};
const klutch = (deploy?: boolean): KubeObject => ({
  apiVersion: "klutch.anynines.com/v1alpha1",
  kind: "AppClusterBinding",
  metadata: { name: "b", namespace: "team" },
  spec: {
    apiExports: [{ group: "db.example.org", resource: "postgresqls" }],
    ...(deploy === undefined ? {} : { konnector: { deploy } }),
  },
});

const reachable: Condition = {
  type: "Connected",
  status: "True",
  reason: "Reachable",
  message: "app cluster https://app:6443 (v1.35.0)",
};
const down = (reason: string, message: string): Condition => ({ type: "Connected", status: "False", reason, message });
const synced: ExportStatus = {
  group: "db.example.org",
  resource: "postgresqls",
  version: "v1",
  template: "crossplane-system/pg",
  objects: 2,
};

function facts(over: Partial<BindingFacts> = {}): BindingFacts {
  return { binding: ours, probed: reachable, failing: [], tooMany: undefined, repeated: 0, exports: [synced], ...over };
}

function condition(conditions: Condition[], type: string): Condition {
  const found = conditions.find((c) => c.type === type);
  assert.ok(found, `no ${type} condition among ${conditions.map((c) => c.type).join(", ")}`);
  return found;
}

const brief = (c: Condition) => `${c.status} ${c.reason}: ${c.message}`;

describe("a binding's conditions", () => {
  it("a reachable app cluster whose exports are synced: every condition true, in this order", () => {
    const out = bindingConditions(facts());
    assert.deepEqual(
      out.conditions.map((c) => `${c.type} ${brief(c)}`),
      [
        "SecretValid True Valid: the kubeconfig Secret holds a usable kubeconfig",
        `Connected True Reachable: ${reachable.message}`,
        "ClaimFieldsActedOn True AllActedOn: the sync acts on every field of the accepted claims",
        "Ready True Synced: 1 export(s) bound and in sync",
        "ClaimsAccepted True Accepted: every claim of the templates is accepted",
      ],
    );
    assert.equal(out.connected, reachable);
    assert.deepEqual(out.exports, [synced]);
  });

  it("Connected: the probe's reason when the Secret, the client or the cluster failed; SecretValid false for the Secret's", () => {
    const secretFaults = ["InvalidSpec", "KubeconfigMissing", "KubeconfigNotMarked", "InvalidKubeconfig"];
    for (const reason of secretFaults) {
      const out = bindingConditions(facts({ probed: down(reason, `${reason} text`), exports: [] }));
      assert.equal(brief(condition(out.conditions, "Connected")), `False ${reason}: ${reason} text`);
      assert.equal(brief(condition(out.conditions, "SecretValid")), `False ${reason}: ${reason} text`);
      assert.equal(brief(condition(out.conditions, "Ready")), `False Disconnected: ${reason} text`);
    }
    for (const reason of ["Unreachable", "InvalidAnswers", "ServerAddressRefused", "TokenExpired", "NotConnected"]) {
      const out = bindingConditions(facts({ probed: down(reason, `${reason} text`), exports: [] }));
      assert.equal(brief(condition(out.conditions, "Connected")), `False ${reason}: ${reason} text`);
      assert.equal(condition(out.conditions, "SecretValid").reason, "Valid");
      assert.equal(brief(condition(out.conditions, "Ready")), `False Disconnected: ${reason} text`);
    }
  });

  it("Connected ListWatchFailing: /version answers but the syncs' lists or watches fail", () => {
    const out = bindingConditions(facts({ failing: ["postgresqls: list failed", "configmaps: watch failed"] }));
    assert.equal(brief(out.connected), "False ListWatchFailing: postgresqls: list failed; configmaps: watch failed");
    assert.equal(
      brief(condition(out.conditions, "Ready")),
      "False Disconnected: postgresqls: list failed; configmaps: watch failed",
    );
    // a probe that failed already says more than the syncs
    const unreachable = down("Unreachable", "app cluster https://app:6443: connect ECONNREFUSED");
    assert.equal(bindingConditions(facts({ probed: unreachable, failing: ["x"] })).connected, unreachable);
  });

  it("Connected from an export whose reconcile lost the cluster; its message says it is unreachable", () => {
    const lost = down("Unreachable", "app cluster https://app:6443: socket hang up");
    const out = bindingConditions(facts({ exports: [synced, { group: "g", resource: "r", appUnreachable: lost }] }));
    assert.equal(out.connected, lost);
    assert.deepEqual(out.exports[1], { group: "g", resource: "r", message: unreachableMessage });
    assert.equal(brief(condition(out.conditions, "Ready")), `False Disconnected: r.g: ${unreachableMessage}`);
  });

  it("Connected AppClusterError: what the app cluster answered wrongly, per export; the export's message says it", () => {
    const out = bindingConditions(
      facts({
        exports: [
          { group: "g", resource: "r", version: "v1", appError: "installing the API in the app cluster failed: 403" },
          { group: "h", resource: "s", appError: "reading the API's CRD in the app cluster failed: 500" },
        ],
      }),
    );
    assert.equal(
      brief(out.connected),
      "False AppClusterError: r.g: installing the API in the app cluster failed: 403; s.h: reading the API's CRD in the app cluster failed: 500",
    );
    assert.deepEqual(out.exports[0], {
      group: "g",
      resource: "r",
      version: "v1",
      message: "installing the API in the app cluster failed: 403",
    });
    assert.equal(condition(out.conditions, "Ready").reason, "Disconnected");
    assert.equal(condition(out.conditions, "SecretValid").reason, "Valid");
  });

  it("does not change the exports it was given", () => {
    const given: ExportStatus = { group: "g", resource: "r", appError: "boom" };
    bindingConditions(facts({ exports: [given] }));
    assert.deepEqual(given, { group: "g", resource: "r", appError: "boom" });
  });

  it("Ready ExportsNotReady: each export not ready named with its message (template conflicts, consent, tenant limits)", () => {
    const out = bindingConditions(
      facts({
        exports: [
          synced,
          { group: "g", resource: "r", message: "templates a/t and b/t all export r.g: refused until only one does" },
          { group: "h", resource: "s", message: "required claims not accepted: secrets.core (owner Provider)" },
          {
            group: "i",
            resource: "u",
            message: "namespace team's bindings hold 100 provider namespaces (--provider-namespaces-per-namespace)",
          },
        ],
      }),
    );
    assert.equal(
      brief(condition(out.conditions, "Ready")),
      "False ExportsNotReady: r.g: templates a/t and b/t all export r.g: refused until only one does; s.h: required claims not accepted: secrets.core (owner Provider); u.i: namespace team's bindings hold 100 provider namespaces (--provider-namespaces-per-namespace)",
    );
    assert.equal(out.connected, reachable);
  });

  it("Ready TooManyExports: the spec lists more exports than allowed, whatever the cluster says", () => {
    const tooMany = "spec.exports lists 51 exports, more than --max-exports-per-binding (50) allows: none is synced";
    for (const probed of [reachable, down("Unreachable", "gone")]) {
      const out = bindingConditions(facts({ tooMany, exports: [], probed }));
      assert.equal(brief(condition(out.conditions, "Ready")), `False TooManyExports: ${tooMany}`);
    }
  });

  it("Ready names repeated export entries, ready or not", () => {
    const repeats = "; spec.apiExports lists 2 more entries of the same group and resource, ignored";
    const ready = bindingConditions(facts({ binding: klutch(), repeated: 2 }));
    assert.equal(brief(condition(ready.conditions, "Ready")), `True Synced: 1 export(s) bound and in sync${repeats}`);
    const notReady = bindingConditions(facts({ binding: klutch(), repeated: 2, probed: down("Unreachable", "gone") }));
    assert.equal(brief(condition(notReady.conditions, "Ready")), `False Disconnected: gone${repeats}`);
  });

  it("ClaimsAccepted ClaimsPending: the claims not accepted as they are now, with the kind's field", () => {
    const pending = { ...synced, claimsPending: "secrets.core (owner Provider), configmaps.core (owner either side)" };
    const out = bindingConditions(facts({ exports: [pending] }));
    assert.equal(
      brief(condition(out.conditions, "ClaimsAccepted")),
      "False ClaimsPending: not synced until accepted (spec.exports[].permissionClaims, or klutch-bind bind again): postgresqls.db.example.org: secrets.core (owner Provider), configmaps.core (owner either side)",
    );
    // pending claims are not synced, and the rest of the export is: still ready
    assert.equal(condition(out.conditions, "Ready").reason, "Synced");
    const theirs = bindingConditions(facts({ binding: klutch(), exports: [pending] }));
    assert.match(condition(theirs.conditions, "ClaimsAccepted").message, /spec\.apiExports\[\]\.permissionClaims/);
  });

  it("ClaimFieldsActedOn NotYetSupported: the claim fields the sync does not act on", () => {
    const out = bindingConditions(
      facts({ exports: [{ ...synced, claimsNotActedOn: "secrets.core (owner Provider) autoDonate" }] }),
    );
    assert.equal(
      brief(condition(out.conditions, "ClaimFieldsActedOn")),
      "False NotYetSupported: the sync does not act on these claim fields yet (the rest of each claim is synced): postgresqls.db.example.org: secrets.core (owner Provider) autoDonate",
    );
  });

  it("KonnectorDeployed SyncedInProcess: klutch-bind's binding only, saying when spec.konnector.deploy is ignored", () => {
    assert.equal(
      bindingConditions(facts()).conditions.find((c) => c.type === "KonnectorDeployed"),
      undefined,
    );
    const inProcess =
      "this control plane syncs the binding in klutch-bind sync's own process; no konnector is deployed";
    const plain = bindingConditions(facts({ binding: klutch(false) })).conditions;
    assert.equal(brief(condition(plain, "KonnectorDeployed")), `False SyncedInProcess: ${inProcess}`);
    assert.deepEqual(
      plain.map((c) => c.type),
      ["SecretValid", "Connected", "ClaimFieldsActedOn", "KonnectorDeployed", "Ready", "ClaimsAccepted"],
    );
    const asked = bindingConditions(facts({ binding: klutch(true) })).conditions;
    assert.equal(
      brief(condition(asked, "KonnectorDeployed")),
      `False SyncedInProcess: spec.konnector.deploy is ignored: ${inProcess}`,
    );
  });
});

describe("a binding's Warning events", () => {
  it("none while connected and every export is ready", () => {
    assert.deepEqual(bindingWarnings(bindingConditions(facts()), undefined, passingStates), []);
  });

  it("the Connected reason while not connected, and no ExportNotReady then", () => {
    const out = bindingConditions(
      facts({ probed: down("ServerAddressRefused", "app cluster https://10.0.0.1: refused"), exports: [] }),
    );
    const unreachable = bindingConditions(
      facts({ exports: [{ group: "g", resource: "r", message: "not ready" }], probed: down("Unreachable", "gone") }),
    );
    assert.deepEqual(bindingWarnings(out, undefined, passingStates), [
      { reason: "ServerAddressRefused", message: "app cluster https://10.0.0.1: refused" },
    ]);
    assert.deepEqual(bindingWarnings(unreachable, undefined, passingStates), [
      { reason: "Unreachable", message: "gone" },
    ]);
  });

  it("TooManyExports, and no ExportNotReady then", () => {
    const tooMany = "spec.exports lists 51 exports, more than --max-exports-per-binding (50) allows: none is synced";
    const out = bindingConditions(facts({ tooMany, exports: [{ group: "g", resource: "r", message: "not ready" }] }));
    assert.deepEqual(bindingWarnings(out, tooMany, passingStates), [{ reason: "TooManyExports", message: tooMany }]);
  });

  it("ExportNotReady for each export not ready, but not for passing states", () => {
    const out = bindingConditions(
      facts({
        exports: [
          synced,
          ...[...passingStates].map((message, i) => ({ group: "p", resource: `r${i}`, message })),
          { group: "g", resource: "r", message: "the control plane has no CRD r.g" },
        ],
      }),
    );
    assert.equal(passingStates.size, 3);
    assert.deepEqual(bindingWarnings(out, undefined, passingStates), [
      { reason: "ExportNotReady", message: "r.g: the control plane has no CRD r.g" },
    ]);
  });
});
