// Discovery's answers (an API group's preferred version) as the web page remembers them a short
// while, per signed-in identity (RBAC may let people see different groups), so that a binding's
// page loaded again, in several tabs or by several people of one identity, does not ask the API
// server each time. Failures are not kept; the table is bounded, the oldest answer going first.
import { preferredVersion, type VersionOf } from "../bind/binding-contents.ts";
import type { Impersonation, KubeClient } from "../kube/client.ts";

const defaultTtlMs = 30_000;
const defaultMaxEntries = 1_000;

export class PreferredVersions {
  readonly #ttlMs: number;
  readonly #maxEntries: number;
  /** in insertion order: the first is the oldest */
  readonly #answers = new Map<string, { at: number; version: Promise<string> }>();

  constructor(options: { ttlMs?: number; maxEntries?: number } = {}) {
    this.#ttlMs = options.ttlMs ?? defaultTtlMs;
    this.#maxEntries = options.maxEntries ?? defaultMaxEntries;
  }

  /** The preferred versions as user (through client, which impersonates them) sees them. */
  for(user: Impersonation, client: KubeClient): VersionOf {
    const identity = JSON.stringify([user.username, [...(user.groups ?? [])].sort(), user.uid ?? ""]);
    return (group) => {
      const key = `${identity}\n${group}`;
      const now = performance.now();
      const known = this.#answers.get(key);
      if (known !== undefined && now - known.at < this.#ttlMs) return known.version;
      this.#answers.delete(key);
      const version = preferredVersion(client, group);
      this.#answers.set(key, { at: now, version });
      version.catch(() => {
        if (this.#answers.get(key)?.version === version) this.#answers.delete(key);
      });
      for (const oldest of this.#answers.keys()) {
        if (this.#answers.size <= this.#maxEntries) break;
        this.#answers.delete(oldest);
      }
      return version;
    };
  }

  /** answers kept (for tests) */
  get size(): number {
    return this.#answers.size;
  }
}
