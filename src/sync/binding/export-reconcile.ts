// The reconcile of a binding's exports: per export, whether this binding owns the API in its app
// cluster (cluster-owners.ts), on what terms it syncs it (export-terms.ts), the API installed and
// marked there (consumer-crd.ts), and the mirroring of its objects started or kept
// (../mirror/export-sync.ts); an export that left the spec is released. Each export's status says
// how far it got.
import { bindingKey, describeBinding, distinctExports } from "../../api/binding-spec.ts";
import { labels } from "../../api/naming.ts";
import { refs } from "../../api/resources.ts";
import { claimsRoleAnnotation } from "../../export/plan.ts";
import type { PermissionClaim } from "../../export/types.ts";
import { KubeApiError, type KubeClient, type KubeObject, type ResourceRef } from "../../kube/client.ts";
import { isEstablished } from "../../kube/conditions.ts";
import { TenantShare } from "../../kube/tenant-share.ts";
import { kubeTime } from "../../kube/time.ts";
import type { InformerRegistry } from "../informers.ts";
import type { ExportContext } from "../mirror/export-context.ts";
import { ExportSync } from "../mirror/export-sync.ts";
import { type BindingView, ownership, refusal } from "./cluster-owners.ts";
import { unreachableMessage } from "./conditions.ts";
import { installApi, markApi, namedOwners } from "./consumer-crd.ts";
import { exportTerms } from "./export-terms.ts";
import type { BindingControllerOptions } from "./options.ts";
import { releaseExport, releaseTarget } from "./release.ts";
import { assertLive, type BindingState, stopExport } from "./state.ts";
import type { ExportStatus } from "./status.ts";

// passing states of an export: shown on the status, not worth an event
const installing = "installing the API in the app cluster";
/** the API was marked by another binding since this reconcile looked */
const markedMeanwhile = new Error("marked meanwhile");
const firstList = "waiting for the first list of objects";
const bindingsNotListed = "waiting for the first list of bindings";
export const passingStates: ReadonlySet<string> = new Set([installing, firstList, bindingsNotListed]);

/** What the export reconcile needs of the binding controller. */
export type ExportReconcileDeps = {
  options: BindingControllerOptions;
  /** reconcile the binding again in ms */
  requeue: (key: string, ms: number) => void;
  /** every binding kind's informer has listed (or its API is not installed) */
  bindingsListed: () => boolean;
  /** every binding, of either kind */
  bindings: () => KubeObject[];
  /** the app cluster's kube-system uid as this process last saw it for a binding */
  clusterUidOf: (key: string) => string | undefined;
  /** the templates of every template namespace */
  templates: () => KubeObject[];
  /** the context an export's mirroring works with */
  context: (
    state: BindingState,
    ref: ResourceRef,
    claims: PermissionClaim[],
    claimsRole: string | undefined,
  ) => ExportContext;
};

export class ExportReconciler {
  readonly #d: ExportReconcileDeps;
  /** one namespace's (one tenant's) exports reconciled at once, all its bindings together */
  readonly #slots: TenantShare;

  constructor(deps: ExportReconcileDeps) {
    this.#d = deps;
    this.#slots = new TenantShare(deps.options.exportsPerNamespace ?? 16);
  }

  /**
   * The binding's exports reconciled, and those that left its spec released (control: the binding's
   * fenced client); statuses in spec order.
   */
  async reconcile(
    state: BindingState,
    binding: KubeObject,
    listed: Array<{ group: string; resource: string }>,
    control: KubeClient,
  ): Promise<ExportStatus[]> {
    const wanted = new Set(listed.map((e) => `${e.resource}.${e.group}`));
    const statuses = await this.#syncExports(state, binding, listed);
    for (const [id, running] of state.exports) {
      if (!wanted.has(id)) {
        // an export left the spec: let go of it as of the whole binding
        await running.sync.stop();
        state.exports.delete(id);
        await releaseExport(
          releaseTarget(control, this.#d.options.logger, binding, state.app),
          running.sync.ctx.ref,
          id,
        );
      }
    }
    return statuses;
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
        const release = await this.#slots.enter(state.ref.namespace, undefined, state.cancelled.signal);
        try {
          assertLive(state);
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
    const app = state.app as KubeClient;
    const o = this.#d.options;
    const owned = await this.#appCrd(state, app, id, { group, resource });
    if ("status" in owned) return owned.status;
    const appCrd = owned.crd;
    const terms = await exportTerms(o.control, o.logger, this.#d.templates(), binding, group, resource, state.stage);
    if ("refused" in terms) {
      if (terms.stop) await stopExport(state, id);
      return terms.refused;
    }
    const { template, claims, base } = terms;
    const providerCrd = await o.control.get(refs.crds, id);
    if (providerCrd === undefined) return { ...base, message: `the control plane has no CRD ${id}` };
    const crdSpec = providerCrd.spec as {
      scope: string;
      versions: Array<{ name: string; served?: boolean; storage?: boolean }>;
    };
    const version =
      terms.version ??
      crdSpec.versions.find((v) => v.storage)?.name ??
      crdSpec.versions.find((v) => v.served)?.name ??
      "";
    const running = state.exports.get(id);
    const installed = await this.#install(state, app, providerCrd, appCrd, running?.crdVersion, id);
    if (installed === "installing") return { ...base, version, template: template.metadata.name, message: installing };
    if (installed !== "installed") return { ...base, version, appError: installed.appError };
    const ref: ResourceRef = { group, version, resource, namespaced: crdSpec.scope === "Namespaced" };
    const claimsRole = template.metadata.annotations?.[claimsRoleAnnotation];
    const signature = JSON.stringify({ ref, claims, claimsRole });
    if (running === undefined || running.signature !== signature) {
      await running?.sync.stop();
      assertLive(state); // a cancelled binding starts no sync
      const sync = new ExportSync(
        this.#d.context(state, ref, claims, claimsRole),
        { control: o.controlInformers, app: state.appInformers as InformerRegistry },
        o.workers,
      );
      sync.start();
      state.stage?.("export sync started", { export: id });
      state.exports.set(id, { sync, signature, crdVersion: providerCrd.metadata.resourceVersion ?? "" });
      o.logger.info({ binding: state.key, export: id, version, claims: claims.length }, "syncing export");
    } else {
      running.crdVersion = providerCrd.metadata.resourceVersion ?? "";
    }
    const current = state.exports.get(id)?.sync.status();
    // nothing else starts a reconcile when the first lists complete: look again shortly
    if (current?.synced === false) this.#d.requeue(state.key, 500);
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

  /**
   * The API's CRD in the app cluster when this binding may sync it there, else the export's status:
   * owned by another binding, or the app cluster failing to answer.
   */
  async #appCrd(
    state: BindingState,
    app: KubeClient,
    id: string,
    base: ExportStatus,
  ): Promise<{ crd: KubeObject | undefined } | { status: ExportStatus }> {
    let appCrd: KubeObject | undefined;
    let refused: string | undefined;
    try {
      appCrd = await app.get(refs.crds, id);
      refused = await this.#notOwner(state, id, appCrd);
    } catch (err) {
      if (!(err instanceof KubeApiError)) {
        // no answer at all: the cluster went away since the last look, which says so (and when to look again)
        state.probe.expire();
        const looked = await state.probe.look(app, this.#d.options.logger.child({ binding: state.key }), (ms) => {
          if (state.app === app) this.#d.requeue(state.key, ms);
        });
        if (looked.status !== "True") return { status: { ...base, appUnreachable: looked } };
      }
      this.#d.requeue(state.key, 5000);
      return { status: { ...base, appError: `reading the API's CRD in the app cluster failed: ${message(err)}` } };
    }
    if (refused !== undefined) {
      await stopExport(state, id);
      return { status: { ...base, message: refused } };
    }
    return { crd: appCrd };
  }

  /**
   * Why this binding may not sync exportId of its app cluster, whose API's CRD there is appCrd
   * (cluster-owners.ts), or undefined.
   */
  async #notOwner(state: BindingState, exportId: string, appCrd: KubeObject | undefined): Promise<string | undefined> {
    if (!this.#d.bindingsListed()) {
      this.#d.requeue(state.key, 1000);
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
        clusterUid: this.#d.clusterUidOf(key) ?? recorded,
      };
    };
    const all = this.#d.bindings().map(view);
    const verdict = ownership(state.ref.uid, state.probe.clusterUid, exportId, named, all, !this.#d.options.namespace);
    return verdict.owner ? undefined : refusal(verdict, exportId, describeBinding);
  }

  /**
   * Installs the API in the app cluster when the control plane's CRD changed or it is not there,
   * and marks it as this binding's: installed once the CRD there is established; else still
   * installing (looks again shortly), or what the app cluster failed with.
   */
  async #install(
    state: BindingState,
    app: KubeClient,
    providerCrd: KubeObject,
    appCrd: KubeObject | undefined,
    crdVersion: string | undefined,
    id: string,
  ): Promise<"installed" | "installing" | { appError: string }> {
    let installed = appCrd;
    try {
      if (crdVersion !== providerCrd.metadata.resourceVersion || installed === undefined) {
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
        this.#d.requeue(state.key, 500);
        return "installing";
      }
      // the app cluster's trouble: its binding says so, and looks again with the probe's backoff
      this.#d.requeue(state.key, 5000);
      return { appError: `installing the API in the app cluster failed: ${message(err)}` };
    }
    if (installed === undefined || !isEstablished(installed)) {
      this.#d.requeue(state.key, 500);
      return "installing";
    }
    return "installed";
  }
}

/** The exports' status while the app cluster cannot be reached: what their running syncs last did. */
export function unreachableExports(
  state: BindingState,
  listed: Array<{ group: string; resource: string }>,
): ExportStatus[] {
  return listed.map((e) => {
    const running = state.exports.get(`${e.resource}.${e.group}`)?.sync.status();
    return {
      group: e.group,
      resource: e.resource,
      ...(running ? { objects: running.objects } : {}),
      ...(running?.lastSync ? { lastSync: kubeTime(running.lastSync) } : {}),
      message: unreachableMessage,
    };
  });
}

/** A binding's exports as "resource.group", whichever its kind. */
function exportIds(binding: KubeObject): string[] {
  return distinctExports(binding).exports.map((e) => `${e.resource}.${e.group}`);
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
