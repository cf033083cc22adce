// Export by label: an XRD labelled bind.klutch.dev/export=true gets a ServiceExport, kept in step
// with its bind.klutch.dev/permission-claims annotation, and removed with the label or the XRD.
import type { Logger } from "pino";
import { fieldManager, labels, managedByValue } from "../api/naming.ts";
import { refs } from "../api/resources.ts";
import { InputError } from "../export/errors.ts";
import { claimsField, claimsFromAnnotation, exportLabel } from "../export/labelled.ts";
import { escalationWarning } from "../export/policy.ts";
import type { PermissionClaim } from "../export/types.ts";
import {
  describeRef,
  KubeApiError,
  type KubeClient,
  type KubeObject,
  type ResourceRef,
  resourcePath,
} from "../kube/client.ts";
import type { Informer } from "../kube/informer.ts";
import { EventRecorder, type InvolvedObject } from "./events.ts";
import type { InformerRegistry } from "./informers.ts";
import { WorkQueue } from "./queue.ts";

const probeRetryMs = 30_000;

/** on ServiceExports this controller made, so it never touches anyone else's */
export const autoExportLabel = "bind.klutch.dev/auto-export";

export function desiredServiceExport(xrd: KubeObject, claims: PermissionClaim[]): KubeObject {
  return {
    apiVersion: "bind.klutch.dev/v1alpha1",
    kind: "ServiceExport",
    metadata: {
      name: xrd.metadata.name,
      labels: { [autoExportLabel]: "true", [labels.managedBy]: managedByValue },
    },
    spec: { xrd: xrd.metadata.name, ...(claims.length > 0 ? { permissionClaims: claims } : {}) },
  };
}

export class AutoExportController {
  readonly #control: KubeClient;
  readonly #registry: InformerRegistry;
  readonly #logger: Logger;
  readonly #queue: WorkQueue;
  readonly #events: EventRecorder;
  #xrds: Informer | undefined;
  #exports: Informer | undefined;
  #release: Array<() => Promise<void>> = [];
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(control: KubeClient, registry: InformerRegistry, logger: Logger) {
    this.#control = control;
    this.#registry = registry;
    this.#logger = logger.child({ controller: "auto-export" });
    this.#events = new EventRecorder(control, this.#logger);
    this.#queue = new WorkQueue({
      workers: 2,
      process: (key) => this.#reconcile(key),
      onError: (key, err, retries) =>
        this.#logger.warn({ xrd: key, retries, err: String(err) }, "auto-export failed; retrying"),
    });
  }

  /**
   * Starts once Crossplane's XRD API and our ServiceExport API are served; checks every 30 s until
   * then. Only a 404 is "not served yet": any other failure (a 403 of missing RBAC, the network) is
   * a warning and an Event on the API's CRD.
   */
  start(): void {
    const tryStart = async () => {
      if (this.#stopped) return;
      const probes = await Promise.all([refs.xrds, refs.serviceExports].map((ref) => this.#probe(ref)));
      if (this.#stopped) return;
      if (!probes.every((p) => p === "served")) {
        for (const p of probes) {
          if (p === "served" || p === "not served") continue;
          this.#logger.warn({ err: p.message, retryInMs: probeRetryMs }, "auto-export cannot read an API it needs");
          await this.#events.warn(p.crd, "AutoExportBlocked", `${p.message}; auto-export tries again in 30 s`);
        }
        if (probes.includes("not served"))
          this.#logger.info("Crossplane XRDs or ServiceExports are not served yet; auto-export waits");
        this.#timer = setTimeout(tryStart, probeRetryMs);
        this.#timer.unref();
        return;
      }
      const xrds = this.#registry.acquire(refs.xrds, { labelSelector: `${exportLabel}=true` });
      const exports = this.#registry.acquire(refs.serviceExports, { labelSelector: `${autoExportLabel}=true` });
      this.#release.push(xrds.release, exports.release);
      this.#xrds = xrds.informer;
      this.#exports = exports.informer;
      const byName = (obj: KubeObject) => this.#queue.add(obj.metadata.name);
      for (const informer of [this.#xrds, this.#exports]) {
        informer.addHandlers({ add: byName, update: (_o, obj) => byName(obj), delete: byName });
      }
      this.#queue.start();
      this.#logger.info("auto-export watching XRDs labelled bind.klutch.dev/export=true");
    };
    void tryStart();
  }

  /** Whether ref is served and listable: a list of at most one object answers. */
  async #probe(ref: ResourceRef): Promise<"served" | "not served" | { message: string; crd: InvolvedObject }> {
    const path = `${resourcePath(ref)}?limit=1`;
    try {
      await this.#control.request("GET", path);
      return "served";
    } catch (err) {
      if (err instanceof KubeApiError && err.code === 404) return "not served";
      const crd = {
        apiVersion: "apiextensions.k8s.io/v1",
        kind: "CustomResourceDefinition",
        name: `${ref.resource}.${ref.group}`,
      };
      return { message: `cannot list ${describeRef(ref)}: ${err instanceof Error ? err.message : String(err)}`, crd };
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#queue.stop();
    await Promise.all(this.#release.map((r) => r()));
  }

  async #reconcile(name: string): Promise<void> {
    const xrds = this.#xrds;
    const exports = this.#exports;
    if (xrds === undefined || exports === undefined) return;
    if (!xrds.hasSynced() || !exports.hasSynced()) {
      this.#queue.addAfter(name, 200);
      return;
    }
    const xrd = xrds.get(name);
    const current = exports.get(name);
    // the XRD informer sees labelled XRDs only: one losing its label leaves it
    const wanted = xrd !== undefined && xrd.metadata.deletionTimestamp === undefined;
    if (!wanted) {
      if (current !== undefined) {
        await this.#control.delete(refs.serviceExports, name, undefined, { uid: current.metadata.uid });
        this.#logger.info({ xrd: name }, "export label or XRD gone: ServiceExport deleted");
      }
      return;
    }
    let claims: PermissionClaim[];
    try {
      claims = claimsFromAnnotation(xrd.metadata);
    } catch (err) {
      if (!(err instanceof InputError)) throw err;
      this.#logger.warn({ xrd: name, err: err.message }, "invalid permission claims: the export stays as it was");
      await this.#event(xrd, "InvalidPermissionClaims", err.message);
      return;
    }
    // the function input may allow these, so the export goes ahead; the function decides
    const risky = escalationWarning(claims, claimsField);
    if (risky !== undefined) await this.#event(xrd, "EscalationProneClaims", risky);
    const desired = desiredServiceExport(xrd, claims);
    // Crossplane adds fields of its own to an XR's spec: compare only ours
    const ours = (spec: unknown) => {
      const { xrd: x, permissionClaims } = (spec ?? {}) as { xrd?: unknown; permissionClaims?: unknown };
      return JSON.stringify({ x, permissionClaims });
    };
    if (current !== undefined && ours(current.spec) === ours(desired.spec)) return;
    if (current === undefined && (await this.#control.get(refs.serviceExports, name)) !== undefined) {
      // someone made this ServiceExport by hand (the informer sees only ours): never take it over
      const text = `ServiceExport ${name} exists and was not made by auto-export; it is left alone`;
      this.#logger.warn({ xrd: name }, text);
      await this.#event(xrd, "ServiceExportNotOurs", text);
      return;
    }
    await this.#control.apply(refs.serviceExports, desired, fieldManager, true);
    this.#logger.info(
      { xrd: name, claims: claims.length },
      current ? "ServiceExport updated" : "ServiceExport created",
    );
  }

  #event(xrd: KubeObject, reason: string, message: string): Promise<void> {
    const { name, uid } = xrd.metadata;
    return this.#events.warn(
      { apiVersion: xrd.apiVersion, kind: xrd.kind, name, ...(uid ? { uid } : {}) },
      reason,
      message,
    );
  }
}
