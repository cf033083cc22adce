// Informers shared per cluster, resource and selection: every consumer of the same watch gets the
// same cache, and the watch stops when the last one lets go. No cache keeps managedFields; a lean
// one keeps no last-applied annotation either (lean.ts: for objects the sync writes back only as
// patches, never whole).
import type { Logger } from "pino";
import type { CacheBudget } from "../kube/cache-budget.ts";
import type { KubeClient, ListOptions, ResourceRef } from "../kube/client.ts";
import { Informer, type InformerHandlers } from "../kube/informer.ts";
import { leanObject, withoutManagedFields } from "../kube/lean.ts";

type Entry = { informer: Informer; users: number };

export class InformerRegistry {
  readonly #entries = new Map<string, Entry>();
  readonly client: KubeClient;
  readonly #logger: Logger;
  readonly #budget: CacheBudget | undefined;

  /** budget: shared by every cache of this registry (and of others given the same one) */
  constructor(client: KubeClient, logger: Logger, budget?: CacheBudget) {
    this.client = client;
    this.#logger = logger;
    this.#budget = budget;
  }

  /**
   * The shared informer for ref and options, with handlers added to it. release() removes the
   * handlers at once (before it resolves), so a stopped user gets no more events even while others
   * keep the informer running. tenant: whose lists a new informer's are (KubeClient.forTenant),
   * for a selection only that tenant's syncs ask for.
   */
  acquire(
    ref: ResourceRef,
    options: ListOptions & { lean?: boolean; tenant?: string } = {},
    handlers?: InformerHandlers,
  ): { informer: Informer; release: () => Promise<void> } {
    const lean = options.lean === true;
    const key = JSON.stringify([
      ref.group,
      ref.version,
      ref.resource,
      options.namespace,
      options.labelSelector,
      options.fieldSelector,
      lean,
    ]);
    let entry = this.#entries.get(key);
    if (entry === undefined) {
      const { lean: _lean, tenant, ...listOptions } = options;
      const client = tenant === undefined ? this.client : this.client.forTenant(tenant);
      const informer = new Informer(client, ref, {
        ...listOptions,
        logger: this.#logger,
        transform: lean ? leanObject : withoutManagedFields,
        ...(this.#budget ? { budget: this.#budget } : {}),
      });
      informer.start();
      entry = { informer, users: 0 };
      this.#entries.set(key, entry);
    }
    entry.users++;
    const held = entry;
    const removeHandlers = handlers ? held.informer.addHandlers(handlers) : () => undefined;
    let released = false;
    return {
      informer: held.informer,
      release: async () => {
        if (released) return;
        released = true;
        removeHandlers();
        held.users--;
        if (held.users === 0) {
          this.#entries.delete(key);
          await held.informer.stop();
        }
      },
    };
  }

  async stopAll(): Promise<void> {
    const all = [...this.#entries.values()];
    this.#entries.clear();
    await Promise.all(all.map((e) => e.informer.stop()));
  }
}
