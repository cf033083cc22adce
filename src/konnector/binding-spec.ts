// The app side's APIServiceBinding (klutch.anynines.com/v1alpha1, cluster-scoped; its CRD is
// deploy/app-cluster/klutch-apiservicebinding-crd.yaml): named after the APIServiceExport it binds
// (RESOURCE.GROUP), naming the Secret with the control plane's kubeconfig, and recording per claim
// whether the app cluster's owner accepted it. Decoded strictly, each error naming the field: anyone
// allowed to write these objects in the app cluster wrote it.
import type { DeletionPolicy } from "../api/binding-spec.ts";
import { pullAnnotations } from "../api/pull-binding.ts";
import { apiGroup, nonEmptyString, object, oneOf, optionalList, resourceName } from "../export/decode.ts";
import { InputError } from "../export/errors.ts";
import type { PermissionClaim } from "../export/types.ts";
import type { KubeObject } from "../kube/client.ts";

export type SecretRef = { name: string; namespace: string; key: string };
export type ClaimState = { group: string; resource: string; state: "Accepted" | "Rejected" };
export type BindingSpec = { kubeconfigSecretRef: SecretRef; claims: ClaimState[] };

export function decodeBindingSpec(binding: KubeObject): BindingSpec {
  const spec = object(binding.spec, "spec");
  const ref = object(spec.kubeconfigSecretRef, "spec.kubeconfigSecretRef");
  const key = ref.key === undefined ? "kubeconfig" : nonEmptyString(ref.key, "spec.kubeconfigSecretRef.key");
  const claims = (optionalList(spec.permissionClaims, "spec.permissionClaims") ?? []).map((value, i) => {
    const field = `spec.permissionClaims[${i}]`;
    const claim = object(value, field);
    return {
      group: claim.group === undefined || claim.group === "" ? "" : apiGroup(claim.group, `${field}.group`),
      resource: resourceName(claim.resource, `${field}.resource`),
      state: oneOf(claim.state, ["Accepted", "Rejected"] as const, `${field}.state`),
    };
  });
  return {
    kubeconfigSecretRef: {
      name: nonEmptyString(ref.name, "spec.kubeconfigSecretRef.name"),
      namespace: nonEmptyString(ref.namespace, "spec.kubeconfigSecretRef.namespace"),
      key,
    },
    claims,
  };
}

/** The export's claims this binding accepted (state: Accepted), in the export's order; the rest are not synced. */
export function acceptedClaims(exported: readonly PermissionClaim[], spec: BindingSpec): PermissionClaim[] {
  return exported.filter((c) =>
    spec.claims.some((s) => s.state === "Accepted" && s.group === c.group && s.resource === c.resource),
  );
}

/** The binding's name must be the export's: RESOURCE.GROUP. */
export function boundExportName(binding: KubeObject): string {
  const name = binding.metadata.name;
  if (!name.includes(".")) {
    throw new InputError("metadata.name", "must be the APIServiceExport it binds: RESOURCE.GROUP", name);
  }
  return name;
}

/**
 * What deleting the binding does to the provider copies: its annotation bind.klutch.dev/deletion-policy,
 * Delete or Orphan; absent, Orphan. Any other value is an error naming it (the binding is then held).
 */
export function deletionPolicyOf(binding: KubeObject): DeletionPolicy {
  const value = binding.metadata.annotations?.[pullAnnotations.deletionPolicy];
  if (value === undefined || value === "Orphan") return "Orphan";
  if (value === "Delete") return "Delete";
  throw new InputError(`metadata.annotations["${pullAnnotations.deletionPolicy}"]`, "must be Delete or Orphan", value);
}
