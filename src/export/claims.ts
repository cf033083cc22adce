import { parseBehaviour } from "./claim-behaviour.ts";
import {
  apiGroup,
  nonEmptyString,
  object,
  oneOf,
  optionalList,
  optionalObject,
  optionalStringList,
  resourceName,
  stringMap,
  versionName,
} from "./decode.ts";
import { InputError } from "./errors.ts";
import { parseFieldSelector } from "./field-selector.ts";
import type { ClaimSelector, LabelSelector, LabelSelectorRequirement, Owner, PermissionClaim } from "./types.ts";

const owners: readonly Owner[] = ["Provider", "Consumer"];
const operators: readonly LabelSelectorRequirement["operator"][] = ["In", "NotIn", "Exists", "DoesNotExist"];

/** Decodes permission claims in the seed's shape; absent means none. */
export function parseClaims(value: unknown, field: string): PermissionClaim[] {
  const claims = optionalList(value, field) ?? [];
  const parsed = claims.map((c, i) => parseClaim(c, `${field}[${i}]`));
  const seen = new Map<string, number>();
  parsed.forEach((claim, i) => {
    const key = `${claim.resource}.${claim.group}`;
    const first = seen.get(key);
    if (first !== undefined) {
      throw new InputError(`${field}[${i}]`, `claims ${key} again (already claimed by ${field}[${first}])`);
    }
    seen.set(key, i);
  });
  return parsed;
}

function parseClaim(value: unknown, field: string): PermissionClaim {
  const claim = object(value, field);
  // absent means the core group (secrets, configmaps), as in klutch-bind
  const parsed: PermissionClaim = {
    group: claim.group === undefined ? "" : apiGroup(claim.group, `${field}.group`),
    resource: resourceName(claim.resource, `${field}.resource`),
    version: versionName(claim.version, `${field}.version`),
    selector: parseSelector(claim.selector, `${field}.selector`),
    ...parseBehaviour(claim, field),
  };
  // the API server knows a type field for Secrets only: elsewhere "type=x" would select nothing
  const isSecrets = parsed.group === "" && parsed.resource === "secrets";
  for (const [i, text] of (parsed.selector.fieldSelectors ?? []).entries()) {
    if (!isSecrets && parseFieldSelector(text, "").some((t) => t.field === "type")) {
      throw new InputError(`${field}.selector.fieldSelectors[${i}]`, "selects on type, which only secrets have", text);
    }
  }
  return parsed;
}

function parseSelector(value: unknown, field: string): ClaimSelector {
  // klutch-bind's default selector is {}: every object, of either owner
  const selector = object(value ?? {}, field);
  const result: ClaimSelector = {};
  if (selector.owner !== undefined && selector.owner !== null) {
    result.owner = oneOf(selector.owner, owners, `${field}.owner`);
  }
  // ["*"] is klutch-bind's default, the same as absent: kept out, so a claim reads the same
  // whether or not an API server filled the default in
  const names = optionalStringList(selector.names, `${field}.names`);
  if (names !== undefined && !everything(names)) result.names = names;
  const namespaces = optionalStringList(selector.namespaces, `${field}.namespaces`);
  if (namespaces !== undefined && !everything(namespaces)) result.namespaces = namespaces;
  const labelSelector = optionalObject(selector.labelSelector, `${field}.labelSelector`);
  if (labelSelector !== undefined) result.labelSelector = parseLabelSelector(labelSelector, `${field}.labelSelector`);
  const labelSelectors = optionalList(selector.labelSelectors, `${field}.labelSelectors`);
  if (labelSelectors !== undefined) {
    result.labelSelectors = labelSelectors.map((m, i) => stringMap(m, `${field}.labelSelectors[${i}]`));
  }
  const fieldSelectors = optionalStringList(selector.fieldSelectors, `${field}.fieldSelectors`);
  if (fieldSelectors !== undefined) {
    for (const [i, text] of fieldSelectors.entries()) parseFieldSelector(text, `${field}.fieldSelectors[${i}]`);
    result.fieldSelectors = fieldSelectors;
  }
  return result;
}

function parseLabelSelector(value: Record<string, unknown>, field: string): LabelSelector {
  const result: LabelSelector = {};
  if (value.matchLabels !== undefined) result.matchLabels = stringMap(value.matchLabels, `${field}.matchLabels`);
  const expressions = optionalList(value.matchExpressions, `${field}.matchExpressions`);
  if (expressions !== undefined) {
    result.matchExpressions = expressions.map((e, i) => {
      const path = `${field}.matchExpressions[${i}]`;
      const expr = object(e, path);
      const operator = oneOf(expr.operator, operators, `${path}.operator`);
      const values = optionalStringList(expr.values, `${path}.values`) ?? [];
      const needsValues = operator === "In" || operator === "NotIn";
      if (needsValues !== values.length > 0) {
        throw new InputError(
          `${path}.values`,
          needsValues ? `must not be empty for ${operator}` : `must be empty for ${operator}`,
        );
      }
      const requirement: LabelSelectorRequirement = { key: nonEmptyString(expr.key, `${path}.key`), operator };
      if (needsValues) requirement.values = values;
      return requirement;
    });
  }
  return result;
}

function everything(patterns: string[]): boolean {
  return patterns.length === 1 && patterns[0] === "*";
}
