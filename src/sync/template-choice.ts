// Which APIServiceExportTemplate a binding's export follows: the one that selects the export's
// group and resource. Two or more selecting the same API would leave the choice (and so which
// claims apply) to the order of a cache: the export is refused instead, naming every one of them,
// until only one is left (klutch-bind's backend finds a template by group and resource too).
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
  return `templates ${named.join(" and ")} all export ${exportId}: refused until only one does (delete the others, or change their spec.APIServiceSelector)`;
}

export type TemplateChoice = { template: KubeObject } | { message: string; conflict: boolean };

export function exportTemplate(templates: readonly KubeObject[], group: string, resource: string): TemplateChoice {
  const id = `${resource}.${group}`;
  const selecting = templates.filter((t) => {
    const api = templateApi(t);
    return api?.group === group && api.resource === resource;
  });
  const [only, ...others] = selecting;
  if (only === undefined) return { message: `no APIServiceExportTemplate exports ${id}`, conflict: false };
  if (others.length === 0) return { template: only };
  const names = selecting.map((t) => `${t.metadata.namespace}/${t.metadata.name}`);
  return { message: conflictMessage(id, names), conflict: true };
}
