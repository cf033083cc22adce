// The claimed objects of one bound export (export-sync.ts): per claim, side and namespace one watch,
// never cluster-wide (on the control plane in the provider namespaces, in the app cluster in the app
// namespaces served, where a binding's service account is given access first), and the reconcile
// of one claimed object by name once the watches it needs have listed.
import { labels, providerNamespace } from "../../api/naming.ts";
import type { KubeObject } from "../../kube/client.ts";
import type { Informer } from "../../kube/informer.ts";
import type { InformerRegistry } from "../informers.ts";
import type { WorkQueue } from "../queue.ts";
import { TenantLimitReached } from "../tenants/limits.ts";
import { watchedInFull } from "./claim-ownership.ts";
import { type ClaimSides, claimKey, claimRef, copyLabelValue, reconcileClaimedObject } from "./claimed-objects.ts";
import type { ObjectCache } from "./control-scope.ts";
import type { ExportContext } from "./export-context.ts";
import { serverFieldSelector } from "./selector.ts";

type Held = { informer: Informer; release: () => Promise<void> };

const conflictRecheckMs = 10_000;

/** What the claims' watches share with their export's sync. */
export type ClaimWatchesHost = {
  ctx: ExportContext;
  registries: { control: InformerRegistry; app: InformerRegistry };
  queue: WorkQueue;
  stopped: () => boolean;
  /** the export's bound objects in the app cluster, and every binding's provider namespaces */
  informers: () => { app: Informer; namespaces: ObjectCache };
  /** name conflicts now, by queue key (the export's status shows them) */
  conflicts: Map<string, string>;
  /** what waits for room under a tenant limit, by limit and app namespace: its message and when refused */
  limited: Map<string, { text: string; at: number }>;
};

export class ClaimWatches {
  readonly #h: ClaimWatchesHost;
  readonly #ctx: ExportContext;
  /** per claim, side and namespace: what the claim sees there (see #watchSide) */
  readonly #sides = new Map<string, Held>();
  /** app namespaces where the binding's account may reach claimed resources (see app-access/namespace-access.ts) */
  readonly #appAccess = new Set<string>();
  /** claim sides whose watch waits for room, looked at again on a timer (one each) */
  readonly #watchRetries = new Set<string>();

  constructor(host: ClaimWatchesHost) {
    this.#h = host;
    this.#ctx = host.ctx;
  }

  /** Releases every watch: their handlers go at once. */
  release(): Array<Promise<void>> {
    return [...this.#sides.values()].map((h) => h.release());
  }

  /** Why the app cluster's claimed objects cannot be listed or watched now, if they cannot. */
  appError(): string | undefined {
    for (const [id, held] of this.#sides) {
      const [index = "", side, namespace] = id.split(":");
      if (side !== "consumer" || !held.informer.failing) continue;
      const claim = this.#ctx.claims[Number(index)];
      return `claimed ${claim?.resource ?? "objects"} in namespace ${namespace}: ${errorText(held.informer.lastError)}`;
    }
    return undefined;
  }

  /** A mapped provider namespace appeared: watch the claims' objects in it, and in its app namespace. */
  providerNamespace(providerNs: string, appNs: string): void {
    this.#ctx.claims.forEach((_claim, index) => {
      this.#watchSide(index, "provider", providerNs, appNs);
      this.#withAppAccess(appNs, () => this.#watchSide(index, "consumer", appNs, appNs));
    });
  }

  /**
   * Runs then once the sync may reach claimed resources in app namespace appNs: at once with a
   * kubeconfig of full rights, after binding the claims role there for a binding's service account.
   */
  #withAppAccess(appNs: string, then: () => void): void {
    const ensure = this.#ctx.ensureAppNamespaceAccess;
    if (ensure === undefined || this.#appAccess.has(appNs)) {
      then();
      return;
    }
    const key = `access:${appNs}`;
    ensure(appNs).then(
      () => {
        this.#appAccess.add(appNs);
        this.#h.conflicts.delete(key);
        if (!this.#h.stopped()) then();
      },
      (err: unknown) => {
        const text = `claimed objects of app namespace ${appNs} not synced: ${errorText(err)}`;
        if (this.#h.conflicts.get(key) !== text) this.#ctx.log.warn({ namespace: appNs }, text);
        this.#h.conflicts.set(key, text);
        setTimeout(() => {
          if (!this.#h.stopped()) this.#withAppAccess(appNs, then);
        }, 5000).unref();
      },
    );
  }

  /** An app namespace holds bound objects: watch what the consumer may own in it. */
  appNamespaceInUse(appNs: string): void {
    this.#ctx.claims.forEach((claim, index) => {
      if (watchedInFull(claim).consumer) {
        this.#withAppAccess(appNs, () => this.#watchSide(index, "consumer", appNs, appNs));
      }
    });
  }

  /**
   * A claim's objects on one side in one namespace: all of them where an original may start on that
   * side (claim-ownership.ts), else our copies only, by our labels.
   */
  #watchSide(index: number, side: "provider" | "consumer", namespace: string, appNs: string): void {
    const id = claimSideId(index, side, namespace);
    const claim = this.#ctx.claims[index];
    if (claim === undefined || this.#sides.has(id) || this.#h.stopped()) return;
    const slot = side === "provider" ? this.#ctx.controlWatch?.() : undefined;
    if (slot instanceof TenantLimitReached) {
      const waiting = `watches:${appNs}`;
      const first = !this.#h.limited.has(waiting);
      this.#h.limited.set(waiting, { text: slot.message, at: Date.now() });
      if (first) this.#ctx.log.warn({ namespace: appNs }, slot.message);
      if (!this.#watchRetries.has(id)) {
        this.#watchRetries.add(id);
        setTimeout(() => {
          this.#watchRetries.delete(id);
          this.#watchSide(index, side, namespace, appNs);
        }, conflictRecheckMs).unref();
      }
      return;
    }
    this.#h.limited.delete(`watches:${appNs}`);
    const registry = side === "provider" ? this.#h.registries.control : this.#h.registries.app;
    const fieldSelector = serverFieldSelector(claim.selector);
    // copies on the provider side are of consumer-owned originals, and the reverse
    const copyOf = copyLabelValue(side === "provider" ? "Consumer" : "Provider");
    const options = watchedInFull(claim)[side]
      ? { namespace, ...(fieldSelector ? { fieldSelector } : {}) }
      : { namespace, labelSelector: `${labels.binding}=${this.#ctx.binding.uid},${labels.copyOf}=${copyOf}` };
    const tenant = side === "provider" ? { tenant: this.#ctx.binding.namespace } : {};
    const held = registry.acquire(
      claimRef(claim),
      { ...options, ...tenant },
      onEvent((obj) => this.#h.queue.add(claimKey(index, appNs, obj.metadata.name))),
    );
    const release = () => {
      slot?.();
      return held.release();
    };
    this.#sides.set(id, { informer: held.informer, release });
  }

  async reconcile(index: number, appNs: string, name: string, key: string): Promise<void> {
    const claim = this.#ctx.claims[index];
    if (claim === undefined) return;
    const mapped = providerNamespace(this.#ctx.binding.uid, appNs);
    // a provider namespace mirroring another app namespace is none of appNs's (provider-access.ts refuses it)
    const marks = this.#h.informers().namespaces.get(mapped)?.metadata.labels;
    const mirrors = marks?.[labels.binding] === this.#ctx.binding.uid && marks[labels.consumerNamespace] === appNs;
    const provider = mirrors ? this.#sides.get(claimSideId(index, "provider", mapped)) : undefined;
    const consumer = this.#sides.get(claimSideId(index, "consumer", appNs));
    if (mirrors && provider === undefined) {
      // its provider namespace's watch waits for room (tenants/limits.ts): nothing seen there proves anything
      this.#h.queue.addAfter(key, conflictRecheckMs);
      return;
    }
    if (consumer === undefined) {
      // the access in the app namespace (or its provider namespace) is not there yet
      this.#h.queue.addAfter(key, 1000);
      return;
    }
    const ready =
      consumer.informer.hasSynced() &&
      this.#h.informers().app.hasSynced() &&
      this.#h.informers().namespaces.hasSynced();
    if (!ready || (provider !== undefined && !provider.informer.hasSynced())) {
      this.#h.queue.addAfter(key, 200);
      return;
    }
    const onConsumer = consumer.informer.get(name, appNs);
    if (!mirrors && onConsumer?.metadata.labels?.[labels.copyOf] === "provider") {
      // its original's namespace is not appNs's (an earlier version's name, say): nothing proves the original gone
      this.#h.queue.addAfter(key, conflictRecheckMs);
      return;
    }
    if (
      provider === undefined &&
      onConsumer !== undefined &&
      onConsumer.metadata.labels?.[labels.copyOf] !== "provider"
    ) {
      // an object that may go up, and no provider namespace yet: the bound objects' reconcile creates it
      this.#h.queue.addAfter(key, 1000);
      return;
    }
    // No informer for the provider namespace: nothing of the claim there (a deletion asks the API server first).
    const sides: ClaimSides = {
      provider: { client: this.#ctx.control, get: (n, ns) => provider?.informer.get(n, ns) },
      consumer: { client: this.#ctx.app, get: (n, ns) => consumer.informer.get(n, ns) },
    };
    const outcome = await reconcileClaimedObject(this.#ctx, claim, sides, appNs, name);
    if (outcome.conflict === undefined) {
      this.#h.conflicts.delete(key);
    } else {
      if (this.#h.conflicts.get(key) !== outcome.conflict) {
        this.#ctx.log.warn({ conflict: outcome.conflict }, "name conflict: not overwriting");
        this.#h.conflicts.set(key, outcome.conflict);
      }
      // the other object is not watched (not ours): look again later, so its removal ends the conflict
      this.#h.queue.addAfter(key, conflictRecheckMs);
    }
    if (outcome.result === "written" || outcome.result === "deleted") this.#ctx.metrics.synced(this.#ctx, "claim");
  }
}

function onEvent(enqueue: (obj: KubeObject) => void) {
  return { add: enqueue, update: (_old: KubeObject, obj: KubeObject) => enqueue(obj), delete: enqueue };
}

function claimSideId(index: number, side: "provider" | "consumer", namespace: string): string {
  return `${index}:${side}:${namespace}`;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
