// Which APIServiceExportTemplate a binding's export follows, of those that select the export's
// group and resource: the one in the binding's own namespace, else the one in another template
// namespace. Two or more at the same rank would leave the choice (and so which claims apply) to
// the order of a cache: the export is refused instead, naming every one of them, until only one is
// left. The status names the template followed (status.exports[].template).
import type { KubeObject } from "../kube/client.ts";

/** The group and resource a template exports (spec.APIServiceSelector), or undefined when it names none. */
export function templateApi(template: KubeObject): { group: string; resource: string } | undefined {
  const selector = (template.spec as { APIServiceSelector?: { group?: unknown; resource?: unknown } } | undefined)
    ?.APIServiceSelector;
  if (typeof selector?.resource !== "string") return undefined;
  return { group: typeof selector.group === "string" ? selector.group : "", resource: selector.resource };
}

/** Why an export exported by several templates is refused; templates as NAMESPACE/NAME. */
export function conflictMessage(exportId: string, templates: readonly string[]): string {
  const named = [...templates].sort();
  return `templates ${named.join(" and ")} all export ${exportId}: refused until only one does (delete the others, or change their spec.APIServiceSelector; one in the binding's own namespace would come first)`;
}

/**
 * Of the templates that export one API, the one a binding of bindingNamespace follows (its own
 * namespace's first), or those in conflict, or none.
 */
export function followed<T>(
  candidates: readonly T[],
  namespaceOf: (t: T) => string,
  bindingNamespace: string,
): { one: T } | { conflict: T[] } | undefined {
  const own = candidates.filter((t) => namespaceOf(t) === bindingNamespace);
  const rank = own.length > 0 ? own : candidates;
  const [first, ...more] = rank;
  if (first === undefined) return undefined;
  return more.length === 0 ? { one: first } : { conflict: [...rank] };
}

export type TemplateChoice = { template: KubeObject } | { message: string; conflict: boolean };

export function exportTemplate(
  templates: readonly KubeObject[],
  group: string,
  resource: string,
  bindingNamespace: string,
): TemplateChoice {
  const id = `${resource}.${group}`;
  const selecting = templates.filter((t) => {
    const api = templateApi(t);
    return api?.group === group && api.resource === resource;
  });
  const choice = followed(selecting, (t) => t.metadata.namespace ?? "", bindingNamespace);
  if (choice === undefined) return { message: `no APIServiceExportTemplate exports ${id}`, conflict: false };
  if ("one" in choice) return { template: choice.one };
  const names = choice.conflict.map((t) => `${t.metadata.namespace}/${t.metadata.name}`);
  return { message: conflictMessage(id, names), conflict: true };
}
