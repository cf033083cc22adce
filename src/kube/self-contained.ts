// A kubeconfig that someone else wrote (stored in a binding's Secret, pasted into the web page) is
// data, not configuration of this process: it may not run commands (exec, auth-provider) or make
// the process read its own files (certificate paths, token-file), which would leak the sidecar's
// credentials or run code as the sidecar.
import { parse, YAMLError } from "yaml";

const forbiddenUserKeys: Record<string, string> = {
  exec: "runs a command (exec)",
  "auth-provider": "uses an auth-provider plugin",
  "token-file": "reads its token from a file (token-file)",
  "client-certificate": "reads its client certificate from a file (use client-certificate-data)",
  "client-key": "reads its client key from a file (use client-key-data)",
};
const forbiddenClusterKeys: Record<string, string> = {
  "certificate-authority": "reads its CA from a file (use certificate-authority-data)",
};

type Named = { name?: unknown; user?: unknown; cluster?: unknown };

function entries(doc: Record<string, unknown>, list: string, field: string): Array<[string, Record<string, unknown>]> {
  const items = doc[list];
  if (!Array.isArray(items)) return [];
  return items.flatMap((item: Named) => {
    const body = (item as Record<string, unknown>)?.[field];
    if (typeof body !== "object" || body === null) return [];
    return [[String(item.name ?? "?"), body as Record<string, unknown>]];
  });
}

/**
 * The YAML of a kubeconfig, read one way for everyone: this check must see the very document
 * kubeconfig.ts uses, or a merge key (<<) could hide an exec plugin from it.
 */
export function readKubeconfigYaml(text: string): unknown {
  // warnings (an unknown tag, say) are not printed; merge keys (<<) as client-node's js-yaml has them
  return parse(text, { logLevel: "error", merge: true });
}

/**
 * Throws an Error naming the first entry that is not self-contained. A kubeconfig made with
 * `kubectl config view --minify --flatten --raw` passes, as long as it uses no exec plugin.
 */
export function assertSelfContained(text: string): void {
  let doc: unknown;
  try {
    doc = readKubeconfigYaml(text);
  } catch (err) {
    throw new Error(`invalid kubeconfig: ${withoutSource(err)}`);
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    throw new Error("invalid kubeconfig: not a YAML or JSON object");
  }
  const hint =
    "; a kubeconfig for a binding must carry its credentials inline (kubectl config view --minify --flatten --raw)";
  for (const [name, user] of entries(doc as Record<string, unknown>, "users", "user")) {
    for (const [key, why] of Object.entries(forbiddenUserKeys)) {
      if (user[key] !== undefined && user[key] !== "") throw new Error(`kubeconfig user "${name}" ${why}${hint}`);
    }
  }
  for (const [name, cluster] of entries(doc as Record<string, unknown>, "clusters", "cluster")) {
    for (const [key, why] of Object.entries(forbiddenClusterKeys)) {
      if (cluster[key] !== undefined && cluster[key] !== "")
        throw new Error(`kubeconfig cluster "${name}" ${why}${hint}`);
    }
  }
}

/**
 * A fixed description of an error reading a kubeconfig's YAML: its kind and position, never its
 * message, which may quote the text (an alias's name, a key, the line itself), and a kubeconfig's
 * text (or whatever a Secret held instead) never goes into a message.
 */
export function withoutSource(err: unknown): string {
  if (err instanceof YAMLError) {
    // the codes are the library's own constants; anything else is not passed on
    const code = /^[A-Z][A-Z0-9_]{0,39}$/.test(err.code) ? err.code : "UNKNOWN";
    const at = err.linePos?.[0];
    const where = at === undefined ? "" : ` at line ${Math.trunc(at.line)}, column ${Math.trunc(at.col)}`;
    return `YAML error ${code}${where}`;
  }
  if (!(err instanceof Error)) return "the YAML could not be read";
  // aliases and merge keys are resolved after parsing: their errors have neither code nor position
  const known = resolveErrors.find(([start]) => err.message.startsWith(start));
  if (known !== undefined) return `YAML error ${known[1]}`;
  const kind = errorKinds.find((k) => k === err.name) ?? "Error";
  return `the YAML could not be read (${kind})`;
}

const resolveErrors: ReadonlyArray<readonly [string, string]> = [
  ["Unresolved alias", "BAD_ALIAS: an alias names no anchor set before it"],
  ["Excessive alias count", "RESOURCE_EXHAUSTION: too many aliases"],
  ["Alias", "BAD_ALIAS"],
  ["Merge sources must be maps", "BAD_MERGE: a merge key (<<) names no mapping"],
];
const errorKinds = ["Error", "TypeError", "ReferenceError", "RangeError", "SyntaxError"] as const;
