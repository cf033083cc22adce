// Where a konnector's mirroring looks on the control plane (../sync/mirror/control-scope.ts): its
// binding account may list nothing cluster-wide, so its provider namespaces are those its
// APIServiceNamespaces were granted (status.namespace, written by the control plane's sync only:
// the account may not write that status), presented to the mirroring as the Namespaces the sync
// labels, and the copies are watched per provider namespace. A provider namespace is asked for by
// creating an APIServiceNamespace named after the app namespace, then waiting for its grant.
import { labels, providerNamespace } from "../api/naming.ts";
import { pullApiVersion, pullRefs } from "../api/pull-binding.ts";
import { KubeApiError, type KubeClient, type KubeObject } from "../kube/client.ts";
import { conditionOf } from "../kube/conditions.ts";
import type { Informer, InformerHandlers } from "../kube/informer.ts";
import type { InformerRegistry } from "../sync/informers.ts";
import type { ControlScope, HeldCache, ObjectCache } from "../sync/mirror/control-scope.ts";
import { NamespacedCopies } from "../sync/mirror/namespaced-copies.ts";

/** how long a reconcile waits for the control plane to grant a provider namespace (it is retried after) */
export const grantWaitMs = 30_000;

export class ServiceNamespaces {
  readonly #registry: InformerRegistry;
  readonly #control: KubeClient;
  readonly #clusterNs: string;
  readonly #bindingKey: string;
  /** resolvers waiting for a grant, by app namespace */
  readonly #waiting = new Map<string, Set<() => void>>();
  readonly #own: { informer: Informer; release: () => Promise<void> };

  constructor(registry: InformerRegistry, control: KubeClient, clusterNs: string, bindingKey: string) {
    this.#registry = registry;
    this.#control = control;
    this.#clusterNs = clusterNs;
    this.#bindingKey = bindingKey;
    const woken = (sn: KubeObject) => {
      if (this.#granted(sn) === undefined) return;
      for (const wake of this.#waiting.get(sn.metadata.name) ?? []) wake();
    };
    this.#own = registry.acquire(
      pullRefs.serviceNamespaces,
      { namespace: clusterNs },
      {
        add: woken,
        update: (_old, sn) => woken(sn),
      },
    );
  }

  /** the key the provider namespaces' names are made from (the ClusterBinding's uid or binding-uid annotation) */
  get bindingKey(): string {
    return this.#bindingKey;
  }

  async release(): Promise<void> {
    for (const waiters of this.#waiting.values()) for (const wake of waiters) wake();
    await this.#own.release();
  }

  /** the provider namespace granted to sn, if it is the one the control plane names for it */
  #granted(sn: KubeObject): string | undefined {
    const namespace = (sn.status as { namespace?: unknown } | undefined)?.namespace;
    if (typeof namespace !== "string" || sn.metadata.deletionTimestamp !== undefined) return undefined;
    return namespace === providerNamespace(this.#bindingKey, sn.metadata.name) ? namespace : undefined;
  }

  #asNamespace(sn: KubeObject): KubeObject | undefined {
    const name = this.#granted(sn);
    if (name === undefined) return undefined;
    return {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: {
        name,
        labels: { [labels.binding]: this.#bindingKey, [labels.consumerNamespace]: sn.metadata.name },
      },
    };
  }

  /** Every provider namespace granted so far, read afresh (a release must not miss one the cache lags behind on). */
  async grantedNamespaces(): Promise<string[]> {
    const all = await this.#control.list(pullRefs.serviceNamespaces, { namespace: this.#clusterNs });
    return all.items.flatMap((sn) => this.#granted(sn) ?? []);
  }

  scope(): ControlScope {
    return {
      namespaces: (handlers) => this.#namespaces(handlers),
      copies: (ref, handlers) =>
        new NamespacedCopies(
          this.#registry,
          ref,
          handlers,
          (h) => this.#namespaces(h),
          () => true,
        ).held(),
      readNamespace: async (name) => {
        const all = await this.#control.list(pullRefs.serviceNamespaces, { namespace: this.#clusterNs });
        return all.items.map((sn) => this.#asNamespace(sn)).find((ns) => ns?.metadata.name === name);
      },
    };
  }

  /** The granted provider namespaces as Namespaces; events as grants come and go. */
  #namespaces(handlers: InformerHandlers): HeldCache {
    const asNs = (sn: KubeObject) => this.#asNamespace(sn);
    const held = this.#registry.acquire(
      pullRefs.serviceNamespaces,
      { namespace: this.#clusterNs },
      {
        add: (sn) => {
          const ns = asNs(sn);
          if (ns) handlers.add?.(ns);
        },
        update: (old, sn) => {
          const [before, now] = [asNs(old), asNs(sn)];
          if (now && before) handlers.update?.(before, now);
          else if (now) handlers.add?.(now);
          else if (before) handlers.delete?.(before);
        },
        delete: (sn) => {
          const ns = asNs(sn);
          if (ns) handlers.delete?.(ns);
        },
      },
    );
    const source = held.informer;
    const view: ObjectCache = {
      get: (name) =>
        source
          .list()
          .map(asNs)
          .find((ns) => ns?.metadata.name === name),
      list: () => source.list().flatMap((sn) => asNs(sn) ?? []),
      hasSynced: () => source.hasSynced(),
      onSynced: (done) => source.onSynced(done),
      get firstList() {
        return source.firstList;
      },
      get failing() {
        return source.failing;
      },
      get lastError() {
        return source.lastError;
      },
    };
    return { informer: view, release: held.release };
  }

  /**
   * The provider namespace of app namespace appNs: asked for with an APIServiceNamespace (once),
   * then waited for, up to grantWaitMs or until signal aborts; an error saying why not otherwise.
   */
  async ensure(appNs: string, signal: AbortSignal): Promise<string> {
    const find = () => {
      const sn = this.#own.informer.get(appNs, this.#clusterNs);
      return sn === undefined ? undefined : this.#granted(sn);
    };
    const have = find();
    if (have !== undefined) return have;
    if (!this.#own.informer.hasSynced()) await this.#own.informer.waitForSync(grantWaitMs);
    if (this.#own.informer.get(appNs, this.#clusterNs) === undefined) {
      await this.#control
        .create(pullRefs.serviceNamespaces, {
          apiVersion: pullApiVersion,
          kind: "APIServiceNamespace",
          metadata: { name: appNs, namespace: this.#clusterNs },
          spec: {},
        })
        .catch((err: unknown) => {
          if (!(err instanceof KubeApiError && err.code === 409)) throw err;
        });
    }
    await new Promise<void>((resolve) => {
      const waiters = this.#waiting.get(appNs) ?? new Set();
      this.#waiting.set(appNs, waiters);
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        waiters.delete(done);
        if (waiters.size === 0) this.#waiting.delete(appNs);
        resolve();
      };
      const timer = setTimeout(done, grantWaitMs);
      signal.addEventListener("abort", done);
      waiters.add(done);
      if (find() !== undefined) done();
    });
    const granted = find();
    if (granted !== undefined) return granted;
    const sn = this.#own.informer.get(appNs, this.#clusterNs);
    const ready = conditionOf(sn, "Ready");
    throw new Error(
      `APIServiceNamespace ${this.#clusterNs}/${appNs} has no provider namespace yet${ready?.message ? `: ${ready.message}` : ""}`,
    );
  }
}
