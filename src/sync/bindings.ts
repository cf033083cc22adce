// AppClusterBindings: connect to each app cluster, install the bound APIs there, run one ExportSync
// per bound export, and report Connected/Ready and per-export figures on the binding's status.
import { isDeepStrictEqual } from "node:util";
import type { Logger } from "pino";
import { parseClaims } from "../export/claims.ts";
import { InputError } from "../export/errors.ts";
import { claimsRoleAnnotation } from "../export/plan.ts";
import type { PermissionClaim } from "../export/types.ts";
import { type ClientOptions, KubeApiError, KubeClient, type KubeObject, type ResourceRef } from "../kube/client.ts";
import { isEstablished } from "../kube/conditions.ts";
import type { Informer } from "../kube/informer.ts";
import { kubeTime } from "../kube/time.ts";
import { aggregatedRoles, consumerCrd } from "./consumer-crd.ts";
import { bindingObject, EventRecorder } from "./events.ts";
import type { BindingRef, ExportContext } from "./export-context.ts";
import { ExportSync } from "./export-sync.ts";
import type { HealthReport } from "./health.ts";
import { InformerRegistry } from "./informers.ts";
import type { SyncMetrics } from "./metrics.ts";
import { annotations, fieldManager, finalizer, labels, managedByValue, providerNamespace } from "./naming.ts";
import { WorkQueue } from "./queue.ts";
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
  exports?: Array<{ group?: string; resource?: string }>;
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
};

/** a reachable app cluster is asked again after this long; an unreachable one backs off up to probeMaxMs */
const probeOkMs = 60_000;
const probeMinMs = 1_000;
const probeMaxMs = 60_000;
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
  #templates!: Informer;
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
    const templates = this.#o.controlInformers.acquire(refs.templates, {}, { add: all, update: all, delete: all });
    this.#bindings = bindings.informer;
    this.#templates = templates.informer;
    this.#release.push(bindings.release, templates.release);
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
      ...(this.#templates.hasSynced() ? [] : ["templates"]),
    ];
    if (waiting.length > 0) {
      return { live: true, ready: false, detail: `waiting for the first list of ${waiting.join(" and ")}` };
    }
    return { live: true, ready: true, detail: "ok" };
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
      // our finalizer tells whoever deletes the binding (klutch-bind unbind) when we have let go
      if (binding?.metadata.finalizers?.includes(finalizer)) {
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

    let connected = await this.#connect(state, binding, spec);
    const failing = [...state.exports.values()].flatMap((e) => e.sync.status().appError ?? []);
    if (connected.status === "True" && failing.length > 0) {
      // /version answers, but lists or watches of the bound objects do not: nothing is synced
      connected = { type: "Connected", status: "False", reason: "ListWatchFailing", message: failing.join("; ") };
    }
    conditions.push(connected);
    if (state.probe?.condition.status === "True" && state.app && state.appInformers) {
      const wanted = new Set<string>();
      for (const e of spec.exports ?? []) {
        const id = `${e.resource}.${e.group}`;
        wanted.add(id);
        exportStatuses.push(await this.#syncExport(state, e.group ?? "", e.resource ?? ""));
      }
      for (const [id, running] of state.exports) {
        if (!wanted.has(id)) {
          await running.sync.stop();
          state.exports.delete(id);
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
    if (connected.status !== "True")
      void this.#events.warn(bindingObject(state.ref), connected.reason, connected.message);
    for (const e of exportStatuses) {
      if (e.message && !transient.has(e.message) && connected.status === "True")
        void this.#events.warn(bindingObject(state.ref), "ExportNotReady", `${e.resource}.${e.group}: ${e.message}`);
    }
    await this.#writeStatus(binding, conditions, exportStatuses);
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
   * pauses (1 s .. 60 s) while it does not, so an unreachable cluster costs little.
   */
  async #probe(state: BindingState): Promise<Condition> {
    const app = state.app;
    if (app === undefined) return { type: "Connected", status: "False", reason: "NotConnected", message: "" };
    const last = state.probe;
    if (last !== undefined && Date.now() < last.next) return last.condition;
    try {
      const version = await app.serverVersion();
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
          reason: "Unreachable",
          message: `app cluster ${app.server}: ${message(err)}`,
        },
        next: Date.now() + pause,
        failures,
      };
      if (state.app === app) this.#queue.addAfter(`${state.ref.namespace}/${state.ref.name}`, pause);
    }
    return state.probe.condition;
  }

  async #syncExport(state: BindingState, group: string, resource: string): Promise<ExportStatus> {
    const id = `${resource}.${group}`;
    const base: ExportStatus = { group, resource };
    const template = this.#templates.list().find((t) => {
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
      await app.apply(refs.crds, consumerCrd(providerCrd), fieldManager, true);
      for (const role of aggregatedRoles(group, resource)) await app.apply(refs.clusterRoles, role, fieldManager, true);
      if (!isEstablished(await app.get(refs.crds, id))) {
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
    const name = `klutch-bind:claims:${exportId}`.slice(0, 253);
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

  async #writeStatus(binding: KubeObject, conditions: Condition[], exports: ExportStatus[]): Promise<void> {
    const current = (binding.status ?? {}) as { conditions?: Condition[]; exports?: ExportStatus[] };
    const now = kubeTime(new Date());
    const stamped = conditions.map((c) => {
      const before = current.conditions?.find((p) => p.type === c.type);
      return {
        ...c,
        lastTransitionTime: before && before.status === c.status ? (before.lastTransitionTime ?? now) : now,
      };
    });
    const next = { conditions: stamped, exports };
    if (isDeepStrictEqual(next, { conditions: current.conditions, exports: current.exports })) return;
    await this.#o.control.updateStatus(refs.bindings, { ...binding, status: next });
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
