// The provider copies of one bound resource seen through one watch per provider namespace, joined
// into one cache: for an identity that may not list or watch the resource across the cluster (a
// konnector's binding account, control-scope.ts). A namespace's watch starts when the namespaces
// cache shows it and stops when it goes; the view has synced when the namespaces have and every
// namespace's watch has.
import type { KubeObject, ResourceRef } from "../../kube/client.ts";
import type { Informer, InformerHandlers } from "../../kube/informer.ts";
import type { InformerRegistry } from "../informers.ts";
import type { HeldCache, ObjectCache } from "./control-scope.ts";

type Held = { informer: Informer; release: () => Promise<void> };

export class NamespacedCopies implements ObjectCache {
  readonly #registry: InformerRegistry;
  readonly #ref: ResourceRef;
  readonly #handlers: InformerHandlers;
  readonly #per = new Map<string, Held>();
  #namespaces!: HeldCache;
  #stopped = false;

  /**
   * namespaces: acquires the provider namespaces' cache with handlers (ControlScope.namespaces);
   * wanted: whether a namespace of it is one to watch (this binding's)
   */
  constructor(
    registry: InformerRegistry,
    ref: ResourceRef,
    handlers: InformerHandlers,
    namespaces: (handlers: InformerHandlers) => HeldCache,
    wanted: (ns: KubeObject) => boolean,
  ) {
    this.#registry = registry;
    this.#ref = ref;
    this.#handlers = handlers;
    this.#namespaces = namespaces({
      add: (ns) => (wanted(ns) ? this.#watch(ns.metadata.name) : undefined),
      update: (_old, ns) => (wanted(ns) ? this.#watch(ns.metadata.name) : undefined),
      delete: (ns) => void this.#unwatch(ns.metadata.name),
    });
  }

  /** the joined cache and its release: every namespace's watch and the namespaces' handlers */
  held(): HeldCache {
    return { informer: this, release: () => this.#release() };
  }

  #watch(namespace: string): void {
    if (this.#stopped || this.#per.has(namespace)) return;
    this.#per.set(namespace, this.#registry.acquire(this.#ref, { namespace, lean: true }, this.#handlers));
  }

  async #unwatch(namespace: string): Promise<void> {
    const held = this.#per.get(namespace);
    this.#per.delete(namespace);
    await held?.release();
  }

  async #release(): Promise<void> {
    this.#stopped = true;
    const all = [...this.#per.values()];
    this.#per.clear();
    await Promise.all([this.#namespaces.release(), ...all.map((h) => h.release())]);
  }

  get(name: string, namespace?: string): KubeObject | undefined {
    return namespace === undefined ? undefined : this.#per.get(namespace)?.informer.get(name, namespace);
  }

  list(namespace?: string): KubeObject[] {
    if (namespace !== undefined) return this.#per.get(namespace)?.informer.list(namespace) ?? [];
    return [...this.#per.values()].flatMap((h) => h.informer.list());
  }

  hasSynced(): boolean {
    return this.#namespaces.informer.hasSynced() && [...this.#per.values()].every((h) => h.informer.hasSynced());
  }

  onSynced(done: () => void): void {
    const look = () => {
      if (!this.#namespaces.informer.hasSynced()) {
        this.#namespaces.informer.onSynced(look);
        return;
      }
      const pending = [...this.#per.values()].find((h) => !h.informer.hasSynced());
      if (pending === undefined) done();
      else pending.informer.onSynced(look);
    };
    look();
  }

  get firstList(): Informer["firstList"] {
    return this.#namespaces.informer.firstList;
  }

  get failing(): boolean {
    return this.#namespaces.informer.failing || [...this.#per.values()].some((h) => h.informer.failing);
  }

  get lastError(): unknown {
    if (this.#namespaces.informer.failing) return this.#namespaces.informer.lastError;
    return [...this.#per.values()].find((h) => h.informer.failing)?.informer.lastError;
  }
}
