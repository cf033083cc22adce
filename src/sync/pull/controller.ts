// The control plane's side of pull bindings: per cluster namespace (labelled
// bind.klutch.dev/pull-binding=true by provision.ts, so only an administrator's namespaces are
// served), one reconcile that
// - writes the ClusterBinding's Healthy condition from the konnector's heartbeat (heartbeat.ts),
// - answers APIServiceExportRequests with APIServiceExports (export-request.ts),
// - makes a provider namespace for each APIServiceNamespace, named as push bindings name theirs,
//   with a Role of the konnector's rights there (rules.ts) and its RoleBinding,
// - deletes a provider namespace only when its APIServiceNamespace is proven gone (a live 404) and
//   the namespace carries this cluster namespace's label, while the cluster namespace is served.
// Hostile input (bad names, unknown APIs, claims not offered, too many namespaces) ends in a status
// saying so, never in an exception that stops other cluster namespaces.
import { isDeepStrictEqual } from "node:util";
import type { Logger } from "pino";
import { fieldManager, labels, managedByValue, providerNamespace } from "../../api/naming.ts";
import {
  binderAccount,
  boundApis,
  clusterBindingName,
  decodeExportApi,
  decodeExportClaims,
  decodeHeartbeat,
  pullAnnotations,
  pullLabels,
  pullRefs,
  serviceNamespaceTarget,
} from "../../api/pull-binding.ts";
import { refs } from "../../api/resources.ts";
import { exportTemplate } from "../../api/template-choice.ts";
import { InputError } from "../../export/errors.ts";
import { claimsRoleAnnotation } from "../../export/plan.ts";
import type { PermissionClaim } from "../../export/types.ts";
import { KubeApiError, type KubeClient, type KubeObject } from "../../kube/client.ts";
import type { Condition } from "../../kube/conditions.ts";
import type { Informer } from "../../kube/informer.ts";
import type { InformerRegistry } from "../informers.ts";
import { WorkQueue } from "../queue.ts";
import { ProviderAccess } from "../tenants/provider-access.ts";
import { answerRequest, type RequestAnswer } from "./export-request.ts";
import { heartbeatHealth, sameConditions, withConditions } from "./heartbeat.ts";
import { type ExportedApi, providerNamespaceRules } from "./rules.ts";

export type PullControllerOptions = {
  /** the control plane, its writes fenced as the sync's others are (fence.ts) */
  control: KubeClient;
  informers: InformerRegistry;
  logger: Logger;
  /** where templates are read (as for push bindings) */
  templateNamespaces: readonly string[];
  /** provider namespaces of one cluster namespace at most (--provider-namespaces-per-namespace) */
  maxProviderNamespaces: number;
  /** APIServiceExports of one cluster namespace at most (--max-exports-per-binding) */
  maxExports: number;
  /** labels a cluster namespace must carry besides the pull-binding mark to be served here (--pull-binding-selector) */
  namespaceSelector?: string;
  workers?: number;
  resyncMs?: number;
};

/** how long a Role applied is taken to be in place before it is applied again */
const reapplyMs = 10 * 60_000;
/** provider namespaces whose applied Role is remembered, at most (then all are applied again) */
const maxApplied = 50_000;

type CondStatus = { conditions?: Array<Condition & { lastTransitionTime?: string }> };

export class PullBindingController {
  readonly #o: PullControllerOptions;
  readonly #queue: WorkQueue;
  readonly #i: Record<
    "clusterNamespaces" | "providerNamespaces" | "bindings" | "requests" | "exports" | "serviceNamespaces",
    Informer
  >;
  readonly #templates: Informer[] = [];
  readonly #release: Array<() => Promise<void>> = [];
  #resync: NodeJS.Timeout | undefined;
  /** the sync's own access to claimed resources in provider namespaces (as in push mode) */
  readonly #access: ProviderAccess;
  /** claims access granted already, as NAMESPACE/NAME */
  readonly #granted = new Set<string>();
  /**
   * the konnector's Role and RoleBinding as last applied, by provider namespace: applied again only
   * when they change or an entry is older than reapplyMs (else every event of a cluster namespace,
   * a heartbeat too, cost two writes per provider namespace)
   */
  readonly #applied = new Map<string, { key: string; at: number }>();

  constructor(options: PullControllerOptions) {
    this.#o = options;
    this.#access = new ProviderAccess(options.control);
    this.#queue = new WorkQueue({
      workers: options.workers ?? 4,
      process: (ns) => this.#reconcile(ns),
      onError: (ns, err, retries) =>
        options.logger.warn({ clusterNamespace: ns, retries, err: String(err) }, "pull binding reconcile failed"),
    });
    const enqueueNs = (obj: KubeObject) => obj.metadata.namespace && this.#queue.add(obj.metadata.namespace);
    const byNs = { add: enqueueNs, update: (_: KubeObject, o: KubeObject) => enqueueNs(o), delete: enqueueNs };
    const take = (
      ref: Parameters<InformerRegistry["acquire"]>[0],
      opts: Parameters<InformerRegistry["acquire"]>[1],
      handlers: Parameters<InformerRegistry["acquire"]>[2],
    ) => {
      const held = options.informers.acquire(ref, opts, handlers);
      this.#release.push(held.release);
      return held.informer;
    };
    const enqueueName = (obj: KubeObject) => this.#queue.add(obj.metadata.name);
    const enqueueOwner = (obj: KubeObject) => {
      const owner = obj.metadata.labels?.[pullLabels.ownedBy];
      if (owner) this.#queue.add(owner);
    };
    this.#i = {
      clusterNamespaces: take(
        refs.namespaces,
        {
          labelSelector: [`${pullLabels.clusterNamespace}=true`, options.namespaceSelector]
            .filter((s) => s !== undefined && s !== "")
            .join(","),
        },
        { add: enqueueName, update: (_, o) => enqueueName(o), delete: enqueueName },
      ),
      providerNamespaces: take(
        refs.namespaces,
        { labelSelector: pullLabels.ownedBy },
        { add: enqueueOwner, update: (_, o) => enqueueOwner(o), delete: enqueueOwner },
      ),
      bindings: take(pullRefs.clusterBindings, {}, byNs),
      requests: take(pullRefs.exportRequests, {}, byNs),
      exports: take(pullRefs.exports, {}, byNs),
      serviceNamespaces: take(pullRefs.serviceNamespaces, {}, byNs),
    };
    for (const namespace of options.templateNamespaces) {
      this.#templates.push(
        take(
          refs.templates,
          { namespace },
          { add: () => this.#all(), update: () => this.#all(), delete: () => this.#all() },
        ),
      );
    }
  }

  #all(): void {
    for (const ns of this.#i.clusterNamespaces.list()) this.#queue.add(ns.metadata.name, "backlog");
  }

  start(): void {
    this.#queue.start();
    this.#resync = setInterval(() => this.#all(), this.#o.resyncMs ?? 30_000);
    this.#resync.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#resync);
    await this.#queue.stop();
    await Promise.all(this.#release.map((r) => r()));
  }

  #synced(): boolean {
    return Object.values(this.#i).every((i) => i.hasSynced()) && this.#templates.every((t) => t.hasSynced());
  }

  async #reconcile(clusterNs: string): Promise<void> {
    if (!this.#synced()) {
      this.#queue.addAfter(clusterNs, 500);
      return;
    }
    const nsObj = this.#i.clusterNamespaces.get(clusterNs);
    const binding = this.#i.bindings.get(clusterBindingName, clusterNs);
    const served = nsObj !== undefined && nsObj.metadata.deletionTimestamp === undefined && binding !== undefined;
    const wanted = new Map<string, string>(); // provider namespace -> app namespace
    const bindingKey = binding?.metadata.annotations?.[pullAnnotations.bindingUid] || binding?.metadata.uid;
    let limited: Condition | undefined;
    if (served && bindingKey !== undefined) {
      await this.#answerRequests(clusterNs);
      const apis = this.#exportedApis(clusterNs);
      limited = await this.#serviceNamespaces(clusterNs, bindingKey, apis, wanted);
      await this.#bindingStatus(binding, limited);
      await this.#collect(clusterNs, wanted);
    }
    // a cluster namespace going or gone takes no provider namespace with it: what an unbind
    // deletes is its deletion policy's to say (the app side's unbind, not written yet)
  }

  /** the APIs (and claims) exported to this cluster namespace; an export that does not decode grants nothing */
  #exportedApis(clusterNs: string): ExportedApi[] {
    return this.#i.exports.list(clusterNs).flatMap((e) => {
      try {
        return [{ ...decodeExportApi(e), claims: decodeExportClaims(e) }];
      } catch (err) {
        this.#o.logger.warn(
          { clusterNamespace: clusterNs, export: e.metadata.name, err: String(err) },
          "export ignored",
        );
        return [];
      }
    });
  }

  async #answerRequests(clusterNs: string): Promise<void> {
    const templates = this.#templates.flatMap((t) => t.list());
    const control = this.#o.control;
    let bound = boundApis(this.#i.clusterNamespaces.get(clusterNs));
    // the exports, with those this pass wrote (the cache may not show them yet)
    const known = new Map(this.#i.exports.list(clusterNs).map((e) => [e.metadata.name, e]));
    // oldest first: the request the binding was made with is answered before any later one
    const requests = [...this.#i.requests.list(clusterNs)].sort(
      (a, b) =>
        (a.metadata.creationTimestamp ?? "").localeCompare(b.metadata.creationTimestamp ?? "") ||
        a.metadata.name.localeCompare(b.metadata.name),
    );
    for (const request of requests) {
      const phase = (request.status as { phase?: string } | undefined)?.phase;
      if (phase === "Succeeded" || phase === "Failed") continue;
      const crdOf = async (group: string, resource: string) => {
        const crd = await control.get(refs.crds, `${resource}.${group}`);
        return crd?.metadata.deletionTimestamp === undefined ? crd : undefined;
      };
      let answer = await answerRequest(request, templates, crdOf, bound);
      if (answer.phase === "Failed" && answer.reason === "NotBound") {
        // the cache may not show yet an API bound just before the request was made: a failure is final
        bound = boundApis(await control.get(refs.namespaces, clusterNs));
        answer = await answerRequest(request, templates, crdOf, bound);
      }
      if (answer.phase === "Succeeded") answer = await this.#claimsKept(clusterNs, answer.exports, known);
      if (answer.phase === "Succeeded") {
        const added = answer.exports.filter((e) => !known.has(e.metadata.name)).length;
        if (known.size + added > this.#o.maxExports) {
          answer = {
            phase: "Failed",
            reason: "LimitReached",
            message: `this cluster namespace would hold ${known.size + added} APIServiceExports, more than --max-exports-per-binding (${this.#o.maxExports}) allows`,
          };
        }
      }
      if (answer.phase === "Succeeded") {
        for (const exported of answer.exports) {
          known.set(exported.metadata.name, await control.apply(pullRefs.exports, exported, fieldManager));
        }
      }
      if (answer.phase === "Pending") this.#queue.addAfter(clusterNs, 10_000);
      const condition: Condition =
        answer.phase === "Succeeded"
          ? { type: "ExportsReady", status: "True", reason: "Exported", message: "the APIServiceExports exist" }
          : answer.phase === "Failed"
            ? { type: "ExportsReady", status: "False", reason: answer.reason, message: answer.message }
            : { type: "ExportsReady", status: "False", reason: "Pending", message: answer.message };
      const status = request.status as (CondStatus & { terminalMessage?: string }) | undefined;
      if (
        phase === answer.phase &&
        sameConditions(
          (status?.conditions ?? []).filter((c) => c.type === "ExportsReady"),
          [condition],
        )
      )
        continue;
      await this.#writeStatus(pullRefs.exportRequests, request, {
        phase: answer.phase,
        terminalMessage: answer.phase === "Succeeded" ? "" : answer.message,
        conditions: withConditions(status?.conditions ?? [], [condition], new Date()),
      });
    }
  }

  /**
   * The answer's exports with the claims of an API exported here already kept, or a failure when a
   * later request asks for a claim beyond them: the claims are those the binding was made with (the
   * person accepted them), and the konnector, which may create requests, must not widen its own
   * rights with a later one. Fewer claims keep them too (kube-bind's CLI sends its request again
   * without claims). An unbind and a new bind change them.
   */
  async #claimsKept(
    clusterNs: string,
    exports: readonly KubeObject[],
    known: ReadonlyMap<string, KubeObject>,
  ): Promise<RequestAnswer> {
    const kept: KubeObject[] = [];
    for (const exported of exports) {
      // a new export is looked for on the API server too: the cache may lag an earlier pass's write
      const before =
        known.get(exported.metadata.name) ??
        (await this.#o.control.get(pullRefs.exports, exported.metadata.name, clusterNs));
      if (before === undefined) {
        kept.push(exported);
        continue;
      }
      let had: PermissionClaim[] | undefined;
      try {
        had = decodeExportClaims(before);
      } catch {
        had = undefined;
      }
      const spec = exported.spec as { permissionClaims: PermissionClaim[] };
      if (had === undefined || !spec.permissionClaims.every((c) => had.some((h) => isDeepStrictEqual(c, h)))) {
        return {
          phase: "Failed",
          reason: "ClaimsDiffer",
          message: `${exported.metadata.name} is exported to this cluster namespace already with other claims (APIServiceExport ${exported.metadata.name}): a later request cannot add claims to those the binding was made with; unbind and bind again to change them`,
        };
      }
      kept.push({ ...exported, spec: { ...spec, permissionClaims: had } });
    }
    return { phase: "Succeeded", exports: kept };
  }

  /** Provider namespaces for this cluster namespace's APIServiceNamespaces; a limit's condition when one was hit. */
  async #serviceNamespaces(
    clusterNs: string,
    bindingKey: string,
    apis: readonly ExportedApi[],
    wanted: Map<string, string>,
  ): Promise<Condition | undefined> {
    const control = this.#o.control;
    const rules = providerNamespaceRules(apis);
    const claimsRoles = this.#claimsRoles(clusterNs, apis);
    const held = new Set(
      this.#i.providerNamespaces
        .list()
        .filter((n) => n.metadata.labels?.[pullLabels.ownedBy] === clusterNs)
        .map((n) => n.metadata.name),
    );
    let limited: Condition | undefined;
    const asked = [...this.#i.serviceNamespaces.list(clusterNs)].sort(
      (a, b) =>
        (a.metadata.creationTimestamp ?? "").localeCompare(b.metadata.creationTimestamp ?? "") ||
        a.metadata.name.localeCompare(b.metadata.name),
    );
    for (const sn of asked) {
      if (sn.metadata.deletionTimestamp !== undefined) continue;
      let target: string;
      try {
        target = serviceNamespaceTarget(sn);
      } catch (err) {
        if (!(err instanceof InputError)) throw err;
        await this.#namespaceStatus(sn, undefined, {
          type: "Ready",
          status: "False",
          reason: "InvalidName",
          message: err.message,
        });
        continue;
      }
      const name = providerNamespace(bindingKey, target);
      wanted.set(name, target);
      if (!held.has(name) && held.size >= this.#o.maxProviderNamespaces) {
        limited = {
          type: "ProviderNamespaces",
          status: "False",
          reason: "LimitReached",
          message: `this binding has ${held.size} provider namespaces, the most --provider-namespaces-per-namespace (${this.#o.maxProviderNamespaces}) allows: further APIServiceNamespaces wait (nothing is deleted)`,
        };
        await this.#namespaceStatus(sn, undefined, {
          type: "Ready",
          status: "False",
          reason: "LimitReached",
          message: limited.message,
        });
        continue;
      }
      const made = await this.#ensureNamespace(name, clusterNs, bindingKey, target);
      if (typeof made === "string") {
        await this.#namespaceStatus(sn, undefined, {
          type: "Ready",
          status: "False",
          reason: "NamespaceConflict",
          message: made,
        });
        continue;
      }
      held.add(name);
      // the sync may grant only what it holds there: the claimed resources through the claims
      // role the function composed for the export (bound to itself, as push mode does)
      for (const { exportId, role } of claimsRoles) {
        const ref = { uid: bindingKey, name: clusterBindingName, namespace: clusterNs };
        await this.#access.ensureClaimsAccess(ref, name, exportId, role, this.#granted, control);
      }
      const appliedKey = JSON.stringify([rules, clusterNs, made.metadata.uid]);
      const applied = this.#applied.get(name);
      if (applied?.key === appliedKey && Date.now() - applied.at < reapplyMs) {
        await this.#namespaceStatus(sn, name, {
          type: "Ready",
          status: "True",
          reason: "NamespaceReady",
          message: `provider namespace ${name}`,
        });
        continue;
      }
      try {
        await control.apply(
          pullRefs.roles,
          {
            apiVersion: "rbac.authorization.k8s.io/v1",
            kind: "Role",
            metadata: { name: binderAccount, namespace: name, labels: { [labels.managedBy]: managedByValue } },
            rules,
          },
          fieldManager,
        );
      } catch (err) {
        if (!(err instanceof KubeApiError && err.code === 403)) throw err;
        // RBAC lets no one grant what it does not hold: a claim whose template names no claims role
        const message = `the sync may not grant the konnector its rights in ${name} (${err.message}); a template with claims needs the annotation ${claimsRoleAnnotation} the composition function sets`;
        await this.#namespaceStatus(sn, undefined, { type: "Ready", status: "False", reason: "RoleRefused", message });
        this.#queue.addAfter(clusterNs, 30_000);
        continue;
      }
      await control.apply(
        refs.roleBindings,
        {
          apiVersion: "rbac.authorization.k8s.io/v1",
          kind: "RoleBinding",
          metadata: { name: binderAccount, namespace: name, labels: { [labels.managedBy]: managedByValue } },
          roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: binderAccount },
          subjects: [{ kind: "ServiceAccount", name: binderAccount, namespace: clusterNs }],
        },
        fieldManager,
      );
      if (this.#applied.size >= maxApplied) this.#applied.clear();
      this.#applied.set(name, { key: appliedKey, at: Date.now() });
      await this.#namespaceStatus(sn, name, {
        type: "Ready",
        status: "True",
        reason: "NamespaceReady",
        message: `provider namespace ${name}`,
      });
    }
    return limited;
  }

  /** the claims roles of the exported APIs with claims, from their templates' annotation */
  #claimsRoles(clusterNs: string, apis: readonly ExportedApi[]): Array<{ exportId: string; role: string }> {
    const templates = this.#templates.flatMap((t) => t.list());
    return apis.flatMap((api) => {
      if (api.claims.length === 0) return [];
      const chosen = exportTemplate(templates, api.group, api.resource, clusterNs);
      const role = "template" in chosen ? chosen.template.metadata.annotations?.[claimsRoleAnnotation] : undefined;
      return role ? [{ exportId: `${api.resource}.${api.group}`, role }] : [];
    });
  }

  /** The provider namespace, made or adopted; a message when one of that name is not this binding's. */
  async #ensureNamespace(
    name: string,
    clusterNs: string,
    bindingKey: string,
    target: string,
  ): Promise<KubeObject | string> {
    const control = this.#o.control;
    const existing = this.#i.providerNamespaces.get(name) ?? (await control.get(refs.namespaces, name));
    const marks = {
      [pullLabels.ownedBy]: clusterNs,
      [labels.binding]: bindingKey,
      [labels.consumerNamespace]: target,
      [labels.managedBy]: managedByValue,
    };
    if (existing === undefined) {
      // a namespace of this name made before (and deleted since) had its own grants
      this.#forget(name);
      try {
        return await control.create(refs.namespaces, {
          apiVersion: "v1",
          kind: "Namespace",
          metadata: { name, labels: marks },
        });
      } catch (err) {
        if (err instanceof KubeApiError && err.code === 409)
          return `namespace ${name} appeared meanwhile; looking again`;
        throw err;
      }
    }
    const have = existing.metadata.labels ?? {};
    if (existing.metadata.deletionTimestamp !== undefined) {
      this.#queue.addAfter(clusterNs, 2000);
      return `namespace ${name} is being deleted; it is made again once it is gone`;
    }
    if (have[pullLabels.ownedBy] === clusterNs && have[labels.binding] === bindingKey) return existing;
    // a push binding's namespace this binding continues (bind.klutch.dev/binding-uid names that binding)
    if (
      have[pullLabels.ownedBy] === undefined &&
      have[labels.binding] === bindingKey &&
      have[labels.consumerNamespace] === target
    ) {
      return control.mergePatch(refs.namespaces, name, undefined, {
        metadata: { labels: { [pullLabels.ownedBy]: clusterNs } },
      });
    }
    return `namespace ${name} exists and is not this binding's: nothing is written there`;
  }

  /** what is remembered as granted in provider namespace name */
  #forget(name: string): void {
    this.#applied.delete(name);
    for (const key of this.#granted) if (key.startsWith(`${name}/`)) this.#granted.delete(key);
  }

  async #namespaceStatus(sn: KubeObject, namespace: string | undefined, condition: Condition): Promise<void> {
    const status = sn.status as (CondStatus & { namespace?: string }) | undefined;
    const keep = namespace ?? status?.namespace;
    if (
      status?.namespace === keep &&
      sameConditions(
        (status?.conditions ?? []).filter((c) => c.type === "Ready"),
        [condition],
      )
    )
      return;
    await this.#writeStatus(pullRefs.serviceNamespaces, sn, {
      ...(keep === undefined ? {} : { namespace: keep }),
      conditions: withConditions(status?.conditions ?? [], [condition], new Date()),
    });
  }

  async #bindingStatus(binding: KubeObject, limited: Condition | undefined): Promise<void> {
    let heartbeat: ReturnType<typeof decodeHeartbeat>;
    let health: ReturnType<typeof heartbeatHealth>;
    try {
      heartbeat = decodeHeartbeat(binding);
      health = heartbeatHealth(heartbeat, Date.now());
    } catch (err) {
      if (!(err instanceof InputError)) throw err;
      health = { condition: { type: "Healthy", status: "False", reason: "HeartbeatInvalid", message: err.message } };
    }
    const ns = binding.metadata.namespace ?? "";
    if (health.recheckMs !== undefined) this.#queue.addAfter(ns, health.recheckMs);
    const changes: Condition[] = [
      health.condition,
      limited ?? {
        type: "ProviderNamespaces",
        status: "True",
        reason: "WithinLimit",
        message: "every APIServiceNamespace has its namespace",
      },
    ];
    const current = (binding.status as CondStatus | undefined)?.conditions ?? [];
    const types = new Set(changes.map((c) => c.type));
    if (
      sameConditions(
        current.filter((c) => types.has(c.type)),
        changes,
      )
    )
      return;
    await this.#writeStatus(pullRefs.clusterBindings, binding, {
      conditions: withConditions(current, changes, new Date()),
    });
  }

  /** a status merge patch, refused when the object changed since it was read (the queue tries again) */
  async #writeStatus(
    ref: (typeof pullRefs)[keyof typeof pullRefs],
    obj: KubeObject,
    status: Record<string, unknown>,
  ): Promise<void> {
    await this.#o.control.mergePatch(
      ref,
      obj.metadata.name,
      obj.metadata.namespace,
      { metadata: { resourceVersion: obj.metadata.resourceVersion }, status },
      "status",
    );
  }

  /** Deletes this cluster namespace's provider namespaces whose APIServiceNamespace is proven gone. */
  async #collect(clusterNs: string, wanted: ReadonlyMap<string, string>): Promise<void> {
    const control = this.#o.control;
    for (const ns of this.#i.providerNamespaces.list()) {
      const marks = ns.metadata.labels ?? {};
      if (marks[pullLabels.ownedBy] !== clusterNs || wanted.has(ns.metadata.name)) continue;
      if (ns.metadata.deletionTimestamp !== undefined) continue;
      const target = marks[labels.consumerNamespace];
      // a namespace naming no app namespace was not made here (someone labelled it): no proof, kept
      if (target === undefined || target === "") continue;
      // proof: the API server itself says the APIServiceNamespace is gone (not a cache that may lag)
      try {
        if ((await control.get(pullRefs.serviceNamespaces, target, clusterNs)) !== undefined) continue;
      } catch (err) {
        if (!(err instanceof KubeApiError && err.code === 404)) throw err;
      }
      this.#o.logger.info(
        { clusterNamespace: clusterNs, namespace: ns.metadata.name },
        "deleting provider namespace: its APIServiceNamespace is gone",
      );
      this.#forget(ns.metadata.name);
      await control.delete(
        refs.namespaces,
        ns.metadata.name,
        undefined,
        ns.metadata.uid ? { uid: ns.metadata.uid } : {},
      );
    }
  }
}
