// klutch-bind's claim fieldSelectors: Kubernetes field-selector strings ("type=kubernetes.io/tls,
// metadata.name!=old"). Only fields every claimed object has (and a Secret's type) are allowed, so
// a selector is either understood exactly or refused: never read wider than written.
import { InputError } from "./errors.ts";

export type ClaimField = "metadata.name" | "metadata.namespace" | "type";
export type FieldTerm = { field: ClaimField; operator: "=" | "!="; value: string };

const fields: readonly ClaimField[] = ["metadata.name", "metadata.namespace", "type"];

/** The terms of one field selector, all of which must hold; throws an InputError naming field. */
export function parseFieldSelector(text: string, field: string): FieldTerm[] {
  if (text.trim() === "") throw new InputError(field, "must not be empty");
  return text.split(",").map((term) => {
    const match = /^\s*([a-zA-Z.]+)\s*(==|!=|=)\s*([^\s,=\\]*)\s*$/.exec(term);
    if (match === null) {
      throw new InputError(field, 'must be field=value, field==value or field!=value terms separated by ","', text);
    }
    const [, name = "", operator = "", value = ""] = match;
    if (!fields.includes(name as ClaimField)) {
      throw new InputError(field, `selects on ${name}: only ${fields.join(", ")} can be selected on`, text);
    }
    return { field: name as ClaimField, operator: operator === "!=" ? "!=" : "=", value };
  });
}

/** Whether an object satisfies every term; its namespace is the app namespace, as for selector.namespaces. */
export function fieldsMatch(
  terms: FieldTerm[],
  object: { name: string; namespace: string; type?: string | undefined },
): boolean {
  return terms.every(({ field, operator, value }) => {
    const actual =
      field === "metadata.name" ? object.name : field === "metadata.namespace" ? object.namespace : object.type;
    return operator === "=" ? actual === value : actual !== value;
  });
}
