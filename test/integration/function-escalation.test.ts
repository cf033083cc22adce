// Exports cannot escalate, over real gRPC on loopback: a ServiceExport claiming an escalation-prone
// resource, or asking for another template namespace, gets a fatal InvalidInput result; the
// function input's allow-lists let exactly what they name through.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { composedKeys } from "../../src/function/composed-keys.ts";
import { runExportFunction } from "../../src/function/export-function.ts";
import { type RunningFunctionServer, startFunctionServer } from "../../src/function/server.ts";
import type { RunFunctionResponse } from "../../src/function/wire.ts";
import { seedClaims, xrd } from "../fixtures/xrds.ts";
import { desiredJson, functionClient, request } from "../support/function-client.ts";

const crb = { group: "rbac.authorization.k8s.io", resource: "clusterrolebindings", version: "v1" };
const xr = (spec: Record<string, unknown>) => ({
  apiVersion: "bind.klutch.dev/v1alpha1",
  kind: "ServiceExport",
  metadata: { name: "escalate" },
  spec: { xrd: "postgresqlinstances.anynines.com", ...spec },
});
const escalating = xr({ permissionClaims: [...seedClaims, { ...crb, selector: { owner: "Consumer" } }] });
const input = (extra: Record<string, unknown>) => ({ apiVersion: "bind.klutch.dev/v1alpha1", kind: "Input", ...extra });

/** over the wire, an empty list arrives as no field at all */
function results(rsp: RunFunctionResponse) {
  return (rsp.results ?? []).map((r) => [r.severity, r.reason, r.message]);
}

function exportedCondition(rsp: RunFunctionResponse) {
  const c = (rsp.conditions ?? []).find((c) => c.type === "Exported");
  return [c?.status, c?.reason];
}

describe("exports cannot escalate (the function over gRPC)", () => {
  let server: RunningFunctionServer;
  let address: string;
  before(async () => {
    server = await startFunctionServer(runExportFunction, {
      address: "127.0.0.1:0",
      insecure: true,
      maxRecvMessageBytes: 4 * 1024 * 1024,
      logger: pino({ level: "silent" }),
    });
    address = `127.0.0.1:${server.port}`;
  });
  after(() => server.shutdown());

  const run = async (parts: Parameters<typeof request>[0]) => {
    const client = functionClient(address);
    try {
      return await client.run(request({ required: { xrd: [xrd({})] }, ...parts }));
    } finally {
      client.close();
    }
  };

  it("refuses a claim on clusterrolebindings: fatal InvalidInput, Exported=False, nothing composed", async () => {
    const rsp = await run({ xr: escalating });
    assert.deepEqual(results(rsp), [
      [
        "SEVERITY_FATAL",
        "InvalidInput",
        "spec.permissionClaims[2]: claims clusterrolebindings.rbac.authorization.k8s.io, which is escalation-prone " +
          "(RBAC: writing roles and bindings grants permissions); the function input must list " +
          '{group: "rbac.authorization.k8s.io", resource: clusterrolebindings} in allowedClaims to export it',
      ],
    ]);
    assert.deepEqual(exportedCondition(rsp), ["STATUS_CONDITION_FALSE", "InvalidInput"]);
    assert.deepEqual(desiredJson(rsp), {});
  });

  it("refuses a wildcard and a subresource whatever the input allows", async () => {
    const allowAll = input({ allowedClaims: [{ group: "", resource: "pods" }] });
    const wildcard = await run({
      xr: xr({ permissionClaims: [{ group: "*", resource: "*", version: "v1", selector: { owner: "Provider" } }] }),
      input: allowAll,
    });
    assert.match(String(wildcard.results[0]?.message), /^spec\.permissionClaims\[0\]\.group: .*wildcards are refused/);
    const exec = await run({
      xr: xr({
        permissionClaims: [{ group: "", resource: "pods/exec", version: "v1", selector: { owner: "Provider" } }],
      }),
      input: allowAll,
    });
    assert.match(String(exec.results[0]?.message), /^spec\.permissionClaims\[0\]\.resource: .*not a subresource/);
    for (const rsp of [wildcard, exec]) assert.equal(rsp.results[0]?.severity, "SEVERITY_FATAL");
  });

  it("exports the claim when the input allows it by name, granting it in the claims role only", async () => {
    const rsp = await run({
      xr: escalating,
      input: input({ allowedClaims: [{ group: "rbac.authorization.k8s.io", resource: "clusterrolebindings" }] }),
    });
    assert.deepEqual(results(rsp), []);
    assert.deepEqual(exportedCondition(rsp), ["STATUS_CONDITION_TRUE", "Available"]);
    const desired = desiredJson(rsp);
    assert.deepEqual(desired[composedKeys.claimsRole]?.rules, [
      {
        apiGroups: [""],
        resources: ["configmaps", "secrets"],
        verbs: ["get", "list", "watch", "create", "update", "patch", "delete"],
      },
      {
        apiGroups: ["rbac.authorization.k8s.io"],
        resources: ["clusterrolebindings"],
        verbs: ["get", "list", "watch", "create", "update", "patch", "delete"],
      },
    ]);
    const clusterRules = JSON.stringify(desired[composedKeys.clusterRole]?.rules);
    assert.ok(!clusterRules.includes("clusterrolebindings") && !clusterRules.includes("*"), clusterRules);
  });

  it("keeps templates in the namespaces the input allows", async () => {
    const refused = await run({ xr: xr({ templateNamespace: "kube-system" }) });
    assert.deepEqual(results(refused), [
      [
        "SEVERITY_FATAL",
        "InvalidInput",
        'spec.templateNamespace: must be a namespace the function input allows (allowedTemplateNamespaces: crossplane-system), got "kube-system"',
      ],
    ]);
    const allowed = await run({
      xr: xr({ templateNamespace: "team-a" }),
      input: input({ allowedTemplateNamespaces: ["team-a"] }),
    });
    assert.deepEqual(results(allowed), []);
    const template = desiredJson(allowed)[composedKeys.template] as { metadata: { namespace?: string } } | undefined;
    assert.equal(template?.metadata.namespace, "team-a");
  });
});
