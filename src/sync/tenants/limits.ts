// What one binding namespace's bindings (one tenant's) may make on the shared control plane: provider
// namespaces and watches. Beyond a limit nothing is deleted: what needs more waits, and syncs once
// there is room (a provider namespace gone, a watch let go) or the limit is raised.

export type TenantLimitValues = {
  /** provider namespaces of one namespace's bindings together (--provider-namespaces-per-namespace) */
  providerNamespaces: number;
  /** control-plane watches of one namespace's bindings together (--control-watches-per-namespace) */
  controlWatches: number;
};

export const tenantLimitDefaults: TenantLimitValues = { providerNamespaces: 100, controlWatches: 200 };

/** A tenant is at a limit: the work waits (the queue retries it); the message names the limit and its flag. */
export class TenantLimitReached extends Error {}

// a namespace created here counts until the cache shows it, at most this long (then the cache decides)
const createdCountsMs = 60_000;

export class TenantLimits {
  readonly #limits: TenantLimitValues;
  readonly #providerNamespaces: (tenant: string) => Set<string> | undefined;
  /** created (or being created) by this process, not yet in the cache: by tenant, name → when */
  readonly #created = new Map<string, Map<string, number>>();
  readonly #watches = new Map<string, number>();

  /**
   * providerNamespaces: the names of the provider namespaces a namespace's bindings have on the
   * control plane now (from a cache), undefined while it has not listed them
   */
  constructor(limits: TenantLimitValues, providerNamespaces: (tenant: string) => Set<string> | undefined) {
    this.#limits = limits;
    this.#providerNamespaces = providerNamespaces;
  }

  get values(): TenantLimitValues {
    return this.#limits;
  }

  /**
   * Lets tenant have provider namespace name: at once when it has it, else when below the limit
   * (counted as made from then on). Throws TenantLimitReached otherwise.
   */
  admitNamespace(tenant: string, name: string): void {
    const existing = this.#providerNamespaces(tenant);
    if (existing === undefined)
      throw new Error("waiting for the first list of provider namespaces on the control plane");
    if (existing.has(name)) return;
    let created = this.#created.get(tenant);
    const now = Date.now();
    for (const [made, at] of created ?? []) {
      if (existing.has(made) || now - at > createdCountsMs) created?.delete(made);
    }
    if (created?.has(name)) return;
    const held = existing.size + (created?.size ?? 0);
    const limit = this.#limits.providerNamespaces;
    if (held >= limit) {
      throw new TenantLimitReached(
        `namespace ${tenant}'s bindings have ${held} provider namespaces on the control plane, the most --provider-namespaces-per-namespace (${limit}) allows: objects of app namespaces without one wait (nothing is deleted) until one goes or the limit is raised`,
      );
    }
    if (created === undefined) {
      created = new Map();
      this.#created.set(tenant, created);
    }
    created.set(name, now);
  }

  /** One control-plane watch for tenant: its release, or a TenantLimitReached when at the limit. */
  takeWatch(tenant: string): (() => void) | TenantLimitReached {
    const held = this.#watches.get(tenant) ?? 0;
    const limit = this.#limits.controlWatches;
    if (held >= limit) {
      return new TenantLimitReached(
        `namespace ${tenant}'s bindings hold ${held} control-plane watches, the most --control-watches-per-namespace (${limit}) allows: claimed objects of further app namespaces wait (nothing is deleted) until a watch is let go or the limit is raised`,
      );
    }
    this.#watches.set(tenant, held + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.#watches.get(tenant) ?? 1) - 1;
      if (left > 0) this.#watches.set(tenant, left);
      else this.#watches.delete(tenant);
    };
  }

  /** control-plane watches tenant holds now */
  watches(tenant: string): number {
    return this.#watches.get(tenant) ?? 0;
  }
}
