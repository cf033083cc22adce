// A kubeconfig that someone else wrote (stored in a binding's Secret, pasted into the web page) is
// data, not configuration of this process: it may not run commands (exec, auth-provider) or make
// the process read its own files (certificate paths, token-file), which would leak the sidecar's
// credentials or run code as the sidecar.
import { parse } from "yaml";

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
 * The message of a YAML error without the source lines its libraries quote: a kubeconfig's text
 * (or whatever a Secret held instead) never goes into a message.
 */
export function withoutSource(err: unknown): string {
  if (!(err instanceof Error)) return "not a kubeconfig";
  const mark = (err as { mark?: { line?: number; column?: number } }).mark;
  const reason = (err as { reason?: unknown }).reason;
  if (typeof reason === "string" && mark?.line !== undefined) {
    return `${unquoted(reason)} at line ${mark.line + 1}, column ${(mark.column ?? 0) + 1}`;
  }
  const linePos = (err as { linePos?: Array<{ line?: number; col?: number }> }).linePos?.[0];
  const firstLine = err.message.split("\n")[0] ?? "";
  const text = firstLine.replace(/:\s*$/, "").replace(/\s+at line \d+, column \d+.*/, "");
  if (linePos?.line !== undefined) return `${unquoted(text)} at line ${linePos.line}, column ${linePos.col ?? 1}`;
  // a schema error of the kubeconfig loader ("clusters[0].cluster.server is missing") names fields only
  return text === "" ? "not a kubeconfig" : unquoted(text);
}

/** A library's message with whatever it quoted from the text replaced. */
function unquoted(message: string): string {
  return message.replace(/"[^"]*"|'[^']*'|`[^`]*`/g, "(…)").slice(0, 200);
}
