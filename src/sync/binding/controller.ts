// The binding controller: one reconcile per AppClusterBinding, orchestrating its concerns. It
// hands a binding over when another replica serves it (replicas/shards.ts), keeps our finalizer on
// it and releases it when deleted (lifecycle.ts), connects to its app cluster (connection.ts),
// reconciles its exports (export-reconcile.ts), and says what it found in its status and events
// (conditions.ts, status.ts). What it keeps per binding lives in state.ts.
import { setTimeout as sleep } from "node:timers/promises";
import { bindingKey, bindingKinds, distinctExports, kindOf, parseBindingKey } from "../../api/binding-spec.ts";
import { labels } from "../../api/naming.ts";
import { refs } from "../../api/resources.ts";
import { KubeApiError, type KubeClient, type KubeObject } from "../../kube/client.ts";
import type { Informer } from "../../kube/informer.ts";
import { bindingObject, EventRecorder } from "../events.ts";
import type { HealthReport } from "../health.ts";
import type { ExportSync } from "../mirror/export-sync.ts";
import { WorkQueue } from "../queue.ts";
import { fenced } from "../replicas/fence.ts";
import { stageLog } from "../stages.ts";
import { TenantAppShares } from "../tenants/app-shares.ts";
import { TenantLimits, tenantLimitDefaults } from "../tenants/limits.ts";
import { ProviderAccess } from "../tenants/provider-access.ts";
import { AppProbe } from "./app-probe.ts";
import { bindingConditions, bindingWarnings } from "./conditions.ts";
import { AppConnection } from "./connection.ts";
import { ExportReconciler, passingStates, unreachableExports } from "./export-reconcile.ts";
import { addFinalizer, holdsFinalizer, releaseDeleted } from "./lifecycle.ts";
import { mirrorContext } from "./mirror-context.ts";
import {
  appCacheDefaults,
  type BindingControllerOptions,
  defaultMaxExportsPerBinding,
  templateNamespacesOf,
} from "./options.ts";
import { type BindingState, stopBinding, stopExport } from "./state.ts";
import { writeStatus } from "./status.ts";

export class BindingController {
  readonly #o: BindingControllerOptions;
  readonly #queue: WorkQueue;
  readonly #states = new Map<string, BindingState>();
  /** what each namespace's (tenant's) app clusters may take of this process together */
  readonly #appShares: TenantAppShares;
  /** requests of app clients already closed, so appRequests never goes back */
  #retiredAppRequests = 0;
  readonly #events: EventRecorder;
  /** one per binding kind (ours, klutch-bind's), by API group */
  readonly #bindings = new Map<string, Informer>();
  /** one per template namespace: templates are read there only, never cluster-wide */
  #templates: Informer[] = [];
  #release: Array<() => Promise<void>> = [];
  #resync: NodeJS.Timeout | undefined;
  readonly #limits: TenantLimits;
  readonly #connection: AppConnection;
  readonly #exports: ExportReconciler;
  /** every binding's provider namespaces (the export syncs' cache), held once a tenant limit is first asked */
  #providerNamespaces: Informer | undefined;
  /** handOver() callers, by binding key */
  readonly #handOvers = new Map<string, Array<() => void>>();
  /** when a binding without state yet was first seen, by uid, while debug lines are on (stages.ts) */
  readonly #seenAt = new Map<string, number>();

  constructor(options: BindingControllerOptions) {
    this.#o = options;
    this.#events = new EventRecorder(options.control, options.logger);
    this.#limits = new TenantLimits(options.tenantLimits ?? tenantLimitDefaults, (tenant) =>
      this.#providerNamespacesOf(tenant),
    );
    const access = new ProviderAccess(options.control, this.#limits);
    this.#appShares = new TenantAppShares(options.appCacheLimits ?? appCacheDefaults, options.appListBytesInFlight);
    this.#connection = new AppConnection({
      options,
      events: this.#events,
      appClientOptions: (namespace) => this.#appShares.clientOptions(options.appClientOptions, namespace),
      cacheBudget: (namespace) => this.#appShares.cacheBudget(namespace),
      fence: (client, uid, key, state) => this.#fence(client, uid, key, state),
      stopBinding: (state) => this.#stopBinding(state),
      requeue: (key, ms) => this.#queue.addAfter(key, ms),
    });
    this.#exports = new ExportReconciler({
      options,
      requeue: (key, ms) => this.#queue.addAfter(key, ms),
      bindingsListed: () => [...this.#bindings.values()].every(listedOrNotInstalled),
      bindings: () => this.#allBindings(),
      clusterUidOf: (key) => this.#states.get(key)?.probe.clusterUid,
      templates: () => this.#templates.flatMap((i) => i.list()),
      context: (state, ref, claims, claimsRole) =>
        mirrorContext({ options, access, limits: this.#limits, events: this.#events }, state, ref, claims, claimsRole),
    });
    const workers = options.bindingWorkers ?? 32;
    this.#queue = new WorkQueue({
      workers,
      groupOf: (key) => parseBindingKey(key).namespace,
      maxPerGroup: options.bindingWorkersPerNamespace ?? Math.max(1, Math.floor(workers / 4)),
      process: (key) => this.#reconcile(key).finally(() => options.metrics.reconciledBinding(parseBindingKey(key))),
      onError: (key, err, retries) =>
        options.logger[retries > 3 ? "warn" : "info"](
          { binding: key, retries, err: message(err) },
          "binding reconcile failed; retrying",
        ),
    });
  }

  start(): void {
    const enqueue = (obj: KubeObject) => this.#queue.add(bindingKey(obj));
    const all = () => {
      for (const b of this.#allBindings()) enqueue(b);
    };
    // Our own status writes change neither generation, deletion nor finalizers: they start no reconcile.
    const changed = (old: KubeObject, obj: KubeObject) =>
      old.metadata.generation !== obj.metadata.generation ||
      old.metadata.deletionTimestamp !== obj.metadata.deletionTimestamp ||
      JSON.stringify(old.metadata.finalizers) !== JSON.stringify(obj.metadata.finalizers);
    for (const kind of bindingKinds) {
      const bindings = this.#o.controlInformers.acquire(
        kind.ref,
        this.#o.namespace ? { namespace: this.#o.namespace } : {},
        {
          add: (obj) => {
            this.#seen(obj);
            enqueue(obj);
          },
          update: (old, obj) => changed(old, obj) && enqueue(obj),
          delete: (obj) => {
            this.#seenAt.delete(obj.metadata.uid ?? "");
            enqueue(obj);
          },
        },
      );
      this.#bindings.set(kind.ref.group, bindings.informer);
      this.#release.push(bindings.release);
    }
    for (const namespace of templateNamespacesOf(this.#o)) {
      const templates = this.#o.controlInformers.acquire(
        refs.templates,
        { namespace },
        { add: all, update: all, delete: all },
      );
      this.#templates.push(templates.informer);
      this.#release.push(templates.release);
    }
    this.#queue.start();
    this.#resync = setInterval(all, this.#o.resyncMs ?? 15_000);
    this.#resync.unref();
  }

  /** The provider namespaces of namespace tenant's bindings, by name; undefined until listed. */
  #providerNamespacesOf(tenant: string): Set<string> | undefined {
    if (this.#providerNamespaces === undefined) {
      const held = this.#o.controlInformers.acquire(refs.namespaces, { labelSelector: labels.binding });
      this.#providerNamespaces = held.informer;
      this.#release.push(held.release);
    }
    if (!this.#providerNamespaces.hasSynced()) return undefined;
    const uids = new Set(this.#allBindings().flatMap((b) => (b.metadata.namespace === tenant ? [b.metadata.uid] : [])));
    const names = this.#providerNamespaces
      .list()
      .flatMap((ns) => (uids.has(ns.metadata.labels?.[labels.binding]) ? [ns.metadata.name] : []));
    return new Set(names);
  }

  #seen(binding: KubeObject): void {
    const uid = binding.metadata.uid ?? "";
    if (this.#o.logger.isLevelEnabled("debug") && !this.#seenAt.has(uid)) this.#seenAt.set(uid, performance.now());
  }

  async stop(): Promise<void> {
    clearInterval(this.#resync);
    const drained = this.#queue.stop();
    // reconciles waiting on a tenant's cluster are cancelled, not awaited, beyond a short bound
    const waited = await Promise.race([drained.then(() => true), sleep(this.#handOverWaitMs, false)]);
    if (!waited) for (const state of this.#states.values()) this.#cancel(state);
    await drained;
    await Promise.all([...this.#states.values()].map((s) => this.#stopBinding(s)));
    for (const key of [...this.#handOvers.keys()]) this.#handedOver(key);
    await Promise.all(this.#release.map((r) => r()));
  }

  /** Every binding, of either kind (for shards.ts). */
  bindings(): KubeObject[] {
    return this.#allBindings();
  }

  /** Reconciles these bindings soon. */
  resync(keys: string[]): void {
    for (const key of keys) this.#queue.add(key);
  }

  /**
   * Resolves once each binding was reconciled as one this replica does not serve (shard.serves
   * says no): its syncs stopped, nothing released. A reconcile under way gets handOverWaitMs to
   * finish; then it is cancelled (#cancel) and the hand-over goes on without it: a tenant's
   * cluster never holds it longer. Its late writes are refused (mayWrite says no once the
   * coordinator let go of the binding, and the cancelled state refuses them anyway).
   */
  handOver(keys: string[]): Promise<void> {
    const waits = keys.map(
      (key) =>
        new Promise<void>((resolve) => {
          this.#handOvers.set(key, [...(this.#handOvers.get(key) ?? []), resolve]);
          this.#queue.add(key);
        }),
    );
    const timer = setTimeout(() => {
      const late = keys.filter((key) => this.#handOvers.has(key));
      for (const key of late) {
        const state = this.#states.get(key);
        if (state !== undefined) this.#cancel(state);
        this.#handedOver(key);
      }
      if (late.length > 0) {
        this.#o.logger.warn(
          { bindings: late, waitedMs: this.#handOverWaitMs },
          "bindings' reconciles still under way at the hand-over: cancelled; their late writes are refused",
        );
      }
    }, this.#handOverWaitMs);
    return Promise.all(waits).then(
      () => clearTimeout(timer),
      () => clearTimeout(timer),
    );
  }

  get #handOverWaitMs(): number {
    return this.#o.handOverWaitMs ?? 1000;
  }

  /**
   * Cancels a binding's work without waiting for it: requests under way to its app cluster fail
   * now (its client is closed), its writes are refused, its syncs stop in the background. The
   * state stays until the binding's next reconcile, which stops it for good (or starts it anew).
   */
  #cancel(state: BindingState): void {
    if (state.cancelled.signal.aborted) return;
    state.cancelled.abort();
    state.appOwner?.close();
    this.#stopBinding(state).catch((err: unknown) =>
      this.#o.logger.warn({ binding: state.key, err: message(err) }, "stopping a cancelled binding failed"),
    );
  }

  /**
   * client as every write made for a binding must use it (fence.ts): with --shards, writes go out
   * only while this replica may write for the binding, and, for state's work, until it was cancelled.
   */
  #fence(client: KubeClient, uid: string, key: string, state?: BindingState): KubeClient {
    const shard = this.#o.shard;
    if (shard === undefined) return client;
    return fenced(client, () => shard.mayWrite(uid) && state?.cancelled.signal.aborted !== true, `binding ${key}`);
  }

  #handedOver(key: string): void {
    for (const resolve of this.#handOvers.get(key) ?? []) resolve();
    this.#handOvers.delete(key);
  }

  /** The controller itself: its control-plane caches filled and its queue working (no app cluster counts). */
  health(): HealthReport {
    if (!this.#queue.running) return { live: false, ready: false, detail: "the binding controller is stopped" };
    const waiting = [
      ...([...this.#bindings.values()].every(listedOrNotInstalled) ? [] : ["bindings"]),
      ...(this.#templates.every((t) => t.hasSynced()) ? [] : ["templates"]),
    ];
    if (waiting.length > 0) {
      return { live: true, ready: false, detail: `waiting for the first list of ${waiting.join(" and ")}` };
    }
    return { live: true, ready: true, detail: "ok" };
  }

  #allBindings(): KubeObject[] {
    return [...this.#bindings.values()].flatMap((i) => i.list());
  }

  /** Export syncs running now, for health and tests. */
  get exportSyncs(): ExportSync[] {
    return [...this.#states.values()].flatMap((s) => [...s.exports.values()].map((e) => e.sync));
  }

  /** API requests sent to app clusters so far, all bindings together */
  get appRequests(): number {
    let sum = this.#retiredAppRequests;
    for (const state of this.#states.values()) sum += state.app?.requests ?? 0;
    return sum;
  }

  /** Stops the binding's syncs, informers and client (state.ts). */
  #stopBinding(state: BindingState): Promise<void> {
    return stopBinding(state, (requests) => {
      this.#retiredAppRequests += requests;
    });
  }

  async #reconcile(key: string): Promise<void> {
    const { kind, namespace, name } = parseBindingKey(key);
    const binding = this.#bindings.get(kind.ref.group)?.get(name, namespace);
    const existing = this.#states.get(key);
    const shard = this.#o.shard;
    if (shard !== undefined && (binding === undefined || !shard.serves(binding.metadata.uid ?? ""))) {
      // served by another replica (or gone): a hand-over, not a deletion, so nothing is released
      this.#seenAt.delete(binding?.metadata.uid ?? "");
      if (existing) {
        await this.#stopBinding(existing);
        this.#states.delete(key);
        this.#o.logger.info({ binding: key }, "binding not served here any more; stopped syncing it");
      }
      this.#handedOver(key);
      return;
    }
    if (binding === undefined || binding.metadata.deletionTimestamp !== undefined) {
      if (existing) {
        await this.#stopBinding(existing);
        this.#states.delete(key);
        this.#o.logger.info({ binding: key }, "binding deleted; stopped syncing it");
      }
      // our finalizer holds the binding until everything of it in both clusters is released
      if (binding !== undefined && holdsFinalizer(binding)) {
        const fence = (c: KubeClient) => this.#fence(c, binding.metadata.uid ?? "", key);
        await releaseDeleted(
          this.#o,
          this.#events,
          this.#appShares.clientOptions(this.#o.appClientOptions, namespace),
          fence,
          kind,
          binding,
        );
      }
      return;
    }
    if (!holdsFinalizer(binding)) {
      await addFinalizer(this.#fence(this.#o.control, binding.metadata.uid ?? "", key), kind, binding);
      const seenAt = this.#seenAt.get(binding.metadata.uid ?? "");
      if (seenAt !== undefined) stageLog(this.#o.logger, seenAt, { binding: key })?.("finalizer added");
      return; // the update event brings the binding back
    }
    const uid = binding.metadata.uid ?? "";
    const state = await this.#stateOf(key, binding);
    const { exports: listed, repeated } = distinctExports(binding);
    const control = this.#fence(this.#o.control, uid, key, state);
    const maxExports = this.#o.maxExportsPerBinding ?? defaultMaxExportsPerBinding;
    const tooMany =
      listed.length > maxExports
        ? `spec.${kindOf(binding).exportsField} lists ${listed.length} exports, more than --max-exports-per-binding (${maxExports}) allows: none is synced`
        : undefined;
    if (tooMany !== undefined) {
      // nothing released: the spec may shrink again, and the copies stay meanwhile
      await Promise.all([...state.exports.keys()].map((id) => stopExport(state, id)));
    }

    const failing = [...state.exports.values()].flatMap((e) => e.sync.appError ?? []);
    // the informers disagree with the last look at the cluster: look again now
    const lastLook = state.probe.condition?.status;
    if (lastLook !== undefined && (lastLook === "True") === failing.length > 0 && state.exports.size > 0) {
      state.probe.expire();
    }
    const probed = await this.#connection.connect(state, binding);
    const exports =
      tooMany === undefined && state.probe.condition?.status === "True" && state.app && state.appInformers
        ? await this.#exports.reconcile(state, binding, listed, control)
        : unreachableExports(state, tooMany === undefined ? listed : []);
    const outcome = bindingConditions({ binding, probed, failing, tooMany, repeated, exports });
    // the Lease may have been lost while this reconcile waited: then another replica may serve the
    // binding already, and the hand-over's reconcile (queued) stops it here
    if (this.#o.shard !== undefined && !this.#o.shard.serves(uid)) return;
    for (const warning of bindingWarnings(outcome, tooMany, passingStates))
      void this.#events.warn(bindingObject(state.ref), warning.reason, warning.message, control);
    await writeStatus(
      control,
      binding,
      outcome.conditions,
      outcome.exports,
      state.probe.clusterUid,
      this.#o.shard?.identity,
    );
    state.stage?.("status written");
  }

  /** The binding's state: a new one for a binding first seen, or whose state was cancelled or is another binding's of its name. */
  async #stateOf(key: string, binding: KubeObject): Promise<BindingState> {
    const uid = binding.metadata.uid ?? "";
    const existing = this.#states.get(key);
    // a cancelled state (a hand-over gave up waiting for it) is never used again: the binding starts anew
    if (existing !== undefined && existing.ref.uid === uid && !existing.cancelled.signal.aborted) return existing;
    if (existing) await this.#stopBinding(existing);
    const { namespace, name } = parseBindingKey(key);
    const ref = { uid, name, namespace, apiVersion: binding.apiVersion };
    const seenAt = this.#seenAt.get(uid) ?? performance.now();
    this.#seenAt.delete(uid);
    const stage = stageLog(this.#o.logger, seenAt, { binding: key });
    const state: BindingState = {
      key,
      ref,
      exports: new Map(),
      namespaces: new Set(),
      probe: new AppProbe(),
      seenAt,
      stage,
      cancelled: new AbortController(),
    };
    this.#states.set(key, state);
    stage?.("first reconcile");
    return state;
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A binding kind's informer has listed, or its API is not installed (klutch-bind's CRD is optional). */
function listedOrNotInstalled(informer: Informer): boolean {
  const err = informer.lastError;
  return informer.hasSynced() || (err instanceof KubeApiError && err.code === 404);
}
