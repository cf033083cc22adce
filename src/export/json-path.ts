// klutch-bind's update.fields and update.preserving name parts of an object by JSON path. The
// sync reads the plain form: `data.password`, `.spec.size`, `$.data['tls.crt']`, `spec.items[0]`.
// Wildcards, filters and recursive descent select more than one place and are not read.

export type PathSegment = string | number;

/** Top-level fields the sync never copies (identity, metadata, status): a path into them is not acted on. */
const notPayload = new Set(["apiVersion", "kind", "metadata", "status"]);

/** The segments of a path, or a reason it is not one the sync acts on. */
export function parseJsonPath(text: string): PathSegment[] | { unsupported: string } {
  let rest = text.trim();
  if (rest.startsWith("$")) rest = rest.slice(1);
  if (rest.startsWith("{") && rest.endsWith("}")) rest = rest.slice(1, -1);
  const segments: PathSegment[] = [];
  while (rest.length > 0) {
    if (rest.startsWith("..")) return { unsupported: "recursive descent (..) selects more than one place" };
    if (rest.startsWith(".")) rest = rest.slice(1);
    const bracket = /^\[(?:(\d+)|'([^']*)'|"([^"]*)")\]/.exec(rest);
    if (bracket) {
      segments.push(bracket[1] !== undefined ? Number(bracket[1]) : (bracket[2] ?? bracket[3] ?? ""));
      rest = rest.slice(bracket[0].length);
      continue;
    }
    const name = /^[^.[\]]+/.exec(rest);
    if (!name || name[0].includes("*") || name[0].includes("?") || name[0].includes("@")) {
      return { unsupported: "only names, ['quoted.names'] and [index] are read (no wildcards or filters)" };
    }
    segments.push(name[0]);
    rest = rest.slice(name[0].length);
  }
  if (segments.length === 0) return { unsupported: "names no field" };
  if (typeof segments[0] !== "string" || notPayload.has(segments[0])) {
    return { unsupported: "metadata, status, apiVersion and kind are not synced this way" };
  }
  return segments;
}

/** The value at path, undefined when any step is missing. */
export function valueAt(root: unknown, path: readonly PathSegment[]): unknown {
  let at: unknown = root;
  for (const segment of path) {
    if (at === null || typeof at !== "object") return undefined;
    if (Array.isArray(at) !== (typeof segment === "number")) return undefined;
    if (!Object.hasOwn(at, segment)) return undefined;
    at = (at as Record<string | number, unknown>)[segment];
  }
  return at;
}

/**
 * A deep copy of base in which each path holds from's value there (absent in from: removed), so
 * the side that controls a path decides its value, its absence included. Missing parents are
 * made as objects; a step through an array needs the array to be there already.
 */
export function overlay<T extends Record<string, unknown>>(base: T, from: unknown, paths: readonly PathSegment[][]): T {
  const result = structuredClone(base);
  for (const path of paths) {
    const value = valueAt(from, path);
    let parent: Record<string | number, unknown> = result;
    let reachable = true;
    for (const segment of path.slice(0, -1)) {
      const next = parent[segment];
      if (next !== null && typeof next === "object") {
        parent = next as Record<string | number, unknown>;
      } else if (value !== undefined && typeof segment === "string" && !Array.isArray(parent)) {
        parent[segment] = {};
        parent = parent[segment] as Record<string, unknown>;
      } else {
        reachable = false;
        break;
      }
    }
    const last = path[path.length - 1];
    if (!reachable || last === undefined) continue;
    if (value === undefined) {
      if (Array.isArray(parent)) continue; // removing an element would shift the others
      delete parent[last];
    } else if (Array.isArray(parent) === (typeof last === "number")) {
      parent[last] = structuredClone(value);
    }
  }
  return result;
}
