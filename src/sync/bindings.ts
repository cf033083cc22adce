import { createHash } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import { clusterScopedNotSynced, isClusterScopedClaim, notActedOn } from "../export/claim-behaviour.ts";
import { parseClaims } from "../export/claims.ts";
import { InputError } from "../export/errors.ts";
import { claimsRoleAnnotation } from "../export/plan.ts";
import type { PermissionClaim } from "../export/types.ts";
import { CacheBudget, type CacheLimits } from "../kube/cache-budget.ts";
import {
  type ClientOptions,
  KubeApiError,
  type KubeClient,
  type KubeObject,
  type ResourceRef,
} from "../kube/client.ts";
import { isEstablished } from "../kube/conditions.ts";
import type { Informer } from "../kube/informer.ts";
import { defaultListCeilingBytes, ListCeiling } from "../kube/list-ceiling.ts";
import { LookupGate } from "../kube/lookup.ts";
import { TenantShare } from "../kube/tenant-share.ts";
import { kubeTime } from "../kube/time.ts";
import { AppNamespaceAccess } from "./app-access.ts";
import { appAccessAnnotation, defaultRenewFraction } from "./app-account.ts";
import { AppProbe } from "./app-probe.ts";
import {
  appClient,
  bindingKey,
  bindingKinds,
  type Condition,
  describeBinding,
  distinctExports,
  kindOf,
  parseBindingKey,
  readKubeconfig,
  recordedConsent,
} from "./binding-spec.ts";
import {
  claimFieldsActedOn,
  type ExportStatus,
  konnectorDeployed,
  secretValid,
  writeStatus,
} from "./binding-status.ts";
import { type BindingView, ownership, refusal } from "./cluster-owners.ts";
import { installApi, markApi, namedOwners } from "./consumer-crd.ts";
import { bindingObject, EventRecorder } from "./events.ts";
import type { BindingRef, ExportContext } from "./export-context.ts";
import { ExportSync } from "./export-sync.ts";
import { fenced, NotServedError } from "./fence.ts";
import type { HealthReport } from "./health.ts";
import { InformerRegistry } from "./informers.ts";
import type { KubeconfigSecretPolicy } from "./kubeconfig-secret.ts";
import type { SyncMetrics } from "./metrics.ts";
import { finalizer, labels } from "./naming.ts";
import { ProviderAccess } from "./provider-access.ts";
import { WorkQueue } from "./queue.ts";
import { releaseBinding, releaseExport, releaseTarget } from "./release.ts";
import { refs } from "./resources.ts";
import { type StageLog, stageLog } from "./stages.ts";
import { exportTemplate } from "./template-choice.ts";
import { TenantLimits, type TenantLimitValues, tenantLimitDefaults } from "./tenant-limits.ts";
import { type AppAccess, appAccessOf, renewIfDue } from "./token-renewal.ts";

// passing states of an export: shown on the status, not worth an event
const installing = "installing the API in the app cluster";
/** the API was marked by another binding since this reconcile looked */
const markedMeanwhile = new Error("marked meanwhile");
const firstList = "waiting for the first list of objects";
const bindingsNotListed = "waiting for the first list of bindings";
const transient = new Set([installing, firstList, bindingsNotListed]);

/** What the controller keeps per binding, in memory only: everything durable lives in clusters. */
type BindingState = {
  /** bindingKey: group/namespace/name */
  key: string;
  ref: BindingRef;
  /**
   * what the app client was made from (clientSource): a change restarts the binding; other changes
   * to its Secret (a label, someone's annotation) leave the client, its caches and watches alone
   */
  clientSource?: string;
  app?: KubeClient;
  /** the client app is a view of (fence.ts, --leader-elect), or app itself: closing it ends the connections */
  appOwner?: KubeClient;
  appInformers?: InformerRegistry;
  exports: Map<string, { sync: ExportSync; signature: string; crdVersion: string }>;
  /** provider namespaces and claims access made so far */
  namespaces: Set<string>;
  /** the last look at the app cluster: reachable, and which cluster it is */
  probe: AppProbe;
  /** a service account whose token the sync renews (a binding made by klutch-bind bind), if it is one */
  access?: AppAccess;
  /** when its token was last renewed (Date.now()); kept across restarts of the binding's client */
  lastRenewal?: number;
  namespaceAccess?: AppNamespaceAccess;
  /** performance.now() when the controller first saw this binding object */
  seenAt: number;
  /**
   * aborted when a hand-over stopped waiting for this binding's work (or the controller stops): its
   * clients are closed, its writes refused, and a reconcile still under way starts nothing more
   */
  cancelled: AbortController;
  /** the stages of its start, with debug lines only (stages.ts) */
  stage?: StageLog;
};

export type BindingControllerOptions = {
  control: KubeClient;
  controlInformers: InformerRegistry;
  logger: Logger;
  metrics: SyncMetrics;
  workers: number;
  /** serve the bindings of this namespace only; all when undefined */
  namespace?: string;
  appClientOptions?: ClientOptions;
  /** which Secrets may hold a binding's kubeconfig (see kubeconfig-secret.ts); default marked */
  kubeconfigSecrets?: KubeconfigSecretPolicy;
  /** renew a binding's service account token at this share of its lifetime (default 0.8) */
  appTokenRenewFraction?: number;
  /** the lifetime of renewed tokens, in seconds; default the current token's */
  appTokenSeconds?: number;
  /** how often the status of each binding is refreshed */
  resyncMs?: number;
  /**
   * where templates are read (never cluster-wide: whoever may write a template elsewhere must not
   * decide what bindings sync); default crossplane-system and the bindings' namespace
   */
  templateNamespaces?: string[];
  /**
   * bindings reconciled at once: each waits mostly on its own app cluster, so a hanging one holds
   * one worker and no more (default 32)
   */
  bindingWorkers?: number;
  /**
   * bindings of one namespace (one tenant's) reconciled at once at most, so one tenant's hanging app
   * clusters cannot hold every worker (default a quarter of bindingWorkers)
   */
  bindingWorkersPerNamespace?: number;
  /**
   * one replica of several (shards.ts): it serves the bindings serves() says, and names itself in
   * their status; a binding's syncs write only while mayWrite() says yes (fence.ts)
   */
  shard?: { identity: string; serves: (uid: string) => boolean; mayWrite: (uid: string) => boolean };
  /** --leader-elect: app cluster writes go out only while this says yes (fence.ts) */
  writeGate?: () => boolean;
  /**
   * what the app cluster caches of one namespace's bindings (one tenant's) hold together at most
   * (default appCacheDefaults): a cluster that sends endless objects fills its tenant's share only
   */
  appCacheLimits?: CacheLimits;
  /**
   * what the lists being read from app clusters hold together at most, every namespace's (default
   * defaultListCeilingBytes(): a sixteenth of the heap limit); one namespace's hold half of it at most
   */
  appListBytesInFlight?: number;
  /** what one namespace's bindings (one tenant's) make on the control plane at most (default tenantLimitDefaults) */
  tenantLimits?: TenantLimitValues;
  /**
   * how long a hand-over (or stop) waits for a binding's reconcile under way before it cancels it
   * (default 1 s): a tenant's cluster that never answers must not hold the Lease's list
   */
  handOverWaitMs?: number;
  /** a binding listing more exports syncs none of them (default 50; --max-exports-per-binding) */
  maxExportsPerBinding?: number;
  /** exports of one namespace's bindings (one tenant's) reconciled at once at most (default 16) */
  exportsPerNamespace?: number;
};

export const appCacheDefaults: CacheLimits = { maxObjects: 50_000, maxBytes: 256 * 1024 * 1024 };
export const defaultMaxExportsPerBinding = 50;

export class BindingController {
  readonly #o: BindingControllerOptions;
  readonly #queue: WorkQueue;
  readonly #states = new Map<string, BindingState>();
  readonly #budgets = new Map<string, CacheBudget>();
  /** every namespace's app cluster lists being read, together (list-ceiling.ts) */
  readonly #listCeiling: ListCeiling;
  /** one namespace's (one tenant's) host name lookups run two at a time (lookup.ts) */
  readonly #lookups = new LookupGate();
  /** one namespace's (one tenant's) exports reconciled at once, all its bindings together */
  readonly #exportSlots: TenantShare;
  /** requests of app clients already closed, so appRequests never goes back */
  #retiredAppRequests = 0;
  readonly #events: EventRecorder;
  /** one per binding kind (ours, klutch-bind's), by API group */
  readonly #bindings = new Map<string, Informer>();
  /** one per template namespace: templates are read there only, never cluster-wide */
  #templates: Informer[] = [];
  #release: Array<() => Promise<void>> = [];
  #resync: NodeJS.Timeout | undefined;
  readonly #access: ProviderAccess;
  readonly #limits: TenantLimits;
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
    this.#access = new ProviderAccess(options.control, this.#limits);
    this.#listCeiling = new ListCeiling(
      options.appListBytesInFlight ?? defaultListCeilingBytes(),
      "--app-lists-mib-in-flight",
    );
    this.#exportSlots = new TenantShare(options.exportsPerNamespace ?? 16);
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

  /** A client for an app cluster of a binding of namespace: its host name lookups gated per namespace. */
  #appClientOptions(namespace: string): ClientOptions {
    return { ...this.#o.appClientOptions, lookup: this.#lookups.lookupFor(namespace) };
  }

  /** The app cache budget of a namespace's bindings (kept while the process runs: a few numbers each). */
  #cacheBudget(namespace: string): CacheBudget {
    let budget = this.#budgets.get(namespace);
    if (budget === undefined) {
      budget = new CacheBudget(
        this.#o.appCacheLimits ?? appCacheDefaults,
        `the app cluster caches of namespace ${namespace}'s bindings (--app-cache-objects-per-namespace, --app-cache-mib-per-namespace)`,
        this.#listCeiling,
      );
      this.#budgets.set(namespace, budget);
    }
    return budget;
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

  /** Throws when the binding's work was cancelled (a hand-over stopped waiting for it). */
  #live(state: BindingState): void {
    if (state.cancelled.signal.aborted) throw new NotServedError(`binding ${state.key}`);
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

  async #stopExport(state: BindingState, id: string): Promise<void> {
    const running = state.exports.get(id);
    if (running === undefined) return;
    await running.sync.stop();
    state.exports.delete(id);
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

  /**
   * Stops the binding's syncs, informers and client; what it stops is taken off state at once (a
   * cancel and a reconcile may both call it).
   */
  async #stopBinding(state: BindingState): Promise<void> {
    const syncs = [...state.exports.values()].map((e) => e.sync);
    const informers = state.appInformers;
    const owner = state.appOwner;
    state.exports.clear();
    this.#retiredAppRequests += state.app?.requests ?? 0;
    state.app = undefined;
    state.appOwner = undefined;
    state.appInformers = undefined;
    state.probe = new AppProbe();
    state.clientSource = undefined;
    state.access = undefined;
    state.namespaceAccess = undefined;
    // a cancel while the syncs stop (they may wait on the cluster) closes the client at once
    const close = () => owner?.close();
    state.cancelled.signal.addEventListener("abort", close, { once: true });
    try {
      await Promise.all(syncs.map((sync) => sync.stop()));
      await informers?.stopAll();
    } finally {
      state.cancelled.signal.removeEventListener("abort", close);
      close();
    }
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
      if (binding?.metadata.finalizers?.includes(finalizer)) {
        const fence = (c: KubeClient) => this.#fence(c, binding.metadata.uid ?? "", key);
        await releaseBinding(
          {
            control: fence(this.#o.control),
            appClientOptions: this.#appClientOptions(namespace),
            logger: this.#o.logger,
            events: this.#events,
            kubeconfigSecrets: this.#o.kubeconfigSecrets ?? "marked",
            fence,
          },
          binding,
        );
        const finalizers = binding.metadata.finalizers.filter((f) => f !== finalizer);
        await fence(this.#o.control).update(kind.ref, { ...binding, metadata: { ...binding.metadata, finalizers } });
      }
      return;
    }
    if (!binding.metadata.finalizers?.includes(finalizer)) {
      await this.#fence(this.#o.control, binding.metadata.uid ?? "", key).update(kind.ref, {
        ...binding,
        metadata: { ...binding.metadata, finalizers: [...(binding.metadata.finalizers ?? []), finalizer] },
      });
      const seenAt = this.#seenAt.get(binding.metadata.uid ?? "");
      if (seenAt !== undefined) stageLog(this.#o.logger, seenAt, { binding: key })?.("finalizer added");
      return; // the update event brings the binding back
    }
    const uid = binding.metadata.uid ?? "";
    let state = existing;
    // a cancelled state (a hand-over gave up waiting for it) is never used again: the binding starts anew
    if (state === undefined || state.ref.uid !== uid || state.cancelled.signal.aborted) {
      if (state) await this.#stopBinding(state);
      const ref = { uid, name, namespace, apiVersion: binding.apiVersion };
      const seenAt = this.#seenAt.get(uid) ?? performance.now();
      this.#seenAt.delete(uid);
      const stage = stageLog(this.#o.logger, seenAt, { binding: key });
      state = {
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
    }
    const { exports: listed, repeated } = distinctExports(binding);
    const control = this.#fence(this.#o.control, uid, key, state);
    const maxExports = this.#o.maxExportsPerBinding ?? defaultMaxExportsPerBinding;
    const tooMany =
      listed.length > maxExports
        ? `spec.${kindOf(binding).exportsField} lists ${listed.length} exports, more than --max-exports-per-binding (${maxExports}) allows: none is synced`
        : undefined;
    if (tooMany !== undefined) {
      // nothing released: the spec may shrink again, and the copies stay meanwhile
      await Promise.all([...state.exports.keys()].map((id) => this.#stopExport(state, id)));
    }
    const conditions: Condition[] = [];
    const exportStatuses: ExportStatus[] = [];

    const failing = [...state.exports.values()].flatMap((e) => e.sync.appError ?? []);
    // the informers disagree with the last look at the cluster: look again now
    const lastLook = state.probe.condition?.status;
    if (lastLook !== undefined && (lastLook === "True") === failing.length > 0 && state.exports.size > 0) {
      state.probe.expire();
    }
    let connected = await this.#connect(state, binding);
    if (connected.status === "True" && failing.length > 0) {
      // /version answers, but lists or watches of the bound objects do not: nothing is synced
      connected = { type: "Connected", status: "False", reason: "ListWatchFailing", message: failing.join("; ") };
    }
    if (tooMany === undefined && state.probe.condition?.status === "True" && state.app && state.appInformers) {
      const wanted = new Set(listed.map((e) => `${e.resource}.${e.group}`));
      exportStatuses.push(...(await this.#syncExports(state, binding, listed)));
      for (const [id, running] of state.exports) {
        if (!wanted.has(id)) {
          // an export left the spec: let go of it as of the whole binding
          await running.sync.stop();
          state.exports.delete(id);
          await releaseExport(releaseTarget(control, this.#o.logger, binding, state.app), running.sync.ctx.ref, id);
        }
      }
    } else {
      for (const e of tooMany === undefined ? listed : []) {
        const running = state.exports.get(`${e.resource}.${e.group}`)?.sync.status();
        exportStatuses.push({
          group: e.group,
          resource: e.resource,
          ...(running ? { objects: running.objects } : {}),
          ...(running?.lastSync ? { lastSync: kubeTime(running.lastSync) } : {}),
          message: "app cluster unreachable; syncing resumes when it returns",
        });
      }
    }
    const lost = exportStatuses.find((e) => e.appUnreachable !== undefined)?.appUnreachable;
    if (connected.status === "True" && lost !== undefined) connected = lost;
    for (const e of exportStatuses) {
      if (e.appUnreachable === undefined) continue;
      e.message = "app cluster unreachable; syncing resumes when it returns";
      delete e.appUnreachable;
    }
    const appErrors = exportStatuses.flatMap((e) => (e.appError ? [`${e.resource}.${e.group}: ${e.appError}`] : []));
    if (connected.status === "True" && appErrors.length > 0) {
      connected = { type: "Connected", status: "False", reason: "AppClusterError", message: appErrors.join("; ") };
    }
    for (const e of exportStatuses) {
      if (e.appError === undefined) continue;
      e.message = e.appError;
      delete e.appError;
    }
    conditions.push(secretValid(connected), connected, claimFieldsActedOn(exportStatuses));
    if (kindOf(binding).ref.group === refs.klutchBindings.group) conditions.push(konnectorDeployed(binding));
    const ready =
      tooMany === undefined && connected.status === "True" && exportStatuses.every((e) => e.message === undefined);
    const repeats =
      repeated > 0
        ? `; spec.${kindOf(binding).exportsField} lists ${repeated} more entries of the same group and resource, ignored`
        : "";
    conditions.push(
      ready
        ? {
            type: "Ready",
            status: "True",
            reason: "Synced",
            message: `${exportStatuses.length} export(s) bound and in sync${repeats}`,
          }
        : {
            type: "Ready",
            status: "False",
            reason: tooMany ? "TooManyExports" : connected.status === "True" ? "ExportsNotReady" : "Disconnected",
            message: `${
              tooMany ??
              (exportStatuses
                .flatMap((e) => (e.message ? [`${e.resource}.${e.group}: ${e.message}`] : []))
                .join("; ") ||
                connected.message)
            }${repeats}`,
          },
    );
    const pendingClaims = exportStatuses.flatMap((e) =>
      e.claimsPending ? [`${e.resource}.${e.group}: ${e.claimsPending}`] : [],
    );
    conditions.push(
      pendingClaims.length === 0
        ? {
            type: "ClaimsAccepted",
            status: "True",
            reason: "Accepted",
            message: "every claim of the templates is accepted",
          }
        : {
            type: "ClaimsAccepted",
            status: "False",
            reason: "ClaimsPending",
            message: `not synced until accepted (spec.${kindOf(binding).exportsField}[].permissionClaims, or klutch-bind bind again): ${pendingClaims.join("; ")}`,
          },
    );
    // the Lease may have been lost while this reconcile waited: then another replica may serve the
    // binding already, and the hand-over's reconcile (queued) stops it here
    if (this.#o.shard !== undefined && !this.#o.shard.serves(uid)) return;
    if (connected.status !== "True")
      void this.#events.warn(bindingObject(state.ref), connected.reason, connected.message, control);
    if (tooMany !== undefined) void this.#events.warn(bindingObject(state.ref), "TooManyExports", tooMany, control);
    for (const e of exportStatuses) {
      if (e.message && !transient.has(e.message) && connected.status === "True" && tooMany === undefined)
        void this.#events.warn(
          bindingObject(state.ref),
          "ExportNotReady",
          `${e.resource}.${e.group}: ${e.message}`,
          control,
        );
    }
    await writeStatus(control, binding, conditions, exportStatuses, state.probe.clusterUid, this.#o.shard?.identity);
    state.stage?.("status written");
  }

  /**
   * A client for the binding's app cluster, and whether it answers. Without usable credentials the
   * binding stops syncing (nothing written, nothing deleted) until they are back: the old ones may
   * have been withdrawn on purpose.
   */
  async #connect(state: BindingState, binding: KubeObject): Promise<Condition> {
    const stopped = async (reason: string, text: string): Promise<Condition> => {
      await this.#stopBinding(state);
      return { type: "Connected", status: "False", reason, message: text };
    };
    const kubeconfig = await readKubeconfig(this.#o.control, binding, this.#o.kubeconfigSecrets);
    state.stage?.("secret read", { ok: kubeconfig.ok });
    if (!kubeconfig.ok) return stopped(kubeconfig.reason, kubeconfig.message);
    const source = clientSource(kubeconfig.secret, kubeconfig.key, kubeconfig.text);
    if (state.clientSource !== source) {
      const kubeconfigChanged = state.clientSource !== undefined;
      await this.#stopBinding(state);
      this.#live(state); // a cancelled binding opens no client
      try {
        const app = appClient(kubeconfig, this.#appClientOptions(binding.metadata.namespace ?? ""));
        app.observeRequests(this.#o.metrics.apiRequests("app"));
        const gate = this.#o.writeGate;
        const view = gate ? fenced(app, gate, `binding ${state.key}: this replica (no longer the leader)`) : app;
        state.app = this.#fence(view, state.ref.uid, state.key, state);
        state.appOwner = app;
      } catch (err) {
        return stopped("InvalidKubeconfig", message(err));
      }
      state.appInformers = new InformerRegistry(
        state.app,
        this.#o.logger.child({ binding: bindingKey(binding), cluster: "app" }),
        this.#cacheBudget(binding.metadata.namespace ?? ""),
      );
      state.clientSource = source;
      state.access = appAccessOf(kubeconfig.secret, kubeconfig.text);
      state.namespaceAccess = state.access && new AppNamespaceAccess(state.app, state.access.account);
      // every time: a changed kubeconfig restarts the binding's informers, which relist
      state.stage?.("app client created", kubeconfigChanged ? { kubeconfigChanged } : undefined, true);
    }
    const app = state.app;
    if (app === undefined) return stopped("NotConnected", "no client for the app cluster");
    const expired = await this.#renewToken(state, kubeconfig, app);
    if (expired !== undefined) return stopped("TokenExpired", expired);
    const looked = await state.probe.look(app, this.#o.logger.child({ binding: bindingKey(binding) }), (ms) => {
      if (state.app === app) this.#queue.addAfter(bindingKey(binding), ms);
    });
    state.stage?.("app cluster probed", { connected: looked.status });
    return looked;
  }

  /**
   * Renews the binding's service account token when due (token-renewal.ts), in place: the client
   * and its informers go on. Says why the binding cannot connect when the token has expired.
   */
  async #renewToken(
    state: BindingState,
    kubeconfig: { secret: KubeObject; key: string; text: string },
    app: KubeClient,
  ): Promise<string | undefined> {
    if (state.access === undefined) return undefined;
    const control = this.#fence(this.#o.control, state.ref.uid, state.key, state);
    const outcome = await renewIfDue(control, app, kubeconfig, state.access, {
      fraction: this.#o.appTokenRenewFraction ?? defaultRenewFraction,
      ...(this.#o.appTokenSeconds ? { seconds: this.#o.appTokenSeconds } : {}),
      ...(state.lastRenewal !== undefined ? { lastRenewal: state.lastRenewal } : {}),
      log: this.#o.logger.child({ binding: state.key }),
    });
    if (outcome.kind === "expired") return outcome.message;
    if (outcome.kind === "renewed") {
      // our own write: the client has the new token already, nothing restarts
      state.clientSource = clientSource(outcome.secret, kubeconfig.key, outcome.text);
      state.access = outcome.access;
      state.lastRenewal = outcome.access.times.issuedAt;
    }
    if (outcome.kind === "failed")
      void this.#events.warn(bindingObject(state.ref), "TokenNotRenewed", outcome.message, control);
    // a timer at most an hour ahead (the periodic resync looks anyway)
    this.#queue.addAfter(state.key, Math.min(Math.max(outcome.ms, 100), 3_600_000));
    return undefined;
  }

  /**
   * Why this binding may not sync exportId of its app cluster, whose API's CRD there is appCrd
   * (cluster-owners.ts), or undefined.
   */
  async #notOwner(state: BindingState, exportId: string, appCrd: KubeObject | undefined): Promise<string | undefined> {
    if (![...this.#bindings.values()].every(listedOrNotInstalled)) {
      this.#queue.addAfter(state.key, 1000);
      return bindingsNotListed;
    }
    const named = await namedOwners(state.app as KubeClient, appCrd, state.ref.uid);
    const view = (b: KubeObject): BindingView => {
      const key = bindingKey(b);
      const recorded = (b.status as { appCluster?: { uid?: string } } | undefined)?.appCluster?.uid;
      return {
        key,
        uid: b.metadata.uid ?? "",
        exports: exportIds(b),
        deleting: b.metadata.deletionTimestamp !== undefined,
        clusterUid: this.#states.get(key)?.probe.clusterUid ?? recorded,
      };
    };
    const all = this.#allBindings().map(view);
    const verdict = ownership(state.ref.uid, state.probe.clusterUid, exportId, named, all, !this.#o.namespace);
    return verdict.owner ? undefined : refusal(verdict, exportId, describeBinding);
  }

  /**
   * The binding's exports, looked at concurrently within its namespace's share (exportsPerNamespace
   * at once, all of that tenant's bindings together): a cluster that never answers costs one
   * request timeout, not one per export. Statuses in spec order; the first error thrown, once all ended.
   */
  async #syncExports(
    state: BindingState,
    binding: KubeObject,
    listed: Array<{ group: string; resource: string }>,
  ): Promise<ExportStatus[]> {
    const done = await Promise.allSettled(
      listed.map(async (e) => {
        // a cancelled binding stops waiting for its tenant's turn
        const release = await this.#exportSlots.enter(state.ref.namespace, undefined, state.cancelled.signal);
        try {
          this.#live(state);
          return await this.#syncExport(state, binding, e.group, e.resource);
        } finally {
          release();
        }
      }),
    );
    const failed = done.find((d) => d.status === "rejected");
    if (failed !== undefined) throw failed.reason;
    return done.flatMap((d) => (d.status === "fulfilled" ? [d.value] : []));
  }

  async #syncExport(state: BindingState, binding: KubeObject, group: string, resource: string): Promise<ExportStatus> {
    const id = `${resource}.${group}`;
    const base: ExportStatus = { group, resource };
    const app = state.app as KubeClient;
    let appCrd: KubeObject | undefined;
    let refused: string | undefined;
    try {
      appCrd = await app.get(refs.crds, id);
      refused = await this.#notOwner(state, id, appCrd);
    } catch (err) {
      if (!(err instanceof KubeApiError)) {
        // no answer at all: the cluster went away since the last look, which says so (and when to look again)
        state.probe.expire();
        const looked = await state.probe.look(app, this.#o.logger.child({ binding: state.key }), (ms) => {
          if (state.app === app) this.#queue.addAfter(state.key, ms);
        });
        if (looked.status !== "True") return { ...base, appUnreachable: looked };
      }
      this.#queue.addAfter(state.key, 5000);
      return { ...base, appError: `reading the API's CRD in the app cluster failed: ${message(err)}` };
    }
    if (refused !== undefined) {
      await this.#stopExport(state, id);
      return { ...base, message: refused };
    }
    const templates = this.#templates.flatMap((i) => i.list());
    const chosen = exportTemplate(templates, group, resource, binding.metadata.namespace ?? "");
    if ("message" in chosen) {
      // two templates of one API: which claims apply would depend on cache order; neither does
      if (chosen.conflict) await this.#stopExport(state, id);
      return { ...base, message: chosen.message };
    }
    const template = chosen.template;
    const templateSpec = template.spec as { APIServiceSelector: { version?: string }; permissionClaims?: unknown };
    let claims: PermissionClaim[];
    try {
      claims = parseClaims(
        templateSpec.permissionClaims,
        `template ${template.metadata.namespace}/${template.metadata.name} spec.permissionClaims`,
      );
    } catch (err) {
      if (err instanceof InputError) return { ...base, message: err.message };
      throw err;
    }
    const consented = await recordedConsent(this.#o.control, this.#o.logger, binding, { group, resource }, claims);
    state.stage?.("claims consent read", { export: id });
    if (typeof consented === "string") return { ...base, message: consented };
    claims = consented.accepted;
    const named = (c: PermissionClaim) =>
      `${c.resource}.${c.group || "core"} (owner ${c.selector.owner ?? "either side"})`;
    const pending = consented.pending.map(named);
    if (pending.length > 0) base.claimsPending = pending.join(", ");
    const blocking = [...consented.pending, ...consented.rejected].filter((c) => c.required === true);
    if (blocking.length > 0) {
      // klutch-bind's required: the export does not work without it
      await this.#stopExport(state, id);
      return { ...base, message: `required claims not accepted: ${blocking.map(named).join(", ")}` };
    }
    const unsynced = claims.filter((c) => c.required === true && isClusterScopedClaim(c));
    if (unsynced.length > 0) {
      await this.#stopExport(state, id);
      return { ...base, message: `required claims ${unsynced.map(named).join(", ")}: ${clusterScopedNotSynced}` };
    }
    const ignored = claims.flatMap((c) => notActedOn(c).map((f) => `${named(c)} ${f}`));
    if (ignored.length > 0) base.claimsNotActedOn = ignored.join("; ");
    claims = claims.filter((c) => !isClusterScopedClaim(c));
    const providerCrd = await this.#o.control.get(refs.crds, id);
    if (providerCrd === undefined) return { ...base, message: `the control plane has no CRD ${id}` };
    const crdSpec = providerCrd.spec as {
      scope: string;
      versions: Array<{ name: string; served?: boolean; storage?: boolean }>;
    };
    const version =
      templateSpec.APIServiceSelector.version ??
      crdSpec.versions.find((v) => v.storage)?.name ??
      crdSpec.versions.find((v) => v.served)?.name ??
      "";
    const running = state.exports.get(id);
    let installed = appCrd;
    try {
      if (running?.crdVersion !== providerCrd.metadata.resourceVersion || installed === undefined) {
        installed = await installApi(app, providerCrd);
        state.stage?.("api installed", { export: id });
      }
      const mark = installed?.metadata.labels?.[labels.binding];
      if (installed !== undefined && mark !== state.ref.uid) {
        // marked by another since the look above: the next look decides
        if (mark !== appCrd?.metadata.labels?.[labels.binding]) throw markedMeanwhile;
        installed = await markApi(app, installed, { uid: state.ref.uid, key: state.key });
        state.stage?.("api marked", { export: id });
      }
    } catch (err) {
      if (err === markedMeanwhile || (err instanceof KubeApiError && err.code === 409)) {
        this.#queue.addAfter(state.key, 500);
        return { ...base, version, template: template.metadata.name, message: installing };
      }
      // the app cluster's trouble: its binding says so, and looks again with the probe's backoff
      this.#queue.addAfter(state.key, 5000);
      return { ...base, version, appError: `installing the API in the app cluster failed: ${message(err)}` };
    }
    if (installed === undefined || !isEstablished(installed)) {
      this.#queue.addAfter(state.key, 500);
      return { ...base, version, template: template.metadata.name, message: installing };
    }
    const ref: ResourceRef = { group, version, resource, namespaced: crdSpec.scope === "Namespaced" };
    const claimsRole = template.metadata.annotations?.[claimsRoleAnnotation];
    const signature = JSON.stringify({ ref, claims, claimsRole });
    if (running === undefined || running.signature !== signature) {
      await running?.sync.stop();
      this.#live(state); // a cancelled binding starts no sync
      const sync = new ExportSync(
        this.#exportContext(state, ref, claims, claimsRole),
        { control: this.#o.controlInformers, app: state.appInformers as InformerRegistry },
        this.#o.workers,
      );
      sync.start();
      state.stage?.("export sync started", { export: id });
      state.exports.set(id, { sync, signature, crdVersion: providerCrd.metadata.resourceVersion ?? "" });
      this.#o.logger.info({ binding: state.key, export: id, version, claims: claims.length }, "syncing export");
    } else {
      running.crdVersion = providerCrd.metadata.resourceVersion ?? "";
    }
    const current = state.exports.get(id)?.sync.status();
    // nothing else starts a reconcile when the first lists complete: look again shortly
    if (current?.synced === false) this.#queue.addAfter(state.key, 500);
    return {
      ...base,
      version,
      template: `${template.metadata.namespace}/${template.metadata.name}`,
      objects: current?.objects ?? 0,
      ...(current?.lastSync ? { lastSync: kubeTime(current.lastSync) } : {}),
      ...(current?.synced === false ? { message: firstList } : {}),
      ...(current?.conflicts.length ? { message: current.conflicts.join("; ") } : {}),
    };
  }

  #exportContext(
    state: BindingState,
    ref: ResourceRef,
    claims: PermissionClaim[],
    claimsRole: string | undefined,
  ): ExportContext {
    const log = this.#o.logger.child({
      binding: state.key,
      export: `${ref.resource}.${ref.group}`,
    });
    const id = `${ref.resource}.${ref.group}`;
    const namespaceAccess = state.namespaceAccess;
    const shard = this.#o.shard;
    const mayWrite = () => shard === undefined || (shard.mayWrite(state.ref.uid) && !state.cancelled.signal.aborted);
    const client = (c: KubeClient) => (shard === undefined ? c : fenced(c, mayWrite, `binding ${state.key}`));
    // one tenant's requests wait their turn among its own (tenant-share.ts), not before everyone's
    const control = client(this.#o.control.forTenant(state.ref.namespace));
    return {
      binding: state.ref,
      ref,
      claims,
      control,
      app: client(state.app as KubeClient),
      log,
      metrics: this.#o.metrics,
      ensureProviderNamespace: async (appNs) => {
        if (!mayWrite()) throw new NotServedError(`binding ${state.key}`);
        const ns = await this.#access.ensureNamespace(state.ref, appNs, state.namespaces, control);
        if (claimsRole !== undefined && claims.length > 0) {
          await this.#access.ensureClaimsAccess(state.ref, ns, id, claimsRole, state.namespaces, control);
        }
        return ns;
      },
      ...(namespaceAccess && claims.length > 0
        ? {
            ensureAppNamespaceAccess: async (appNs: string) => {
              if (!mayWrite()) throw new NotServedError(`binding ${state.key}`);
              await namespaceAccess.ensure(appNs);
            },
          }
        : {}),
      reportConflict: (text) => void this.#events.warn(bindingObject(state.ref), "NameConflict", text, control),
      controlWatch: () => this.#limits.takeWatch(state.ref.namespace),
      stage: stageLog(log, state.seenAt),
    };
  }
}

/**
 * What a binding's app client is made of: the kubeconfig under its key, and whether the sync renews
 * its token (an annotation). A digest, so that no credential is kept.
 */
function clientSource(secret: KubeObject, key: string, text: string): string {
  const renews = secret.metadata.annotations?.[appAccessAnnotation] ?? "";
  return createHash("sha256").update(`${key}\0${renews}\0`).update(text).digest("hex");
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The template namespaces a controller watches: as configured, else crossplane-system and the bindings' namespace. */
export function templateNamespacesOf(options: { templateNamespaces?: string[]; namespace?: string }): string[] {
  const configured = options.templateNamespaces?.filter((n) => n !== "");
  if (configured !== undefined && configured.length > 0) return [...new Set(configured)];
  return [...new Set(["crossplane-system", ...(options.namespace ? [options.namespace] : [])])];
}

/** A binding kind's informer has listed, or its API is not installed (klutch-bind's CRD is optional). */
function listedOrNotInstalled(informer: Informer): boolean {
  const err = informer.lastError;
  return informer.hasSynced() || (err instanceof KubeApiError && err.code === 404);
}

/** A binding's exports as "resource.group", whichever its kind. */
function exportIds(binding: KubeObject): string[] {
  return distinctExports(binding).exports.map((e) => `${e.resource}.${e.group}`);
}
