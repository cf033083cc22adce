// AppClusterBindings: connect to each app cluster, install the bound APIs there, run one ExportSync
// per bound export, and report Connected/Ready and per-export figures on the binding's status.
import { isDeepStrictEqual } from "node:util";
import type { Logger } from "pino";
import { parseClaims } from "../export/claims.ts";
import { InputError } from "../export/errors.ts";
import { claimsRoleAnnotation } from "../export/plan.ts";
import type { PermissionClaim } from "../export/types.ts";
import {
  type ClientOptions,
  KubeApiError,
  KubeClient,
  KubeDecodeError,
  type KubeObject,
  type ResourceRef,
} from "../kube/client.ts";
import { isEstablished } from "../kube/conditions.ts";
import type { Informer } from "../kube/informer.ts";
import { kubeTime } from "../kube/time.ts";
import { type BindingClaim, ownership } from "./cluster-owners.ts";
import { acceptAll, type Consent, consent, parseRecorded, type RecordedClaim } from "./consent.ts";
import { aggregatedRoles, consumerCrd } from "./consumer-crd.ts";
import { bindingObject, EventRecorder } from "./events.ts";
import type { BindingRef, ExportContext } from "./export-context.ts";
import { ExportSync } from "./export-sync.ts";
import type { HealthReport } from "./health.ts";
import { InformerRegistry } from "./informers.ts";
import { kubeconfigForAnnotation, notMarkedFor } from "./kubeconfig-secret.ts";
import type { SyncMetrics } from "./metrics.ts";
import { annotations, fieldManager, finalizer, labels, managedByValue, providerNamespace } from "./naming.ts";
import { WorkQueue } from "./queue.ts";
import { claimsAccessName, type DeletionPolicy, releaseExport, releaseNamespaces } from "./release.ts";
import { refs } from "./resources.ts";

type Condition = {
  type: string;
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
  lastTransitionTime?: string;
};
type ExportStatus = {
  group: string;
  resource: string;
  /** the template's claims this binding has not accepted as they are now (not synced) */
  claimsPending?: string;
  /** what the app cluster answered wrongly (only in memory: it becomes the Connected condition) */
  appError?: string;
  version?: string;
  template?: string;
  objects?: number;
  lastSync?: string;
  message?: string;
};

// passing states of an export: shown on the status, not worth an event
const installing = "installing the API in the app cluster";
const firstList = "waiting for the first list of objects";
const transient = new Set([installing, firstList]);

type Subject = { kind: string; name: string; namespace?: string; apiGroup?: string };

type BindingSpec = {
  kubeconfigSecretRef?: { name?: string; key?: string };
  exports?: Array<{ group?: string; resource?: string; permissionClaims?: unknown }>;
  deletionPolicy?: DeletionPolicy;
};

/** What the controller keeps per binding, in memory only: everything durable lives in clusters. */
type BindingState = {
  ref: BindingRef;
  kubeconfigVersion?: string;
  app?: KubeClient;
  appInformers?: InformerRegistry;
  exports: Map<string, { sync: ExportSync; signature: string; crdVersion: string }>;
  namespaces: Set<string>;
  /** the last look at the app cluster's /version, and when to look again */
  probe?: { condition: Condition; next: number; failures: number };
  /** the app cluster's identity: its kube-system namespace's uid */
  clusterUid?: string;
};

/** a reachable app cluster is asked again after this long; an unreachable one backs off up to probeMaxMs */
const probeOkMs = 60_000;
const probeMinMs = 1_000;
const probeMaxMs = 30_000;
/** an app cluster answers each request within this, unless the options say otherwise */
const defaultAppTimeoutMs = 10_000;

export type BindingControllerOptions = {
  control: KubeClient;
  controlInformers: InformerRegistry;
  logger: Logger;
  metrics: SyncMetrics;
  workers: number;
  /** serve the bindings of this namespace only; all when undefined */
  namespace?: string;
  appClientOptions?: ClientOptions;
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
};

export class BindingController {
  readonly #o: BindingControllerOptions;
  readonly #queue: WorkQueue;
  readonly #states = new Map<string, BindingState>();
  /** requests of app clients already closed, so appRequests never goes back */
  #retiredAppRequests = 0;
  readonly #events: EventRecorder;
  #bindings!: Informer;
  /** one per template namespace: templates are read there only, never cluster-wide */
  #templates: Informer[] = [];
  #release: Array<() => Promise<void>> = [];
  #resync: NodeJS.Timeout | undefined;

  constructor(options: BindingControllerOptions) {
    this.#o = options;
    this.#events = new EventRecorder(options.control, options.logger);
    this.#queue = new WorkQueue({
      workers: options.bindingWorkers ?? 32,
      process: (key) => this.#reconcile(key),
      onError: (key, err, retries) =>
        options.logger[retries > 3 ? "warn" : "info"](
          { binding: key, retries, err: message(err) },
          "binding reconcile failed; retrying",
        ),
    });
  }

  start(): void {
    const enqueue = (obj: KubeObject) => this.#queue.add(`${obj.metadata.namespace}/${obj.metadata.name}`);
    const all = () => {
      for (const b of this.#bindings.list()) enqueue(b);
    };
    // Our own status writes change neither generation, deletion nor finalizers: they start no reconcile.
    const changed = (old: KubeObject, obj: KubeObject) =>
      old.metadata.generation !== obj.metadata.generation ||
      old.metadata.deletionTimestamp !== obj.metadata.deletionTimestamp ||
      JSON.stringify(old.metadata.finalizers) !== JSON.stringify(obj.metadata.finalizers);
    const bindings = this.#o.controlInformers.acquire(
      refs.bindings,
      this.#o.namespace ? { namespace: this.#o.namespace } : {},
      { add: enqueue, update: (old, obj) => changed(old, obj) && enqueue(obj), delete: enqueue },
    );
    this.#bindings = bindings.informer;
    this.#release.push(bindings.release);
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

  async stop(): Promise<void> {
    clearInterval(this.#resync);
    await this.#queue.stop();
    await Promise.all([...this.#states.values()].map((s) => this.#stopBinding(s)));
    await Promise.all(this.#release.map((r) => r()));
  }

  /** The controller itself: its control-plane caches filled and its queue working (no app cluster counts). */
  health(): HealthReport {
    if (!this.#queue.running) return { live: false, ready: false, detail: "the binding controller is stopped" };
    const waiting = [
      ...(this.#bindings.hasSynced() ? [] : ["bindings"]),
      ...(this.#templates.every((t) => t.hasSynced()) ? [] : ["templates"]),
    ];
    if (waiting.length > 0) {
      return { live: true, ready: false, detail: `waiting for the first list of ${waiting.join(" and ")}` };
    }
    return { live: true, ready: true, detail: "ok" };
  }

  /**
   * The claims this binding accepted of the template's (or a message why there are none to go by).
   * A binding made before consent was recorded accepts the template's claims of now, once, and
   * records them, so that later additions wait for consent.
   */
  async #consent(
    binding: KubeObject,
    group: string,
    resource: string,
    claims: PermissionClaim[],
  ): Promise<Consent | string> {
    const exports = (binding.spec as BindingSpec | undefined)?.exports ?? [];
    const index = exports.findIndex((e) => (e.group ?? "") === group && e.resource === resource);
    const entry = exports[index];
    if (entry === undefined) return consent(claims, []);
    let recorded: RecordedClaim[] | undefined;
    try {
      recorded = parseRecorded(entry.permissionClaims, `spec.exports[${index}].permissionClaims`);
    } catch (err) {
      if (err instanceof InputError) return err.message;
      throw err;
    }
    if (recorded !== undefined) return consent(claims, recorded);
    const spec = binding.spec as BindingSpec;
    await this.#o.control.update(refs.bindings, {
      ...binding,
      spec: {
        ...spec,
        exports: exports.map((e, i) => (i === index ? { ...e, permissionClaims: acceptAll(claims) } : e)),
      },
    });
    this.#o.logger.info(
      { binding: `${binding.metadata.namespace}/${binding.metadata.name}`, export: `${resource}.${group}` },
      "recorded the template's claims as accepted (the binding recorded none)",
    );
    return consent(claims, acceptAll(claims));
  }

  /** The app cluster's kube-system namespace uid: the same cluster behind any kubeconfig. */
  async #clusterUid(state: BindingState, app: KubeClient): Promise<string | undefined> {
    try {
      return (await app.get(refs.namespaces, "kube-system"))?.metadata.uid;
    } catch (err) {
      this.#o.logger.info(
        { binding: `${state.ref.namespace}/${state.ref.name}`, err: message(err) },
        "cannot read the app cluster's kube-system namespace: its bindings are not checked for duplicates",
      );
      return undefined;
    }
  }

  /** Why this binding may not sync exportId now (another binding of the same cluster has it), or undefined. */
  #notOwner(state: BindingState, binding: KubeObject, exportId: string): string | undefined {
    const clusterUid = state.clusterUid;
    if (clusterUid === undefined) return undefined;
    const claimOf = (b: KubeObject): BindingClaim => {
      const key = `${b.metadata.namespace}/${b.metadata.name}`;
      const status = b.status as { appCluster?: { uid?: string } } | undefined;
      const known = this.#states.get(key);
      return {
        key,
        created: b.metadata.creationTimestamp ?? "",
        clusterUid: known?.clusterUid ?? status?.appCluster?.uid,
        // a binding this process has not looked at yet, or whose first look is under way
        identifying: known?.probe === undefined,
        exports: ((b.spec as BindingSpec | undefined)?.exports ?? []).map((e) => `${e.resource}.${e.group}`),
        deleting: b.metadata.deletionTimestamp !== undefined,
      };
    };
    const verdict = ownership(claimOf(binding), clusterUid, exportId, this.#bindings.list().map(claimOf));
    if (verdict.owner) return undefined;
    if ("by" in verdict) {
      return `this app cluster (kube-system uid ${clusterUid}) already binds ${exportId} through AppClusterBinding ${verdict.by}: one binding per app cluster and API`;
    }
    this.#queue.addAfter(`${state.ref.namespace}/${state.ref.name}`, 1000);
    return `waiting to learn which app cluster AppClusterBinding ${verdict.waitingFor} binds`;
  }

  #releaseTarget(binding: KubeObject, app: KubeClient | undefined) {
    const policy = (binding.spec as BindingSpec | undefined)?.deletionPolicy === "Delete" ? "Delete" : "Orphan";
    return {
      control: this.#o.control,
      app,
      bindingUid: binding.metadata.uid ?? "",
      policy,
      log: this.#o.logger.child({ binding: `${binding.metadata.namespace}/${binding.metadata.name}` }),
    } as const;
  }

  /**
   * A deleted binding: release every export (app objects lose our finalizer, provider copies go or
   * stay as spec.deletionPolicy says), then, with Delete, the provider namespaces. An app cluster
   * that does not answer holds the binding (the error retries with backoff); one whose kubeconfig
   * is gone cannot be released and is let go with a Warning.
   */
  async #releaseBinding(binding: KubeObject): Promise<void> {
    const spec = (binding.spec ?? {}) as BindingSpec;
    let app: KubeClient | undefined;
    const secretName = spec.kubeconfigSecretRef?.name;
    const secret = secretName
      ? await this.#o.control.get(refs.secrets, secretName, binding.metadata.namespace)
      : undefined;
    const encoded = (secret?.data as Record<string, string> | undefined)?.[
      spec.kubeconfigSecretRef?.key ?? "kubeconfig"
    ];
    try {
      if (
        typeof encoded === "string" &&
        secret !== undefined &&
        notMarkedFor(secret, binding.metadata.name) === undefined
      ) {
        app = KubeClient.fromUntrustedKubeconfig(Buffer.from(encoded, "base64").toString("utf8"), {
          timeoutMs: defaultAppTimeoutMs,
          ...this.#o.appClientOptions,
        });
      }
    } catch {
      app = undefined;
    }
    const ref = {
      uid: binding.metadata.uid ?? "",
      name: binding.metadata.name,
      namespace: binding.metadata.namespace ?? "",
    };
    if (app === undefined) {
      await this.#events.warn(
        bindingObject(ref),
        "AppObjectsNotReleased",
        "the binding's kubeconfig Secret is gone or unusable: the app cluster's objects keep the finalizer bind.klutch.dev/sync; remove it there by hand",
      );
    }
    const target = this.#releaseTarget(binding, app);
    try {
      for (const e of spec.exports ?? []) {
        const id = `${e.resource}.${e.group}`;
        const crd =
          (await this.#o.control.get(refs.crds, id)) ?? (await app?.get(refs.crds, id).catch(() => undefined));
        if (crd === undefined) continue;
        const crdSpec = crd.spec as { scope?: string; versions?: Array<{ name: string; storage?: boolean }> };
        const version = crdSpec.versions?.find((v) => v.storage)?.name ?? crdSpec.versions?.[0]?.name ?? "";
        const exportRef = {
          group: e.group ?? "",
          version,
          resource: e.resource ?? "",
          namespaced: crdSpec.scope === "Namespaced",
        };
        await releaseExport(target, exportRef, id);
      }
      await releaseNamespaces(target);
      // the kubeconfig goes with the binding when it was made for this binding alone
      const marks = secret?.metadata.annotations?.[kubeconfigForAnnotation];
      if (
        secret !== undefined &&
        marks === binding.metadata.name &&
        notMarkedFor(secret, binding.metadata.name) === undefined
      ) {
        await this.#o.control
          .delete(refs.secrets, secret.metadata.name, secret.metadata.namespace, { uid: secret.metadata.uid })
          .catch((err: unknown) =>
            this.#o.logger.warn(
              { binding: `${binding.metadata.namespace}/${binding.metadata.name}`, err: message(err) },
              "could not delete the binding's kubeconfig Secret (grant the sync delete on secrets there)",
            ),
          );
      }
    } finally {
      app?.close();
    }
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

  async #stopBinding(state: BindingState): Promise<void> {
    await Promise.all([...state.exports.values()].map((e) => e.sync.stop()));
    state.exports.clear();
    await state.appInformers?.stopAll();
    this.#retiredAppRequests += state.app?.requests ?? 0;
    state.app?.close();
    state.app = undefined;
    state.appInformers = undefined;
    state.probe = undefined;
    state.kubeconfigVersion = undefined;
  }

  async #reconcile(key: string): Promise<void> {
    const [namespace = "", name = ""] = key.split("/");
    const binding = this.#bindings.get(name, namespace);
    const existing = this.#states.get(key);
    if (binding === undefined || binding.metadata.deletionTimestamp !== undefined) {
      if (existing) {
        await this.#stopBinding(existing);
        this.#states.delete(key);
        this.#o.logger.info({ binding: key }, "binding deleted; stopped syncing it");
      }
      // our finalizer holds the binding until everything of it in both clusters is released
      if (binding?.metadata.finalizers?.includes(finalizer)) {
        await this.#releaseBinding(binding);
        const finalizers = binding.metadata.finalizers.filter((f) => f !== finalizer);
        await this.#o.control.update(refs.bindings, { ...binding, metadata: { ...binding.metadata, finalizers } });
      }
      return;
    }
    if (!binding.metadata.finalizers?.includes(finalizer)) {
      await this.#o.control.update(refs.bindings, {
        ...binding,
        metadata: { ...binding.metadata, finalizers: [...(binding.metadata.finalizers ?? []), finalizer] },
      });
      return; // the update event brings the binding back
    }
    const uid = binding.metadata.uid ?? "";
    let state = existing;
    if (state === undefined || state.ref.uid !== uid) {
      if (state) await this.#stopBinding(state);
      state = { ref: { uid, name, namespace }, exports: new Map(), namespaces: new Set() };
      this.#states.set(key, state);
    }
    const spec = (binding.spec ?? {}) as BindingSpec;
    const conditions: Condition[] = [];
    const exportStatuses: ExportStatus[] = [];

    const failing = [...state.exports.values()].flatMap((e) => e.sync.status().appError ?? []);
    const probe = state.probe;
    // the informers disagree with the last look at the cluster: look again now
    if (probe !== undefined && (probe.condition.status === "True") === failing.length > 0 && state.exports.size > 0) {
      probe.next = 0;
    }
    let connected = await this.#connect(state, binding, spec);
    if (connected.status === "True" && failing.length > 0) {
      // /version answers, but lists or watches of the bound objects do not: nothing is synced
      connected = { type: "Connected", status: "False", reason: "ListWatchFailing", message: failing.join("; ") };
    }
    if (state.probe?.condition.status === "True" && state.app && state.appInformers) {
      const wanted = new Set<string>();
      for (const e of spec.exports ?? []) {
        const id = `${e.resource}.${e.group}`;
        wanted.add(id);
        exportStatuses.push(await this.#syncExport(state, binding, e.group ?? "", e.resource ?? ""));
      }
      for (const [id, running] of state.exports) {
        if (!wanted.has(id)) {
          // an export left the spec: let go of it as of the whole binding
          await running.sync.stop();
          state.exports.delete(id);
          await releaseExport(this.#releaseTarget(binding, state.app), running.sync.ctx.ref, id);
        }
      }
    } else {
      for (const e of spec.exports ?? []) {
        const running = state.exports.get(`${e.resource}.${e.group}`)?.sync.status();
        exportStatuses.push({
          group: e.group ?? "",
          resource: e.resource ?? "",
          ...(running ? { objects: running.objects } : {}),
          ...(running?.lastSync ? { lastSync: kubeTime(running.lastSync) } : {}),
          message: "app cluster unreachable; syncing resumes when it returns",
        });
      }
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
    conditions.push(connected);
    const ready = connected.status === "True" && exportStatuses.every((e) => e.message === undefined);
    conditions.push(
      ready
        ? {
            type: "Ready",
            status: "True",
            reason: "Synced",
            message: `${exportStatuses.length} export(s) bound and in sync`,
          }
        : {
            type: "Ready",
            status: "False",
            reason: connected.status === "True" ? "ExportsNotReady" : "Disconnected",
            message:
              exportStatuses.flatMap((e) => (e.message ? [`${e.resource}.${e.group}: ${e.message}`] : [])).join("; ") ||
              connected.message,
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
            message: `not synced until accepted (spec.exports[].permissionClaims, or klutch-bind bind again): ${pendingClaims.join("; ")}`,
          },
    );
    if (connected.status !== "True")
      void this.#events.warn(bindingObject(state.ref), connected.reason, connected.message);
    for (const e of exportStatuses) {
      if (e.message && !transient.has(e.message) && connected.status === "True")
        void this.#events.warn(bindingObject(state.ref), "ExportNotReady", `${e.resource}.${e.group}: ${e.message}`);
    }
    await this.#writeStatus(binding, conditions, exportStatuses, state.clusterUid);
  }

  async #connect(state: BindingState, binding: KubeObject, spec: BindingSpec): Promise<Condition> {
    const secretName = spec.kubeconfigSecretRef?.name;
    const secretKey = spec.kubeconfigSecretRef?.key ?? "kubeconfig";
    const fail = (reason: string, text: string): Condition => ({
      type: "Connected",
      status: "False",
      reason,
      message: text,
    });
    // Without usable credentials the binding stops syncing (nothing written, nothing deleted)
    // until they are back: the old ones may have been withdrawn on purpose.
    const stopped = async (reason: string, text: string) => {
      await this.#stopBinding(state);
      return fail(reason, text);
    };
    if (!secretName) return stopped("InvalidSpec", "spec.kubeconfigSecretRef.name is required");
    const secret = await this.#o.control.get(refs.secrets, secretName, binding.metadata.namespace);
    const encoded = (secret?.data as Record<string, string> | undefined)?.[secretKey];
    if (secret === undefined || typeof encoded !== "string") {
      return stopped(
        "KubeconfigMissing",
        `secret ${binding.metadata.namespace}/${secretName} ${secret === undefined ? "does not exist" : `has no key "${secretKey}"`}`,
      );
    }
    const unmarked = notMarkedFor(secret, binding.metadata.name);
    if (unmarked !== undefined) return stopped("KubeconfigNotMarked", unmarked);
    if (state.kubeconfigVersion !== secret.metadata.resourceVersion) {
      await this.#stopBinding(state);
      try {
        state.app = KubeClient.fromUntrustedKubeconfig(Buffer.from(encoded, "base64").toString("utf8"), {
          timeoutMs: defaultAppTimeoutMs,
          ...this.#o.appClientOptions,
        });
      } catch (err) {
        return stopped(
          "InvalidKubeconfig",
          `secret ${binding.metadata.namespace}/${secretName} key "${secretKey}": ${message(err)}`,
        );
      }
      state.appInformers = new InformerRegistry(
        state.app,
        this.#o.logger.child({ binding: `${state.ref.namespace}/${state.ref.name}`, cluster: "app" }),
      );
      state.kubeconfigVersion = secret.metadata.resourceVersion;
    }
    return this.#probe(state);
  }

  /**
   * Whether the app cluster answers, asked at most once a minute while it does, and with growing
   * pauses (1 s .. 30 s) while it does not, so an unreachable cluster costs little. The informers
   * of its objects ask it all the time: when they disagree with the last look, the next reconcile
   * looks again at once.
   */
  async #probe(state: BindingState): Promise<Condition> {
    const app = state.app;
    if (app === undefined) return { type: "Connected", status: "False", reason: "NotConnected", message: "" };
    const last = state.probe;
    if (last !== undefined && Date.now() < last.next) return last.condition;
    try {
      const version = await app.serverVersion();
      state.clusterUid ??= await this.#clusterUid(state, app);
      state.probe = {
        condition: {
          type: "Connected",
          status: "True",
          reason: "Reachable",
          message: `app cluster ${app.server} (${version.gitVersion})`,
        },
        next: Date.now() + probeOkMs,
        failures: 0,
      };
    } catch (err) {
      const failures = (last?.condition.status === "False" ? last.failures : 0) + 1;
      const pause = Math.min(probeMaxMs, probeMinMs * 2 ** (failures - 1));
      state.probe = {
        condition: {
          type: "Connected",
          status: "False",
          // answering, but not as a Kubernetes API server does (a proxy's sign-in page, say)
          reason: err instanceof KubeDecodeError ? "InvalidAnswers" : "Unreachable",
          message: `app cluster ${app.server}: ${message(err)}`,
        },
        next: Date.now() + pause,
        failures,
      };
      if (state.app === app) this.#queue.addAfter(`${state.ref.namespace}/${state.ref.name}`, pause);
    }
    return state.probe.condition;
  }

  async #syncExport(state: BindingState, binding: KubeObject, group: string, resource: string): Promise<ExportStatus> {
    const id = `${resource}.${group}`;
    const base: ExportStatus = { group, resource };
    const refused = this.#notOwner(state, binding, id);
    if (refused !== undefined) {
      const running = state.exports.get(id);
      if (running !== undefined) {
        await running.sync.stop();
        state.exports.delete(id);
      }
      return { ...base, message: refused };
    }
    const template = this.#templates
      .flatMap((i) => i.list())
      .find((t) => {
        const selector = (t.spec as { APIServiceSelector?: { group?: string; resource?: string } } | undefined)
          ?.APIServiceSelector;
        return selector?.group === group && selector.resource === resource;
      });
    if (template === undefined) return { ...base, message: `no APIServiceExportTemplate exports ${id}` };
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
    const consented = await this.#consent(binding, group, resource, claims);
    if (typeof consented === "string") return { ...base, message: consented };
    claims = consented.accepted;
    const pending = consented.pending.map((c) => `${c.resource}.${c.group || "core"} (owner ${c.selector.owner})`);
    if (pending.length > 0) base.claimsPending = pending.join(", ");
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
    const app = state.app as KubeClient;
    const running = state.exports.get(id);
    if (running?.crdVersion !== providerCrd.metadata.resourceVersion) {
      let established: boolean;
      try {
        await app.apply(refs.crds, consumerCrd(providerCrd), fieldManager, true);
        for (const role of aggregatedRoles(group, resource))
          await app.apply(refs.clusterRoles, role, fieldManager, true);
        established = isEstablished(await app.get(refs.crds, id));
      } catch (err) {
        // the app cluster's trouble: its binding says so, and looks again with the probe's backoff
        this.#queue.addAfter(`${state.ref.namespace}/${state.ref.name}`, 5000);
        return { ...base, version, appError: `installing the API in the app cluster failed: ${message(err)}` };
      }
      if (!established) {
        this.#queue.addAfter(`${state.ref.namespace}/${state.ref.name}`, 500);
        return { ...base, version, template: template.metadata.name, message: installing };
      }
    }
    const ref: ResourceRef = { group, version, resource, namespaced: crdSpec.scope === "Namespaced" };
    const claimsRole = template.metadata.annotations?.[claimsRoleAnnotation];
    const signature = JSON.stringify({ ref, claims, claimsRole });
    if (running === undefined || running.signature !== signature) {
      await running?.sync.stop();
      const sync = new ExportSync(
        this.#exportContext(state, ref, claims, claimsRole),
        { control: this.#o.controlInformers, app: state.appInformers as InformerRegistry },
        this.#o.workers,
      );
      sync.start();
      state.exports.set(id, { sync, signature, crdVersion: providerCrd.metadata.resourceVersion ?? "" });
      this.#o.logger.info(
        { binding: `${state.ref.namespace}/${state.ref.name}`, export: id, version, claims: claims.length },
        "syncing export",
      );
    } else {
      running.crdVersion = providerCrd.metadata.resourceVersion ?? "";
    }
    const current = state.exports.get(id)?.sync.status();
    // nothing else starts a reconcile when the first lists complete: look again shortly
    if (current?.synced === false) this.#queue.addAfter(`${state.ref.namespace}/${state.ref.name}`, 500);
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
      binding: `${state.ref.namespace}/${state.ref.name}`,
      export: `${ref.resource}.${ref.group}`,
    });
    const id = `${ref.resource}.${ref.group}`;
    return {
      binding: state.ref,
      ref,
      claims,
      control: this.#o.control,
      app: state.app as KubeClient,
      log,
      metrics: this.#o.metrics,
      ensureProviderNamespace: async (appNs) => {
        const ns = await this.#ensureProviderNamespace(state, appNs);
        if (claimsRole !== undefined && claims.length > 0) await this.#ensureClaimsAccess(state, ns, id, claimsRole);
        return ns;
      },
      reportConflict: (text) => void this.#events.warn(bindingObject(state.ref), "NameConflict", text),
    };
  }

  async #ensureProviderNamespace(state: BindingState, appNs: string): Promise<string> {
    const name = providerNamespace(state.ref.uid, appNs);
    if (state.namespaces.has(name)) return name;
    const owned = (ns: KubeObject | undefined) => ns?.metadata.labels?.[labels.binding] === state.ref.uid;
    let ns = await this.#o.control.get(refs.namespaces, name);
    if (ns === undefined) {
      try {
        ns = await this.#o.control.create(refs.namespaces, {
          apiVersion: "v1",
          kind: "Namespace",
          metadata: {
            name,
            labels: {
              [labels.binding]: state.ref.uid,
              [labels.consumerNamespace]: appNs,
              [labels.managedBy]: managedByValue,
            },
            annotations: { [annotations.bindingName]: `${state.ref.namespace}/${state.ref.name}` },
          },
        });
      } catch (err) {
        if (!(err instanceof KubeApiError) || err.code !== 409) throw err;
        ns = await this.#o.control.get(refs.namespaces, name);
      }
    }
    if (!owned(ns))
      throw new Error(`namespace ${name} exists on the control plane and does not belong to this binding`);
    state.namespaces.add(name);
    return name;
  }

  /**
   * Binds the export's claims role in one provider namespace to the sync's own identity: the only
   * place it may read and write claimed resources on the control plane.
   */
  async #ensureClaimsAccess(state: BindingState, namespace: string, exportId: string, role: string): Promise<void> {
    const name = claimsAccessName(exportId);
    const cacheKey = `${namespace}/${name}`;
    if (state.namespaces.has(cacheKey)) return;
    await this.#o.control.apply(
      refs.roleBindings,
      {
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "RoleBinding",
        metadata: { name, namespace, labels: { [labels.binding]: state.ref.uid, [labels.managedBy]: managedByValue } },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: role },
        subjects: [await this.#identity()],
      },
      fieldManager,
      true,
    );
    state.namespaces.add(cacheKey);
  }

  #self: Promise<Subject> | undefined;

  /** Who the sync is on the control plane, as an RBAC subject. */
  #identity(): Promise<Subject> {
    this.#self ??= this.#o.control
      .request<{ status?: { userInfo?: { username?: string } } }>(
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        {
          body: { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" },
        },
      )
      .then((review): Subject => {
        const username = review.status?.userInfo?.username ?? "";
        const sa = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(username);
        return sa
          ? { kind: "ServiceAccount", name: sa[2] ?? "", namespace: sa[1] ?? "" }
          : { kind: "User", apiGroup: "rbac.authorization.k8s.io", name: username };
      });
    return this.#self;
  }

  async #writeStatus(
    binding: KubeObject,
    conditions: Condition[],
    exports: ExportStatus[],
    clusterUid: string | undefined,
  ): Promise<void> {
    const current = (binding.status ?? {}) as {
      conditions?: Condition[];
      exports?: ExportStatus[];
      appCluster?: { uid?: string };
    };
    const now = kubeTime(new Date());
    const stamped = conditions.map((c) => {
      const before = current.conditions?.find((p) => p.type === c.type);
      return {
        ...c,
        lastTransitionTime: before && before.status === c.status ? (before.lastTransitionTime ?? now) : now,
      };
    });
    const appCluster = clusterUid ?? current.appCluster?.uid;
    const next = { conditions: stamped, exports, ...(appCluster ? { appCluster: { uid: appCluster } } : {}) };
    const before = {
      conditions: current.conditions,
      exports: current.exports,
      ...(current.appCluster ? { appCluster: current.appCluster } : {}),
    };
    if (isDeepStrictEqual(next, before)) return;
    await this.#o.control.updateStatus(refs.bindings, { ...binding, status: next });
  }
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
