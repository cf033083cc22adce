// What one tenant's (one binding namespace's) app clusters may take of this process together: the
// objects and bytes their caches hold, the lists being read from them, and host name lookups.
// One tenant's clusters that send endless objects or hang their lookups use up that tenant's share.
import { CacheBudget, type CacheLimits } from "../../kube/cache-budget.ts";
import type { ClientOptions } from "../../kube/client.ts";
import { defaultListCeilingBytes, ListCeiling } from "../../kube/list-ceiling.ts";
import { LookupGate } from "../../kube/lookup.ts";

export class TenantAppShares {
  readonly #cacheLimits: CacheLimits;
  readonly #budgets = new Map<string, CacheBudget>();
  /** every namespace's app cluster lists being read, together (list-ceiling.ts) */
  readonly #listCeiling: ListCeiling;
  /** one namespace's (one tenant's) host name lookups run two at a time (lookup.ts) */
  readonly #lookups = new LookupGate();

  /** listBytesInFlight: default defaultListCeilingBytes() */
  constructor(cacheLimits: CacheLimits, listBytesInFlight?: number) {
    this.#cacheLimits = cacheLimits;
    this.#listCeiling = new ListCeiling(listBytesInFlight ?? defaultListCeilingBytes(), "--app-lists-mib-in-flight");
  }

  /** Options for a client of an app cluster of a binding of namespace: its host name lookups gated per namespace. */
  clientOptions(base: ClientOptions | undefined, namespace: string): ClientOptions {
    return { ...base, lookup: this.#lookups.lookupFor(namespace) };
  }

  /** The app cache budget of a namespace's bindings (kept while the process runs: a few numbers each). */
  cacheBudget(namespace: string): CacheBudget {
    let budget = this.#budgets.get(namespace);
    if (budget === undefined) {
      budget = new CacheBudget(
        this.#cacheLimits,
        `the app cluster caches of namespace ${namespace}'s bindings (--app-cache-objects-per-namespace, --app-cache-mib-per-namespace)`,
        this.#listCeiling,
      );
      this.#budgets.set(namespace, budget);
    }
    return budget;
  }
}
