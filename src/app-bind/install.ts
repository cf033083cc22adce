// The app cluster's side of `klutch-bind bind URL` and `klutch-bind unbind --app`: reading what is
// bound already (so that the konnector's rights cover every binding it serves), applying the
// objects of app-objects.ts in order, waiting for the binding to be Ready, and removing them again.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { bindingRef, konnectorFinalizer, pullRefs } from "../api/pull-binding.ts";
import { refs } from "../api/resources.ts";
import { parseClaims } from "../export/claims.ts";
import { InputError } from "../export/errors.ts";
import { KubeApiError, type KubeClient, type KubeObject, type ResourceRef } from "../kube/client.ts";
import { conditionOf, isEstablished } from "../kube/conditions.ts";
import type { AppBinding } from "./app-objects.ts";

export const cliFieldManager = "klutch-bind-cli";

const refOf: Record<string, ResourceRef> = {
  CustomResourceDefinition: refs.crds,
  Namespace: refs.namespaces,
  Secret: refs.secrets,
  ServiceAccount: refs.serviceAccounts,
  ClusterRole: refs.clusterRoles,
  ClusterRoleBinding: refs.clusterRoleBindings,
  Role: pullRefs.roles,
  RoleBinding: refs.roleBindings,
  Deployment: refs.deployments,
  APIServiceBinding: bindingRef,
};

export function resourceOf(obj: KubeObject): ResourceRef {
  const ref = refOf[obj.kind ?? ""];
  if (ref === undefined) throw new Error(`no resource known for kind ${obj.kind}`);
  return ref;
}

/** klutch-bind's APIServiceBinding CRD, as deploy/app-cluster holds it (the image carries deploy/). */
export function bindingCrd(): KubeObject {
  const file = new URL("../../deploy/app-cluster/klutch-apiservicebinding-crd.yaml", import.meta.url);
  return parse(readFileSync(file, "utf8")) as KubeObject;
}

/** The app cluster's id for the page: a digest of its kube-system namespace's uid, as kubectl bind makes one. */
export async function clusterId(app: KubeClient): Promise<string> {
  const kubeSystem = await app.get(refs.namespaces, "kube-system");
  const uid = kubeSystem?.metadata.uid;
  if (uid === undefined) throw new Error("the app cluster has no namespace kube-system to tell it apart by");
  return createHash("sha256").update(uid).digest("hex").slice(0, 12);
}

/**
 * The APIServiceBindings the konnector serves already, with their accepted claims (the CRD missing:
 * none). One that cannot be read is an error naming it: its rights would be dropped otherwise.
 */
export async function servedBindings(app: KubeClient): Promise<AppBinding[]> {
  let items: KubeObject[];
  try {
    items = (await app.list(bindingRef)).items;
  } catch (err) {
    if (err instanceof KubeApiError && err.code === 404) return [];
    throw err;
  }
  // one being deleted is still served until the konnector has released it (its finalizer): its
  // rights must stay until then, or the release is refused and the binding stays stuck
  return items
    .filter((b) => b.metadata.deletionTimestamp === undefined || b.metadata.finalizers?.includes(konnectorFinalizer))
    .map((b) => {
      const name = b.metadata.name;
      const dot = name.indexOf(".");
      if (dot <= 0) throw new InputError(`APIServiceBinding ${name}`, "its name is not RESOURCE.GROUP");
      const claims = ((b.spec as { permissionClaims?: unknown } | undefined)?.permissionClaims ?? []) as unknown;
      const accepted = (Array.isArray(claims) ? claims : [])
        .filter((c) => typeof c === "object" && c !== null && (c as { state?: unknown }).state === "Accepted")
        .map((c) => {
          const { state: _state, ...claim } = c as Record<string, unknown>;
          return claim;
        });
      return {
        name,
        resource: name.slice(0, dot),
        group: name.slice(dot + 1),
        claims: parseClaims(accepted, `APIServiceBinding ${name} spec.permissionClaims`),
      };
    });
}

/** Applies each object in turn (server-side apply), the CRD waited for before the objects of its API. */
export async function applyAll(
  app: KubeClient,
  objects: readonly KubeObject[],
  say: (line: string) => void,
): Promise<void> {
  for (const obj of objects) {
    const ref = resourceOf(obj);
    const applied = await app.apply(ref, obj, cliFieldManager, true);
    const where = obj.metadata.namespace ? `${obj.metadata.namespace}/` : "";
    say(`✓ ${obj.kind} ${where}${obj.metadata.name}`);
    if (obj.kind === "CustomResourceDefinition") await established(app, applied);
  }
}

async function established(app: KubeClient, crd: KubeObject): Promise<void> {
  const until = Date.now() + 30_000;
  let current: KubeObject | undefined = crd;
  while (!isEstablished(current)) {
    if (Date.now() > until) throw new Error(`the CRD ${crd.metadata.name} was not established within 30 s`);
    await new Promise((resolve) => setTimeout(resolve, 200));
    current = await app.get(refs.crds, crd.metadata.name);
  }
}

/** Waits until the konnector reports the binding Ready, saying each change of its condition. */
export async function waitReady(
  app: KubeClient,
  name: string,
  timeoutMs: number,
  say: (line: string) => void,
): Promise<number> {
  const started = Date.now();
  let last = "";
  for (;;) {
    const binding = await app.get(bindingRef, name);
    const ready = conditionOf(binding, "Ready");
    const now = `Ready=${ready?.status ?? "?"}${ready?.reason ? ` (${ready.reason})` : ""}${ready?.message ? `: ${ready.message}` : ""}`;
    if (now !== last) say(`  … ${now}`);
    last = now;
    if (ready?.status === "True") return Date.now() - started;
    if (Date.now() - started > timeoutMs) {
      throw new Error(
        `APIServiceBinding ${name} not Ready after ${Math.round(timeoutMs / 1000)} s (${now}); is the konnector running? ` +
          "kubectl -n NAMESPACE get pods,events",
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}
