// One bound export of one binding: the informers it needs (shared where possible), one work queue
// with several workers, and the reconcilers of bound and claimed objects behind it.

import { labels, providerNamespace } from "../../api/naming.ts";
import { refs } from "../../api/resources.ts";
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
import { watchedInFull } from "./claim-ownership.ts";
import { type ClaimSides, claimKey, claimRef, copyLabelValue, reconcileClaimedObject } from "./claimed-objects.ts";
import type { ExportContext } from "./export-context.ts";
import { RecentWrites } from "./recent-writes.ts";
import { serverFieldSelector } from "./selector.ts";

type Held = { informer: Informer; release: () => Promise<void> };

const conflictRecheckMs = 10_000;
/** a wait for room under a tenant limit is shown this long after it was last refused (retries come sooner) */
const limitShownMs = 90_000;

export class ExportSync {
  readonly ctx: ExportContext;
  readonly #control: InformerRegistry;
  readonly #appRegistry: InformerRegistry;
  readonly #queue: WorkQueue;
  readonly #held: Held[] = [];
  /** per claim, side and namespace: what the claim sees there (see #watchClaimSide) */
  readonly #claimSides = new Map<string, Held>();
  #app!: Informer;
  #provider!: Informer;
  #namespaces!: Informer;
  /** our writes of bound objects that the informers have not shown yet */
  readonly #written = { app: new RecentWrites(), provider: new RecentWrites() };
  /** keys that came before every cache had its first list: queued once they all have */
  readonly #waitingForLists = new Set<string>();
  #lastSync: Date | undefined;
  /** name conflicts now, by queue key: gone as soon as that key reconciles without one */
  readonly #conflicts = new Map<string, string>();
  /** app namespaces where the binding's account may reach claimed resources (see app-access/namespace-access.ts) */
  readonly #appAccess = new Set<string>();
  /** what waits for room under a tenant limit (tenants/limits.ts), by limit and app namespace: its message and when refused */
  readonly #limited = new Map<string, { text: string; at: number }>();
  /** claim sides whose watch waits for room, looked at again on a timer (one each) */
  readonly #watchRetries = new Set<string>();
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
  }

  start(): void {
    const ctx = this.ctx;
    // one watch of every binding's provider namespaces, shared by all exports: each takes its own
    this.#namespaces = this.#hold(
      this.#control,
      refs.namespaces,
      { labelSelector: labels.binding },
      this.#onEvent((ns) => {
        if (ns.metadata.labels?.[labels.binding] === ctx.binding.uid) this.#onProviderNamespace(ns);
      }),
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
    this.#provider = this.#hold(
      this.#control,
      ctx.ref,
      { lean: true },
      {
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
      },
    );

    // Claimed resources are watched per namespace on both sides, never cluster-wide: on the
    // control plane in the provider namespaces, in the app cluster in the app namespaces served
    // (a binding's service account reaches them nowhere else).
    this.#queue.start();
    const stage = ctx.stage;
    if (stage !== undefined) {
      const resource = `${ctx.ref.resource}.${ctx.ref.group}`;
      const listed = (name: string, side: string, what: string, informer: Informer) => {
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
    const released = [...this.#held, ...this.#claimSides.values()].map((h) => h.release());
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
    for (const [id, held] of this.#claimSides) {
      const [index = "", side, namespace] = id.split(":");
      if (side !== "consumer" || !held.informer.failing) continue;
      const claim = this.ctx.claims[Number(index)];
      return `claimed ${claim?.resource ?? "objects"} in namespace ${namespace}: ${errorText(held.informer.lastError)}`;
    }
    return undefined;
  }

  get queueDepth(): number {
    return this.#queue.depth;
  }

  #hold(registry: InformerRegistry, ...args: Parameters<InformerRegistry["acquire"]>): Informer {
    const held = registry.acquire(...args);
    this.#held.push(held);
    return held.informer;
  }

  #onEvent(enqueue: (obj: KubeObject) => void) {
    return { add: enqueue, update: (_old: KubeObject, obj: KubeObject) => enqueue(obj), delete: enqueue };
  }

  /** A key of a first list waits behind those of later events (queue.ts). */
  #lane(informer: Informer | undefined): Lane {
    return informer?.hasSynced() === true ? "live" : "backlog";
  }

  #onAppObject(obj: KubeObject): void {
    this.ctx.stage?.("first object queued");
    this.#queue.add(objectKey(obj.metadata.namespace, obj.metadata.name), this.#lane(this.#app));
    if (obj.metadata.namespace !== undefined) this.#appNamespaceInUse(obj.metadata.namespace);
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

  /**
   * Runs then once the sync may reach claimed resources in app namespace appNs: at once with a
   * kubeconfig of full rights, after binding the claims role there for a binding's service account.
   */
  #withAppAccess(appNs: string, then: () => void): void {
    const ensure = this.ctx.ensureAppNamespaceAccess;
    if (ensure === undefined || this.#appAccess.has(appNs)) {
      then();
      return;
    }
    const key = `access:${appNs}`;
    ensure(appNs).then(
      () => {
        this.#appAccess.add(appNs);
        this.#conflicts.delete(key);
        if (!this.#stopped) then();
      },
      (err: unknown) => {
        const text = `claimed objects of app namespace ${appNs} not synced: ${errorText(err)}`;
        if (this.#conflicts.get(key) !== text) this.ctx.log.warn({ namespace: appNs }, text);
        this.#conflicts.set(key, text);
        setTimeout(() => {
          if (!this.#stopped) this.#withAppAccess(appNs, then);
        }, 5000).unref();
      },
    );
  }

  /** A mapped provider namespace appeared: watch the claims' objects in it, and in its app namespace. */
  #onProviderNamespace(ns: KubeObject): void {
    const appNs = ns.metadata.labels?.[labels.consumerNamespace];
    if (appNs === undefined) return;
    const providerNs = ns.metadata.name;
    this.ctx.claims.forEach((_claim, index) => {
      this.#watchClaimSide(index, "provider", providerNs, appNs);
      this.#withAppAccess(appNs, () => this.#watchClaimSide(index, "consumer", appNs, appNs));
    });
    // objects created directly in the namespace before we watched it (the provider informer,
    // acquired after this one, replays its own)
    const lane = this.#lane(this.#namespaces);
    for (const obj of this.#provider?.list(ns.metadata.name) ?? []) this.#onProviderObject(obj, lane);
  }

  /** An app namespace holds bound objects: watch what the consumer may own in it. */
  #appNamespaceInUse(appNs: string): void {
    this.ctx.claims.forEach((claim, index) => {
      if (watchedInFull(claim).consumer) {
        this.#withAppAccess(appNs, () => this.#watchClaimSide(index, "consumer", appNs, appNs));
      }
    });
  }

  /**
   * A claim's objects on one side in one namespace: all of them where an original may start on that
   * side (claim-ownership.ts), else our copies only, by our labels.
   */
  #watchClaimSide(index: number, side: "provider" | "consumer", namespace: string, appNs: string): void {
    const id = claimSideId(index, side, namespace);
    const claim = this.ctx.claims[index];
    if (claim === undefined || this.#claimSides.has(id) || this.#stopped) return;
    const slot = side === "provider" ? this.ctx.controlWatch?.() : undefined;
    if (slot instanceof TenantLimitReached) {
      const waiting = `watches:${appNs}`;
      const first = !this.#limited.has(waiting);
      this.#limited.set(waiting, { text: slot.message, at: Date.now() });
      if (first) this.ctx.log.warn({ namespace: appNs }, slot.message);
      if (!this.#watchRetries.has(id)) {
        this.#watchRetries.add(id);
        setTimeout(() => {
          this.#watchRetries.delete(id);
          this.#watchClaimSide(index, side, namespace, appNs);
        }, conflictRecheckMs).unref();
      }
      return;
    }
    this.#limited.delete(`watches:${appNs}`);
    const registry = side === "provider" ? this.#control : this.#appRegistry;
    const fieldSelector = serverFieldSelector(claim.selector);
    // copies on the provider side are of consumer-owned originals, and the reverse
    const copyOf = copyLabelValue(side === "provider" ? "Consumer" : "Provider");
    const options = watchedInFull(claim)[side]
      ? { namespace, ...(fieldSelector ? { fieldSelector } : {}) }
      : { namespace, labelSelector: `${labels.binding}=${this.ctx.binding.uid},${labels.copyOf}=${copyOf}` };
    const tenant = side === "provider" ? { tenant: this.ctx.binding.namespace } : {};
    const held = registry.acquire(
      claimRef(claim),
      { ...options, ...tenant },
      this.#onEvent((obj) => this.#queue.add(claimKey(index, appNs, obj.metadata.name))),
    );
    const release = () => {
      slot?.();
      return held.release();
    };
    this.#claimSides.set(id, { informer: held.informer, release });
  }

  async #process(key: string): Promise<void> {
    const started = performance.now();
    const [kind, rest = ""] = splitOnce(key, ":");
    if (kind === "claim") {
      const [index, where = ""] = splitOnce(rest, ":");
      const [appNs = "", name = ""] = splitOnce(where, "/");
      await this.#reconcileClaim(Number(index), appNs, name, key);
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

  async #reconcileClaim(index: number, appNs: string, name: string, key: string): Promise<void> {
    const claim = this.ctx.claims[index];
    if (claim === undefined) return;
    const mapped = providerNamespace(this.ctx.binding.uid, appNs);
    // a provider namespace mirroring another app namespace is none of appNs's (provider-access.ts refuses it)
    const marks = this.#namespaces.get(mapped)?.metadata.labels;
    const mirrors = marks?.[labels.binding] === this.ctx.binding.uid && marks[labels.consumerNamespace] === appNs;
    const provider = mirrors ? this.#claimSides.get(claimSideId(index, "provider", mapped)) : undefined;
    const consumer = this.#claimSides.get(claimSideId(index, "consumer", appNs));
    if (mirrors && provider === undefined) {
      // its provider namespace's watch waits for room (tenants/limits.ts): nothing seen there proves anything
      this.#queue.addAfter(key, conflictRecheckMs);
      return;
    }
    if (consumer === undefined) {
      // the access in the app namespace (or its provider namespace) is not there yet
      this.#queue.addAfter(key, 1000);
      return;
    }
    const ready = consumer.informer.hasSynced() && this.#app.hasSynced() && this.#namespaces.hasSynced();
    if (!ready || (provider !== undefined && !provider.informer.hasSynced())) {
      this.#queue.addAfter(key, 200);
      return;
    }
    const onConsumer = consumer.informer.get(name, appNs);
    if (!mirrors && onConsumer?.metadata.labels?.[labels.copyOf] === "provider") {
      // its original's namespace is not appNs's (an earlier version's name, say): nothing proves the original gone
      this.#queue.addAfter(key, conflictRecheckMs);
      return;
    }
    if (
      provider === undefined &&
      onConsumer !== undefined &&
      onConsumer.metadata.labels?.[labels.copyOf] !== "provider"
    ) {
      // an object that may go up, and no provider namespace yet: the bound objects' reconcile creates it
      this.#queue.addAfter(key, 1000);
      return;
    }
    // No informer for the provider namespace: nothing of the claim there (a deletion asks the API server first).
    const sides: ClaimSides = {
      provider: { client: this.ctx.control, get: (n, ns) => provider?.informer.get(n, ns) },
      consumer: { client: this.ctx.app, get: (n, ns) => consumer.informer.get(n, ns) },
    };
    const outcome = await reconcileClaimedObject(this.ctx, claim, sides, appNs, name);
    if (outcome.conflict === undefined) {
      this.#conflicts.delete(key);
    } else {
      if (this.#conflicts.get(key) !== outcome.conflict) {
        this.ctx.log.warn({ conflict: outcome.conflict }, "name conflict: not overwriting");
        this.#conflicts.set(key, outcome.conflict);
      }
      // the other object is not watched (not ours): look again later, so its removal ends the conflict
      this.#queue.addAfter(key, conflictRecheckMs);
    }
    if (outcome.result === "written" || outcome.result === "deleted") this.ctx.metrics.synced(this.ctx, "claim");
  }
}

function claimSideId(index: number, side: "provider" | "consumer", namespace: string): string {
  return `${index}:${side}:${namespace}`;
}

function splitOnce(text: string, separator: string): [string, string | undefined] {
  const at = text.indexOf(separator);
  return at < 0 ? [text, undefined] : [text.slice(0, at), text.slice(at + separator.length)];
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
