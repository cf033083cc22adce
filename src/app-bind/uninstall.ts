// The app cluster's side of `klutch-bind unbind --app RESOURCE.GROUP`: what goes once the konnector
// has released a binding. The konnector's rights are re-applied for the bindings left (shrunk to
// them); when none is left, the konnector itself goes (Deployment, ServiceAccount, RBAC, the claims
// RoleBindings it made in app namespaces, its Lease) and its namespace, unless that holds more than
// the konnector's. The binding's kubeconfig Secret goes once no other binding names it. The bound API's CRD never goes:
// deleting it would delete the app team's objects. Planned first, so that a dry run can print it.
import { bindingRef, pullRefs } from "../api/pull-binding.ts";
import { refs } from "../api/resources.ts";
import { accountObjects } from "../app-access/account.ts";
import { KubeApiError, type KubeClient, type KubeObject, type ResourceRef } from "../kube/client.ts";
import {
  type AppBinding,
  appObjects,
  konnectorAccount,
  konnectorAccountName,
  konnectorDeploymentName,
  konnectorLeaseName,
} from "./app-objects.ts";
import { bindingCrd, resourceOf } from "./install.ts";

/** the konnector's Lease (src/cli/konnector.ts), in its namespace */

export type Removal = { kind: string; ref: ResourceRef; name: string; namespace?: string };

export type UnbindPlan = {
  /** the konnector's ClusterRoles for the bindings left, to apply (none when none is left) */
  rbac: KubeObject[];
  /** what to delete, in order */
  removals: Removal[];
  /** the konnector goes: after its Deployment, its Lease is waited to be let go before its rights go */
  konnectorLease: { namespace: string; name: string } | undefined;
};

/** The kubeconfig Secret an APIServiceBinding names, as "namespace/name". */
function secretOf(binding: KubeObject): string | undefined {
  const ref = (binding.spec as { kubeconfigSecretRef?: { name?: unknown; namespace?: unknown } } | undefined)
    ?.kubeconfigSecretRef;
  return typeof ref?.name === "string" && typeof ref.namespace === "string"
    ? `${ref.namespace}/${ref.name}`
    : undefined;
}

/**
 * What follows the release of binding gone, in the konnector's namespace: left are the bindings the
 * konnector serves without it (their rights), others every other APIServiceBinding (their Secrets).
 */
export async function planUnbind(
  app: KubeClient,
  namespace: string,
  gone: KubeObject,
  left: readonly AppBinding[],
  others: readonly KubeObject[],
): Promise<UnbindPlan> {
  const named = new Set(others.flatMap((b) => secretOf(b) ?? []));
  const ownSecret = secretOf(gone);
  const removals: Removal[] = [];
  const add = (ref: ResourceRef, kind: string, name: string, ns?: string) =>
    removals.push({ kind, ref, name, ...(ns ? { namespace: ns } : {}) });
  const rbac =
    left[0] === undefined
      ? []
      : appObjects({ namespace, image: "unused", binding: left[0], served: left }, bindingCrd()).filter(
          (o) => o.kind === "ClusterRole",
        );
  if (left.length === 0) {
    const names = accountObjects(konnectorAccount(namespace));
    const namespaceRole = `${names.mainRole}:namespace`;
    add(refs.deployments, "Deployment", konnectorDeploymentName, namespace);
    add(refs.clusterRoleBindings, "ClusterRoleBinding", names.clusterRoleBinding);
    add(refs.roleBindings, "RoleBinding", namespaceRole, namespace);
    add(pullRefs.roles, "Role", namespaceRole, namespace);
    // the claims role, bound by the konnector in each app namespace it served
    const claimBindings = (await app.list(refs.roleBindings)).items.filter(
      (rb) =>
        rb.metadata.name === names.claimsRoleBinding &&
        (rb as { roleRef?: { name?: string } }).roleRef?.name === names.claimsRole,
    );
    for (const rb of claimBindings) add(refs.roleBindings, "RoleBinding", rb.metadata.name, rb.metadata.namespace);
    add(refs.clusterRoles, "ClusterRole", names.claimsRole);
    add(refs.clusterRoles, "ClusterRole", names.mainRole);
    add(refs.serviceAccounts, "ServiceAccount", konnectorAccountName, namespace);
    add(refs.leases, "Lease", konnectorLeaseName, namespace);
  }
  // the binding's kubeconfig Secret, once no other binding names it (another bind may be making
  // a Secret of its own right now: only the one named by the binding gone is proven ours to delete)
  if (ownSecret !== undefined && !named.has(ownSecret)) {
    const [ns = "", name = ""] = ownSecret.split("/");
    // and only the Secret bind made (its label): a Secret of the team's own that a binding names stays
    const secret = await app.get(refs.secrets, name, ns);
    if (secret?.metadata.labels?.["app.kubernetes.io/managed-by"] === "klutch-bind")
      add(refs.secrets, "Secret", name, ns);
  }
  return {
    rbac,
    removals,
    konnectorLease: left.length === 0 ? { namespace, name: konnectorLeaseName } : undefined,
  };
}

/** Each step of the plan as a line: what it does, or would do. */
export function describePlan(plan: UnbindPlan): string[] {
  return [
    ...plan.rbac.map((o) => `apply ClusterRole ${o.metadata.name} (the konnector's rights, for the bindings left)`),
    ...plan.removals.flatMap((r) => [
      `delete ${r.kind} ${r.namespace ? `${r.namespace}/` : ""}${r.name}`,
      ...(r.kind === "Deployment" && plan.konnectorLease
        ? ["wait until the konnector has stopped (its Lease is free)"]
        : []),
    ]),
  ];
}

/** Carries out the plan, saying each step; what is gone already is no error. */
export async function carryOut(
  app: KubeClient,
  plan: UnbindPlan,
  fieldManager: string,
  say: (line: string) => void,
  timeoutMs: number,
): Promise<void> {
  for (const obj of plan.rbac) {
    await app.apply(resourceOf(obj), obj, fieldManager, true);
    say(`✓ ClusterRole ${obj.metadata.name} applied: the konnector's rights shrunk to the bindings left`);
  }
  for (const r of plan.removals) {
    const deleted = await app.delete(r.ref, r.name, r.namespace, { propagationPolicy: "Background" });
    say(
      `${deleted ? "✓" : "·"} ${r.kind} ${r.namespace ? `${r.namespace}/` : ""}${r.name} ${deleted ? "deleted" : "was gone"}`,
    );
    // its rights go only once it stopped: a konnector running without them fails every request
    if (r.kind === "Deployment" && plan.konnectorLease) await leaseLetGo(app, plan.konnectorLease, timeoutMs, say);
  }
}

type LeaseSpec = { holderIdentity?: string; renewTime?: string; leaseDurationSeconds?: number };

/** Waits until no konnector holds its Lease (let go on shutdown, or expired), saying so now and then. */
async function leaseLetGo(
  app: KubeClient,
  at: { namespace: string; name: string },
  timeoutMs: number,
  say: (line: string) => void,
): Promise<void> {
  const started = Date.now();
  let told = 0;
  for (;;) {
    const spec = (await app.get(refs.leases, at.name, at.namespace))?.spec as LeaseSpec | undefined;
    const renewed = spec?.renewTime ? Date.parse(spec.renewTime) : 0;
    const held = !!spec?.holderIdentity && renewed + (spec.leaseDurationSeconds ?? 0) * 1000 > Date.now();
    if (!held) {
      say("✓ the konnector has stopped (its Lease is free)");
      return;
    }
    const waited = Date.now() - started;
    if (waited > timeoutMs) {
      throw new Error(
        `the konnector still holds Lease ${at.namespace}/${at.name} (${spec?.holderIdentity}) ${Math.round(waited / 1000)} s after its Deployment was deleted: ` +
          "stop it, then run unbind again to remove its rights",
      );
    }
    if (waited - told >= 10_000) {
      told = waited;
      say(`  … waiting for the konnector ${spec?.holderIdentity} to stop (${Math.round(waited / 1000)} s)`);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** The APIServiceBindings of the app cluster; none when klutch-bind's CRD is not installed. */
export async function appBindings(app: KubeClient): Promise<KubeObject[]> {
  try {
    return (await app.list(bindingRef)).items;
  } catch (err) {
    if (err instanceof KubeApiError && err.code === 404) return [];
    throw err;
  }
}
