// What an app cluster can bind: one entry per APIServiceExportTemplate on the control plane.
import { parseClaims } from "../export/claims.ts";
import { describeClaim } from "../export/describe.ts";
import { InputError } from "../export/errors.ts";
import type { PermissionClaim } from "../export/types.ts";
import { KubeApiError, type KubeClient, type KubeObject } from "../kube/client.ts";
import { refs } from "../sync/resources.ts";
import { conflictMessage } from "../sync/template-choice.ts";

export type BindableApi = {
  /** RESOURCE.GROUP, as --export takes it */
  id: string;
  group: string;
  resource: string;
  version: string;
  template: string;
  /** each claim in words: what the provider writes into the app cluster, what it reads */
  claims: string[];
  /** the claims themselves, as the binding records them when they are accepted */
  permissionClaims?: PermissionClaim[];
  /** set when other templates export the same API: the sync refuses bindings of it, saying this */
  conflict?: string;
};

export function bindableApi(template: KubeObject): BindableApi {
  const spec = (template.spec ?? {}) as {
    APIServiceSelector?: { group?: string; resource?: string; version?: string };
    permissionClaims?: unknown;
  };
  const group = spec.APIServiceSelector?.group ?? "";
  const resource = spec.APIServiceSelector?.resource ?? "";
  let claims: string[];
  let permissionClaims: PermissionClaim[] = [];
  try {
    permissionClaims = parseClaims(spec.permissionClaims, "spec.permissionClaims");
    claims = permissionClaims.map(describeClaim);
  } catch (err) {
    if (!(err instanceof InputError)) throw err;
    claims = [`(invalid claims: ${err.message})`];
  }
  return {
    id: `${resource}.${group}`,
    group,
    resource,
    version: spec.APIServiceSelector?.version ?? "",
    template: `${template.metadata.namespace}/${template.metadata.name}`,
    claims,
    permissionClaims,
  };
}

/** The templates on the control plane, in one namespace or in all. */
export async function listBindable(client: KubeClient, namespace?: string): Promise<BindableApi[]> {
  const { items } = await client.list(refs.templates, namespace ? { namespace } : {});
  return withConflicts(items.map(bindableApi)).sort(
    (a, b) => a.id.localeCompare(b.id) || a.template.localeCompare(b.template),
  );
}

/** Each API exported by more than one template says so, naming all of them. */
export function withConflicts(apis: BindableApi[]): BindableApi[] {
  const byId = new Map<string, string[]>();
  for (const a of apis) byId.set(a.id, [...(byId.get(a.id) ?? []), a.template]);
  return apis.map((a) => {
    const templates = byId.get(a.id) ?? [];
    return templates.length > 1 ? { ...a, conflict: conflictMessage(a.id, templates) } : a;
  });
}

/**
 * The templates a user may see: in all namespaces, or, when only namespaced reading is granted
 * (a RoleBinding of klutch-bind:binder), in that namespace.
 */
export async function listVisibleBindable(client: KubeClient, namespace: string): Promise<BindableApi[]> {
  try {
    return await listBindable(client);
  } catch (err) {
    if (err instanceof KubeApiError && err.code === 403) return listBindable(client, namespace);
    throw err;
  }
}

/** The bindable APIs named by wanted (RESOURCE.GROUP each); throws naming the unknown one. */
export function pickExports(bindable: BindableApi[], wanted: string[]): BindableApi[] {
  // each export once, however often it was named
  return [...new Set(wanted)].map((id) => {
    const api = bindable.find((a) => a.id === id);
    if (api === undefined) {
      throw new Error(`unknown export "${id}"; bindable: ${bindable.map((a) => a.id).join(", ") || "none"}`);
    }
    if (api.conflict !== undefined) throw new Error(`export "${id}": ${api.conflict}`);
    return api;
  });
}
