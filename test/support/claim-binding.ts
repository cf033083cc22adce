// A binding of the test API whose template has the given claims (written as klutch-bind users
// write them), and the Secrets the claim tests copy.
import assert from "node:assert/strict";
import { providerNamespace } from "../../src/api/naming.ts";
import { refs } from "../../src/api/resources.ts";
import type { KubeObject } from "../../src/kube/client.ts";
import { uniqueSuffix } from "./clusters.ts";
import { eventually } from "./eventually.ts";
import type { SyncEnv } from "./sync-env.ts";

export type Claim = Record<string, unknown>;

/** A template with these claims (written as klutch-bind users write them) and a binding accepting them. */
export async function boundWith(
  env: SyncEnv,
  name: string,
  claims: Claim[],
  accepted = true,
): Promise<{ ns: string; pns: string }> {
  await env.template(claims);
  await env.kubeconfigSecret(name, env.appKubeconfig);
  const binding = await env.controlClient.create(refs.bindings, {
    apiVersion: "bind.klutch.dev/v1alpha1",
    kind: "AppClusterBinding",
    metadata: { name, namespace: env.bindingNamespace },
    spec: {
      kubeconfigSecretRef: { name: `${name}-kubeconfig` },
      exports: [
        {
          group: env.ref.group,
          resource: "postgresqlinstances",
          ...(accepted ? {} : { permissionClaims: claims.map((c) => ({ group: "", ...c, state: "Rejected" })) }),
        },
      ],
    },
  });
  const ns = `fields-${uniqueSuffix()}`;
  const pns = providerNamespace(binding.metadata.uid ?? "", ns);
  if (accepted) {
    await env.ready(name);
    await env.appObject(ns, "db");
    // the provider namespace exists once the object's copy does: a test may write into it next
    await eventually(`db copied into ${pns}`, async () => assert.ok(await env.controlClient.get(env.ref, "db", pns)));
  }
  return { ns, pns };
}

export function secret(
  namespace: string,
  name: string,
  data: Record<string, string>,
  meta: Partial<KubeObject["metadata"]> = {},
): KubeObject {
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name, namespace, ...meta },
    type: "Opaque",
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString("base64")])),
  };
}
