// One bound export of one binding: the informers it needs (shared where possible), one work queue
// with several workers, and the reconcilers of bound and claimed objects behind it (the claims'
// watches and reconcile in claim-watches.ts).
import { labels } from "../../api/naming.ts";
import type { KubeObject } from "../../kube/client.ts";
import type { Informer } from "../../kube/informer.ts";
import type { InformerRegistry } from "../informers.ts";
import { type Lane, WorkQueue } from "../queue.ts";
import { NotServedError } from "../replicas/fence.ts";
import { TenantLimitReached } from "../tenants/limits.ts";
import {
  adoptProviderObject,
  type BoundInformers,
  consumerKeyOf,
  objectKey,
  providerKey,
  reconcileBoundObject,
  recordedConsumer,
} from "./bound-objects.ts";
import { ClaimWatches } from "./claim-watches.ts";
import { clusterWideScope, type HeldCache, type ObjectCache } from "./control-scope.ts";
import type { ExportContext } from "./export-context.ts";
import { RecentWrites } from "./recent-writes.ts";

type Held = { release: () => Promise<void> };

/** a wait for room under a tenant limit is shown this long after it was last refused (retries come sooner) */
const limitShownMs = 90_000;

export class ExportSync {
  readonly ctx: ExportContext;
  readonly #control: InformerRegistry;
  readonly #appRegistry: InformerRegistry;
  readonly #queue: WorkQueue;
  readonly #held: Held[] = [];
  /** the claimed objects' watches, per claim, side and namespace */
  readonly #claims: ClaimWatches;
  #app!: Informer;
  #provider!: ObjectCache;
  #namespaces!: ObjectCache;
  /** our writes of bound objects that the informers have not shown yet */
  readonly #written = { app: new RecentWrites(), provider: new RecentWrites() };
  /** keys that came before every cache had its first list: queued once they all have */
  readonly #waitingForLists = new Set<string>();
  #lastSync: Date | undefined;
  /** name conflicts now, by queue key: gone as soon as that key reconciles without one */
  readonly #conflicts = new Map<string, string>();
  /** what waits for room under a tenant limit (tenants/limits.ts), by limit and app namespace: its message and when refused */
  readonly #limited = new Map<string, { text: string; at: number }>();
  #stopped = false;

  constructor(ctx: ExportContext, registries: { control: InformerRegistry; app: InformerRegistry }, workers: number) {
    this.ctx = ctx;
    this.#control = registries.control;
    this.#appRegistry = registries.app;
    this.#queue = new WorkQueue({
      workers,
      process: (key) => this.#process(key),
      onTaken: (waitedMs) => ctx.metrics.waited(ctx, waitedMs / 1000),
      onError: (key, err, retries) => {
        // a write refused while this replica hands the binding over (fence.ts): expected, and the
        // hand-over stops this sync soon; a warning each time drowned real trouble (6,594 in one bench run)
        // so is a wait for room under a tenant limit: the binding's status says so, once
        const expected = err instanceof NotServedError || err instanceof TenantLimitReached;
        if (!expected) ctx.metrics.failed(ctx);
        const level = retries > 3 && !expected ? "warn" : "debug";
        ctx.log[level](
          { key, retries, err: err instanceof Error ? err.message : String(err) },
          "reconcile failed; retrying",
        );
      },
    });
    this.#claims = new ClaimWatches({
      ctx,
      registries,
      queue: this.#queue,
      stopped: () => this.#stopped,
      informers: () => ({ app: this.#app, namespaces: this.#namespaces }),
      conflicts: this.#conflicts,
      limited: this.#limited,
    });
  }

  start(): void {
    const ctx = this.ctx;
    const scope = ctx.controlScope ?? clusterWideScope(this.#control, ctx.control);
    // the sync's scope: one watch of every binding's provider namespaces, shared by all exports
    // (each takes its own); a konnector's: its binding's granted namespaces (control-scope.ts)
    this.#namespaces = this.#keep(
      scope.namespaces(
        this.#onEvent((ns) => {
          if (ns.metadata.labels?.[labels.binding] === ctx.binding.uid) this.#onProviderNamespace(ns);
        }),
      ),
    );
    // Bound objects are cached lean (no last-applied annotation): they are written back as patches only.
    this.#app = this.#hold(
      this.#appRegistry,
      ctx.ref,
      { lean: true },
      {
        add: (obj) => {
          if (!this.#written.app.seen(obj, false)) this.#onAppObject(obj);
        },
        update: (_old, obj) => {
          if (!this.#written.app.seen(obj, false)) this.#onAppObject(obj);
        },
        delete: (obj) => {
          this.#written.app.seen(obj, true);
          this.#onAppObject(obj);
          // a provider object at its place that waited for it to go (never ours to adopt while it
          // lived) sends no event of its own now
          const where = providerKey(this.ctx, obj.metadata.namespace, obj.metadata.name);
          this.#queue.add(`adopt:${where.namespace ?? ""}/${where.name}`, this.#lane(this.#provider));
        },
      },
    );
    this.#provider = this.#keep(
      scope.copies(ctx.ref, {
        add: (obj) => {
          if (!this.#written.provider.seen(obj, false)) this.#onProviderObject(obj);
        },
        update: (_old, obj) => {
          if (!this.#written.provider.seen(obj, false)) this.#onProviderObject(obj);
        },
        delete: (obj) => {
          this.#written.provider.seen(obj, true);
          this.#onProviderObject(obj);
        },
      }),
    );

    // Claimed resources are watched per namespace on both sides, never cluster-wide: on the
    // control plane in the provider namespaces, in the app cluster in the app namespaces served
    // (a binding's service account reaches them nowhere else).
    this.#queue.start();
    const stage = ctx.stage;
    if (stage !== undefined) {
      const resource = `${ctx.ref.resource}.${ctx.ref.group}`;
      const listed = (name: string, side: string, what: string, informer: ObjectCache) => {
        // a shared informer may have listed long before this export
        const shared = informer.hasSynced();
        informer.onSynced(() =>
          stage(name, { side, resource: what, ...informer.firstList, ...(shared ? { shared } : {}) }),
        );
      };
      listed("app objects listed", "app", resource, this.#app);
      listed("control objects listed", "control", resource, this.#provider);
      listed("provider namespaces listed", "control", "namespaces", this.#namespaces);
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    // releasing removes our handlers at once: no event reaches this sync any more
    const released = [...this.#held.map((h) => h.release()), ...this.#claims.release()];
    await this.#queue.stop();
    await Promise.all(released);
  }

  status(): { objects: number; lastSync: Date | undefined; synced: boolean; conflicts: string[] } {
    const objects = this.#app?.list().filter((o) => o.metadata.deletionTimestamp === undefined).length ?? 0;
    return {
      objects,
      lastSync: this.#lastSync,
      synced: this.#app?.hasSynced() === true && this.#provider.hasSynced(),
      conflicts: [...this.#conflicts.values(), ...this.#limitsReached()],
    };
  }

  /** per limit reached lately: its message, and which app namespaces wait */
  #limitsReached(): string[] {
    const byText = new Map<string, string[]>();
    const now = Date.now();
    for (const [key, { text, at }] of this.#limited) {
      if (now - at > limitShownMs) {
        this.#limited.delete(key);
        continue;
      }
      byText.set(text, [...(byText.get(text) ?? []), key.slice(key.indexOf(":") + 1)]);
    }
    return [...byText].map(([text, namespaces]) => {
      const named =
        namespaces.slice(0, 5).join(", ") + (namespaces.length > 5 ? ` and ${namespaces.length - 5} more` : "");
      return `${text}; waiting: app namespace(s) ${named}`;
    });
  }

  /** Why the app cluster's objects (bound or claimed) cannot be listed or watched now, if they cannot. */
  get appError(): string | undefined {
    if (this.#app?.failing) return errorText(this.#app.lastError);
    return this.#claims.appError();
  }

  get queueDepth(): number {
    return this.#queue.depth;
  }

  #hold(registry: InformerRegistry, ...args: Parameters<InformerRegistry["acquire"]>): Informer {
    const held = registry.acquire(...args);
    this.#held.push(held);
    return held.informer;
  }

  #keep(held: HeldCache): ObjectCache {
    this.#held.push(held);
    return held.informer;
  }

  #onEvent(enqueue: (obj: KubeObject) => void) {
    return { add: enqueue, update: (_old: KubeObject, obj: KubeObject) => enqueue(obj), delete: enqueue };
  }

  /** A key of a first list waits behind those of later events (queue.ts). */
  #lane(informer: ObjectCache | undefined): Lane {
    return informer?.hasSynced() === true ? "live" : "backlog";
  }

  #onAppObject(obj: KubeObject): void {
    this.ctx.stage?.("first object queued");
    this.#queue.add(objectKey(obj.metadata.namespace, obj.metadata.name), this.#lane(this.#app));
    if (obj.metadata.namespace !== undefined) this.#claims.appNamespaceInUse(obj.metadata.namespace);
  }

  #onProviderObject(obj: KubeObject, lane = this.#lane(this.#provider)): void {
    // a copy of ours in a namespace not cached yet: the key it records (the reconcile checks it on
    // the control plane); its namespace's event replays only the cache, which may have lost it
    const consumer = consumerKeyOf(this.ctx, obj, this.#namespaces) ?? recordedConsumer(this.ctx, obj);
    if (consumer === undefined) return;
    if (obj.metadata.labels?.[labels.binding] === this.ctx.binding.uid) {
      this.#queue.add(objectKey(consumer.namespace, consumer.name), lane);
    } else {
      this.#queue.add(`adopt:${obj.metadata.namespace ?? ""}/${obj.metadata.name}`, lane);
    }
  }

  /** Queues the keys that came before the first lists as soon as every cache has one. */
  #whenListed(key: string): void {
    this.#waitingForLists.add(key);
    if (this.#waitingForLists.size > 1) return;
    // called back by each cache as its first list is in, not polled: a first object waited up to
    // 50 ms more than its lists did (the first-object timeline)
    const look = () => {
      if (this.#stopped) return;
      const pending = [this.#app, this.#provider, this.#namespaces].find((i) => !i.hasSynced());
      if (pending !== undefined) {
        pending.onSynced(look);
        return;
      }
      const keys = [...this.#waitingForLists];
      this.#waitingForLists.clear();
      for (const k of keys) this.#queue.add(k, "backlog");
    };
    look();
  }

  /** A mapped provider namespace appeared: watch the claims' objects in it, and in its app namespace. */
  #onProviderNamespace(ns: KubeObject): void {
    const appNs = ns.metadata.labels?.[labels.consumerNamespace];
    if (appNs === undefined) return;
    this.#claims.providerNamespace(ns.metadata.name, appNs);
    // objects created directly in the namespace before we watched it (the provider informer,
    // acquired after this one, replays its own)
    const lane = this.#lane(this.#namespaces);
    for (const obj of this.#provider?.list(ns.metadata.name) ?? []) this.#onProviderObject(obj, lane);
  }

  async #process(key: string): Promise<void> {
    const started = performance.now();
    const [kind, rest = ""] = splitOnce(key, ":");
    if (kind === "claim") {
      const [index, where = ""] = splitOnce(rest, ":");
      const [appNs = "", name = ""] = splitOnce(where, "/");
      await this.#claims.reconcile(Number(index), appNs, name, key);
    } else {
      if (!this.#app.hasSynced() || !this.#provider.hasSynced() || !this.#namespaces.hasSynced()) {
        this.ctx.stage?.("first object waits for the lists");
        this.#whenListed(key);
        return;
      }
      this.ctx.stage?.("first object reconcile", { kind });
      const [ns, name = ""] = splitOnce(rest, "/");
      const namespace = ns === "" ? undefined : ns;
      const informers: BoundInformers = {
        app: this.#app,
        provider: this.#provider,
        namespaces: this.#namespaces,
        written: this.#written,
      };
      if (kind === "adopt") {
        const provider = this.#provider.get(name, namespace);
        const consumer = provider && consumerKeyOf(this.ctx, provider, this.#namespaces);
        if (provider && consumer)
          await adoptProviderObject(this.ctx, informers, provider, consumer.namespace, consumer.name);
      } else {
        await reconcileBoundObject(this.ctx, informers, namespace, name).catch((err: unknown) => {
          if (err instanceof TenantLimitReached)
            this.#limited.set(`namespaces:${ns}`, { text: err.message, at: Date.now() });
          throw err;
        });
        this.#limited.delete(`namespaces:${ns}`);
      }
    }
    this.#lastSync = new Date();
    this.ctx.metrics.observe(this.ctx, (performance.now() - started) / 1000);
  }
}

function splitOnce(text: string, separator: string): [string, string | undefined] {
  const at = text.indexOf(separator);
  return at < 0 ? [text, undefined] : [text.slice(0, at), text.slice(at + separator.length)];
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
