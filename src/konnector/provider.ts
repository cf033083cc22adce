// One connection to a control plane: per distinct kubeconfig the konnector holds, one client (its
// binding account's), the ClusterBinding of its cluster namespace (the binding's key, the heartbeat
// written into its status), the APIServiceExports there, and one mirroring (../sync/mirror) per
// export an APIServiceBinding of the app cluster binds, with the app cluster's CRD installed from
// the export's schema first. Stopped and made anew when the kubeconfig changes (controller.ts).
import type { Logger } from "pino";
import type { DeletionPolicy } from "../api/binding-spec.ts";
import {
  clusterBindingName,
  decodeExportApi,
  decodeExportClaims,
  pullAnnotations,
  pullApiVersion,
  pullRefs,
} from "../api/pull-binding.ts";
import { refs } from "../api/resources.ts";
import type { AppNamespaceAccess } from "../app-access/namespace-access.ts";
import type { KubeClient, KubeObject, ResourceRef } from "../kube/client.ts";
import { type Condition, isEstablished } from "../kube/conditions.ts";
import type { Informer } from "../kube/informer.ts";
import { installApi } from "../sync/binding/consumer-crd.ts";
import { InformerRegistry } from "../sync/informers.ts";
import type { SyncMetrics } from "../sync/metrics.ts";
import type { ExportContext } from "../sync/mirror/export-context.ts";
import { ExportSync } from "../sync/mirror/export-sync.ts";
import { deleteProviderCopies, releaseAppObjects } from "../sync/mirror/release.ts";
import { WorkQueue } from "../sync/queue.ts";
import { stageLog } from "../sync/stages.ts";
import { acceptedClaims, type BindingSpec } from "./binding-spec.ts";
import { ServiceNamespaces } from "./control-scope.ts";
import { Heartbeat } from "./heartbeat.ts";
import { TokenRenewal, type TokenRenewalOptions } from "./token-renewal.ts";

export type ProviderOptions = {
  /** the binding account's client for the control plane (writes fenced by the konnector's Lease) */
  control: KubeClient;
  /** the cluster namespace: the kubeconfig context's */
  clusterNamespace: string;
  app: KubeClient;
  appRegistry: InformerRegistry;
  logger: Logger;
  metrics: SyncMetrics;
  workers: number;
  heartbeatSeconds: number;
  version: string;
  /** the kubeconfig, its token renewed at a share of its lifetime and written back */
  renewal?: Pick<TokenRenewalOptions, "kubeconfig" | "fraction" | "write">;
  /** where the konnector holds only its account's rights: how it reaches claimed resources of an app namespace */
  appNamespaceAccess?: AppNamespaceAccess;
  /** a deleted APIServiceBinding's export is released: its finalizer may go */
  released: (name: string) => Promise<void>;
};

/** how long a new API may take to be served in the app cluster before its mirroring starts anyway */
const establishWaitMs = 15_000;

type Running = { key: string; sync: ExportSync; cancel: AbortController };

export class ProviderConnection {
  readonly #o: ProviderOptions;
  readonly #registry: InformerRegistry;
  readonly #queue: WorkQueue;
  readonly #binding: { informer: Informer; release: () => Promise<void> };
  readonly #exports: { informer: Informer; release: () => Promise<void> };
  readonly #heartbeat: Heartbeat;
  readonly #renewal: TokenRenewal | undefined;
  #namespaces: ServiceNamespaces | undefined;
  #bindings = new Map<string, BindingSpec>();
  /** deleted APIServiceBindings whose export is to be released, with their policy */
  #releasing = new Map<string, DeletionPolicy>();
  /**
   * Releases done (until the binding leaves the list: its finalizer gone) and releases failed (when
   * to try again): every poke (the 5 s resync, any binding or Secret event) reconciles, and a
   * release lists the API across the app cluster and every granted provider namespace.
   */
  readonly #released = new Set<string>();
  readonly #releaseRetry = new Map<string, { at: number; delayMs: number }>();
  readonly #running = new Map<string, Running>();
  /** why a binding is not synced, by APIServiceBinding name */
  readonly #problems = new Map<string, Condition>();
  #stopped = false;

  constructor(options: ProviderOptions) {
    this.#o = options;
    const ns = options.clusterNamespace;
    this.#registry = new InformerRegistry(options.control, options.logger);
    this.#queue = new WorkQueue({
      workers: 1,
      process: () => this.#reconcile(),
      onError: (_key, err, retries) => options.logger.warn({ retries, err: String(err) }, "binding reconcile failed"),
    });
    const again = { add: () => this.poke(), update: () => this.poke(), delete: () => this.poke() };
    this.#binding = this.#registry.acquire(
      pullRefs.clusterBindings,
      { namespace: ns, fieldSelector: `metadata.name=${clusterBindingName}` },
      again,
    );
    this.#exports = this.#registry.acquire(pullRefs.exports, { namespace: ns }, again);
    this.#heartbeat = new Heartbeat(options.control, ns, options.heartbeatSeconds, options.version, options.logger);
    this.#renewal =
      options.renewal && new TokenRenewal({ ...options.renewal, control: options.control, logger: options.logger });
  }

  get clusterNamespace(): string {
    return this.#o.clusterNamespace;
  }

  start(): void {
    this.#queue.start();
    this.#heartbeat.start();
    this.#renewal?.start();
    this.poke();
  }

  poke(): void {
    if (!this.#stopped) this.#queue.add("reconcile");
  }

  /**
   * The APIServiceBindings this connection serves, by name (each binds the export of its name), and
   * the deleted ones to release (their mirroring stopped first).
   */
  setBindings(bindings: Map<string, BindingSpec>, releasing = new Map<string, DeletionPolicy>()): void {
    this.#bindings = bindings;
    this.#releasing = releasing;
    for (const name of [...this.#released]) if (!releasing.has(name)) this.#released.delete(name);
    for (const name of [...this.#releaseRetry.keys()]) if (!releasing.has(name)) this.#releaseRetry.delete(name);
    this.poke();
  }

  /** A binding's Ready condition as this connection sees it. */
  condition(name: string): Condition {
    const problem = this.#problems.get(name);
    if (problem !== undefined) return problem;
    const running = this.#running.get(name);
    if (running === undefined) return { type: "Ready", status: "False", reason: "Pending", message: "starting" };
    const status = running.sync.status();
    if (!status.synced) {
      return { type: "Ready", status: "False", reason: "Listing", message: "listing the objects on both sides" };
    }
    if (status.conflicts.length > 0) {
      return { type: "Ready", status: "False", reason: "Conflict", message: status.conflicts.join("; ") };
    }
    return { type: "Ready", status: "True", reason: "Synced", message: `${status.objects} objects synced` };
  }

  get exportSyncs(): ExportSync[] {
    return [...this.#running.values()].map((r) => r.sync);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#heartbeat.stop();
    this.#renewal?.stop();
    await this.#queue.stop();
    await Promise.all([...this.#running.values()].map((r) => this.#stopSync(r)));
    this.#running.clear();
    await this.#namespaces?.release();
    await Promise.all([this.#binding.release(), this.#exports.release()]);
    await this.#registry.stopAll();
  }

  async #stopSync(running: Running): Promise<void> {
    running.cancel.abort();
    await running.sync.stop();
  }

  async #reconcile(): Promise<void> {
    if (this.#stopped) return;
    const ns = this.#o.clusterNamespace;
    if (!this.#binding.informer.hasSynced() || !this.#exports.informer.hasSynced()) {
      this.#queue.addAfter("reconcile", 500);
      return;
    }
    const cluster = this.#binding.informer.get(clusterBindingName, ns);
    const bindingKey = cluster?.metadata.annotations?.[pullAnnotations.bindingUid] || cluster?.metadata.uid;
    this.#problems.clear();
    if (cluster === undefined || bindingKey === undefined) {
      for (const name of this.#bindings.keys()) {
        this.#problems.set(name, {
          type: "Ready",
          status: "False",
          reason: "ClusterBindingMissing",
          message: `no ClusterBinding ${ns}/${clusterBindingName} on the control plane`,
        });
      }
      await this.#stopAllBut(new Set());
      return;
    }
    if (this.#namespaces !== undefined && this.#namespaces.bindingKey !== bindingKey) {
      // an administrator set or changed bind.klutch.dev/binding-uid: the grants are named anew
      await this.#stopAllBut(new Set());
      await this.#namespaces.release();
      this.#namespaces = undefined;
      this.#o.logger.info({ bindingKey }, "the binding key changed: provider namespaces looked up anew");
    }
    if (this.#namespaces === undefined) {
      this.#namespaces = new ServiceNamespaces(this.#registry, this.#o.control, ns, bindingKey);
    }
    const namespaces = this.#namespaces;
    const wanted = new Set<string>();
    for (const [name, spec] of this.#bindings) {
      const exported = this.#exports.informer.get(name, ns);
      if (exported === undefined) {
        this.#problems.set(name, {
          type: "Ready",
          status: "False",
          reason: "ExportMissing",
          message: `no APIServiceExport ${ns}/${name} on the control plane`,
        });
        continue;
      }
      let api: ReturnType<typeof decodeExportApi>;
      let claims: ReturnType<typeof decodeExportClaims>;
      let version: string;
      try {
        api = decodeExportApi(exported);
        claims = acceptedClaims(decodeExportClaims(exported), spec);
        version = storageVersion(exported);
      } catch (err) {
        const message = `APIServiceExport ${ns}/${name}: ${err instanceof Error ? err.message : String(err)}`;
        this.#problems.set(name, { type: "Ready", status: "False", reason: "ExportInvalid", message });
        continue;
      }
      if (!api.namespaced) {
        const message = `APIServiceExport ${ns}/${name} is cluster-scoped: the konnector binds namespaced APIs only (yet)`;
        this.#problems.set(name, { type: "Ready", status: "False", reason: "ExportInvalid", message });
        continue;
      }
      wanted.add(name);
      // a changed schema or accepted claims start the export's mirroring afresh
      const key = JSON.stringify([bindingKey, exported.spec, claims]);
      const running = this.#running.get(name);
      if (running?.key === key) continue;
      if (running !== undefined) {
        this.#running.delete(name);
        await this.#stopSync(running);
      }
      await this.#installed(crdOf(exported));
      const ref: ResourceRef = { group: api.group, version, resource: api.resource, namespaced: true };
      const cancel = new AbortController();
      const ctx = this.#context(ref, claims, bindingKey, namespaces, cancel.signal);
      const sync = new ExportSync(ctx, { control: this.#registry, app: this.#o.appRegistry }, this.#o.workers);
      sync.start();
      this.#running.set(name, { key, sync, cancel });
      this.#o.logger.info({ export: name, claims: claims.length }, "mirroring an export");
    }
    await this.#stopAllBut(wanted);
    for (const [name, policy] of [...this.#releasing]) {
      if (this.#released.has(name) || (this.#releaseRetry.get(name)?.at ?? 0) > Date.now()) continue;
      try {
        await this.#release(name, policy, bindingKey, namespaces);
        await this.#o.released(name);
        this.#released.add(name);
        this.#releaseRetry.delete(name);
      } catch (err) {
        const delayMs = Math.min(2 * (this.#releaseRetry.get(name)?.delayMs ?? 1000), 60_000);
        this.#releaseRetry.set(name, { at: Date.now() + delayMs, delayMs });
        this.#queue.addAfter("reconcile", delayMs);
        this.#o.logger.warn(
          { export: name, err: err instanceof Error ? err.message : String(err), retryInMs: delayMs },
          "could not release a deleted binding; trying again",
        );
      }
    }
  }

  /**
   * Releases the export of a deleted APIServiceBinding, its mirroring stopped: the app objects lose
   * our finalizer and label, the CRD its mark; with Delete, the provider copies carrying the
   * binding's label go, looked for in each granted provider namespace (nothing cluster-wide).
   */
  async #release(name: string, policy: DeletionPolicy, bindingKey: string, namespaces: ServiceNamespaces) {
    const ref = await this.#exportRef(name);
    if (ref === undefined) {
      this.#o.logger.info({ export: name }, "released a binding: its API is neither exported nor installed");
      return;
    }
    const appObjects = await releaseAppObjects(this.#o.app, ref, name, bindingKey);
    const providerCopies =
      policy === "Delete"
        ? await deleteProviderCopies(this.#o.control, ref, bindingKey, await namespaces.grantedNamespaces())
        : 0;
    this.#o.logger.info({ export: name, policy, appObjects, providerCopies }, "released export");
  }

  /** The exported resource of name: from its APIServiceExport, else from the app cluster's CRD. */
  async #exportRef(name: string): Promise<ResourceRef | undefined> {
    const exported = this.#exports.informer.get(name, this.#o.clusterNamespace);
    if (exported !== undefined) {
      try {
        const api = decodeExportApi(exported);
        return {
          group: api.group,
          version: storageVersion(exported),
          resource: api.resource,
          namespaced: api.namespaced,
        };
      } catch {
        // an export that cannot be read: the app cluster's CRD, installed from it, says the same
      }
    }
    const crd = await this.#o.app.get(refs.crds, name);
    const spec = crd?.spec as
      | {
          group?: string;
          scope?: string;
          names?: { plural?: string };
          versions?: Array<{ name: string; storage?: boolean }>;
        }
      | undefined;
    const version = spec?.versions?.find((v) => v.storage)?.name;
    if (spec?.group === undefined || spec.names?.plural === undefined || version === undefined) return undefined;
    return { group: spec.group, version, resource: spec.names.plural, namespaced: spec.scope !== "Cluster" };
  }

  /**
   * Installs the API in the app cluster and waits (bounded) until it is served: a watch of an API
   * not served yet fails and backs off, delaying the first objects by seconds.
   */
  async #installed(crd: KubeObject): Promise<void> {
    let installed = await installApi(this.#o.app, crd);
    const until = Date.now() + establishWaitMs;
    while (!isEstablished(installed) && Date.now() < until && !this.#stopped) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      installed = await this.#o.app.get(refs.crds, crd.metadata.name);
    }
  }

  async #stopAllBut(wanted: Set<string>): Promise<void> {
    for (const [name, running] of [...this.#running]) {
      if (wanted.has(name)) continue;
      this.#running.delete(name);
      await this.#stopSync(running);
      this.#o.logger.info({ export: name }, "stopped mirroring an export");
    }
  }

  #context(
    ref: ResourceRef,
    claims: ExportContext["claims"],
    bindingKey: string,
    namespaces: ServiceNamespaces,
    signal: AbortSignal,
  ): ExportContext {
    const binding = {
      uid: bindingKey,
      name: clusterBindingName,
      namespace: this.#o.clusterNamespace,
      apiVersion: pullApiVersion,
    };
    const log = this.#o.logger.child({
      binding: `${binding.namespace}/${binding.name}`,
      export: `${ref.resource}.${ref.group}`,
    });
    return {
      binding,
      ref,
      claims,
      control: this.#o.control,
      app: this.#o.app,
      log,
      metrics: this.#o.metrics,
      ensureProviderNamespace: (appNs) => namespaces.ensure(appNs, signal),
      ...(this.#o.appNamespaceAccess
        ? {
            ensureAppNamespaceAccess: (appNs: string) => this.#o.appNamespaceAccess?.ensure(appNs) ?? Promise.resolve(),
          }
        : {}),
      // the binding account may write no Events: the conflict is in the log and the binding's status
      reportConflict: (text) => log.warn({ conflict: text }, "name conflict"),
      controlScope: namespaces.scope(),
      stage: stageLog(log, performance.now()),
    };
  }
}

type ExportVersion = { name?: unknown; storage?: unknown; served?: unknown };

/** The version the export stores (the one the app cluster's CRD stores too). */
function storageVersion(exported: KubeObject): string {
  const versions = ((exported.spec as { versions?: unknown } | undefined)?.versions ?? []) as ExportVersion[];
  if (!Array.isArray(versions)) throw new Error("spec.versions: must be a list");
  const chosen = versions.find((v) => v.storage === true) ?? versions[0];
  if (typeof chosen?.name !== "string" || chosen.name === "") throw new Error("spec.versions: names no version");
  return chosen.name;
}

/** The export as the CRD it was made from (installApi takes a CRD's group, names, scope and versions). */
function crdOf(exported: KubeObject): KubeObject {
  const spec = exported.spec as Record<string, unknown>;
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: exported.metadata.name },
    spec: { group: spec.group, names: spec.names, scope: spec.scope, versions: spec.versions },
  };
}
