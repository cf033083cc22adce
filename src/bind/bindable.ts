// What an app cluster can bind: one entry per APIServiceExportTemplate on the control plane.
import { refs } from "../api/resources.ts";
import { conflictMessage, followed } from "../api/template-choice.ts";
import { parseClaims } from "../export/claims.ts";
import { describeClaim } from "../export/describe.ts";
import { InputError } from "../export/errors.ts";
import type { PermissionClaim } from "../export/types.ts";
import { KubeApiError, type KubeClient, type KubeObject } from "../kube/client.ts";

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
  /** set when other templates export the same API at the same rank: the sync refuses bindings of it, saying this */
  conflict?: string;
  /** set when a template of the binding's own namespace exports the same API: that one is followed, not this */
  shadowed?: string;
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

/**
 * The templates on the control plane, in one namespace or in all, each saying whether a binding
 * of bindingNamespace would follow it (see template-choice.ts).
 */
export async function listBindable(
  client: KubeClient,
  namespace?: string,
  bindingNamespace = namespace ?? "",
): Promise<BindableApi[]> {
  const { items } = await client.list(refs.templates, namespace ? { namespace } : {});
  return withConflicts(items.map(bindableApi), bindingNamespace).sort(
    (a, b) => a.id.localeCompare(b.id) || a.template.localeCompare(b.template),
  );
}

/**
 * As the sync chooses for a binding of bindingNamespace: an API exported by several templates at
 * the same rank says so on each, naming all of them; one shadowed by a template of the binding's
 * own namespace says which.
 */
export function withConflicts(apis: BindableApi[], bindingNamespace: string): BindableApi[] {
  const byId = new Map<string, BindableApi[]>();
  for (const a of apis) byId.set(a.id, [...(byId.get(a.id) ?? []), a]);
  const namespaceOf = (a: BindableApi) => a.template.split("/")[0] ?? "";
  return apis.map((a) => {
    const choice = followed(byId.get(a.id) ?? [], namespaceOf, bindingNamespace);
    if (choice === undefined) return a;
    if ("conflict" in choice) {
      if (!choice.conflict.includes(a)) return { ...a, shadowed: shadowedBy(choice.conflict, bindingNamespace) };
      return {
        ...a,
        conflict: conflictMessage(
          a.id,
          choice.conflict.map((c) => c.template),
        ),
      };
    }
    return choice.one === a ? a : { ...a, shadowed: shadowedBy([choice.one], bindingNamespace) };
  });
}

function shadowedBy(first: BindableApi[], bindingNamespace: string): string {
  return `not followed by bindings in namespace ${bindingNamespace}: ${first.map((f) => f.template).join(" and ")} of that namespace come${first.length === 1 ? "s" : ""} first`;
}

/**
 * The templates a user may see: in all namespaces, or, when only namespaced reading is granted
 * (a RoleBinding of klutch-bind:binder), in that namespace.
 */
export async function listVisibleBindable(client: KubeClient, namespace: string): Promise<BindableApi[]> {
  try {
    return await listBindable(client, undefined, namespace);
  } catch (err) {
    if (err instanceof KubeApiError && err.code === 403) return listBindable(client, namespace);
    throw err;
  }
}

/** The bindable APIs named by wanted (RESOURCE.GROUP each); throws naming the unknown one. */
export function pickExports(bindable: BindableApi[], wanted: string[]): BindableApi[] {
  // each export once, however often it was named
  return [...new Set(wanted)].map((id) => {
    const api = bindable.find((a) => a.id === id && a.shadowed === undefined);
    if (api === undefined) {
      throw new Error(`unknown export "${id}"; bindable: ${bindable.map((a) => a.id).join(", ") || "none"}`);
    }
    if (api.conflict !== undefined) throw new Error(`export "${id}": ${api.conflict}`);
    return api;
  });
}
