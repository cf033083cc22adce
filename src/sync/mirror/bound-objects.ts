// Bound objects of one export and one binding: spec up, status down, deletion that waits for the
// provider, orphans removed, objects created on the control plane adopted. Each reconcile compares
// the two sides from the informer caches and writes only what differs.
import { isDeepStrictEqual } from "node:util";
import {
  annotations,
  bindingPrefix,
  fieldManager,
  finalizer,
  labels,
  ownDomain,
  ProviderNamespaceConflict,
  providerClusterScopedName,
  providerNamespace,
} from "../../api/naming.ts";
import { refs } from "../../api/resources.ts";
import type { KubeObject, ResourceRef } from "../../kube/client.ts";
import { KubeApiError } from "../../kube/client.ts";
import type { Informer } from "../../kube/informer.ts";
import { leanObject } from "../../kube/lean.ts";
import { kubeTime } from "../../kube/time.ts";
import type { ObjectCache } from "./control-scope.ts";
import type { ExportContext } from "./export-context.ts";
import type { RecentWrites } from "./recent-writes.ts";

type Condition = { type: string; status: string; reason: string; message?: string; lastTransitionTime?: string };

export const deletingCondition = "ProviderDeleting";

/** Where the provider copy of a consumer object lives. */
export function providerKey(ctx: ExportContext, namespace: string | undefined, name: string) {
  return ctx.ref.namespaced
    ? { namespace: providerNamespace(ctx.binding.uid, namespace ?? ""), name }
    : { namespace: undefined, name: providerClusterScopedName(ctx.binding.uid, name) };
}

/**
 * The consumer object a provider object mirrors, or undefined when it belongs to no one of ours.
 * A copy says whose it is in its annotations; a name is never read back from a shortened one.
 */
export function consumerKeyOf(
  ctx: ExportContext,
  provider: KubeObject,
  namespaces: ObjectCache,
): { namespace: string | undefined; name: string } | undefined {
  let consumerNamespace: string | undefined;
  if (ctx.ref.namespaced) {
    const ns = namespaces.get(provider.metadata.namespace ?? "");
    consumerNamespace = ns?.metadata.labels?.[labels.consumerNamespace];
    if (ns?.metadata.labels?.[labels.binding] !== ctx.binding.uid || consumerNamespace === undefined) return undefined;
  }
  const recorded = provider.metadata.annotations?.[annotations.consumerName];
  if (recorded !== undefined && provider.metadata.labels?.[labels.binding] === ctx.binding.uid) {
    if (ctx.ref.namespaced && provider.metadata.annotations?.[annotations.consumerNamespace] !== consumerNamespace) {
      return undefined;
    }
    return { namespace: consumerNamespace, name: recorded };
  }
  if (ctx.ref.namespaced) return { namespace: consumerNamespace, name: provider.metadata.name };
  const prefix = `${bindingPrefix(ctx.binding.uid)}-`;
  const name = provider.metadata.name;
  // a shortened name (naming.ts: a second hyphen, or at the length limit) says not whose it is: only its annotation can tell
  if (!name.startsWith(prefix) || name.startsWith(`${prefix}-`) || name.length >= maxNameLength) return undefined;
  return { namespace: undefined, name: name.slice(prefix.length) };
}

const maxNameLength = 253;

/**
 * The consumer object a copy of ours records in its annotations, whatever the caches hold: a hint
 * of which key to look at (the reconcile checks the copy against the control plane).
 */
export function recordedConsumer(
  ctx: ExportContext,
  provider: KubeObject,
): { namespace: string | undefined; name: string } | undefined {
  if (provider.metadata.labels?.[labels.binding] !== ctx.binding.uid) return undefined;
  const noted = provider.metadata.annotations ?? {};
  const name = noted[annotations.consumerName];
  if (name === undefined) return undefined;
  if (!ctx.ref.namespaced) return { namespace: undefined, name };
  const namespace = noted[annotations.consumerNamespace];
  return namespace === undefined ? undefined : { namespace, name };
}

export function objectKey(namespace: string | undefined, name: string): string {
  return `obj:${namespace ?? ""}/${name}`;
}

function spec(obj: KubeObject | undefined): unknown {
  return obj?.spec;
}

/** What the provider copy should carry: the consumer's spec and labels plus our marks. */
function desiredProviderCopy(ctx: ExportContext, consumer: KubeObject): KubeObject {
  const where = providerKey(ctx, consumer.metadata.namespace, consumer.metadata.name);
  return {
    apiVersion: consumer.apiVersion,
    kind: consumer.kind,
    metadata: {
      name: where.name,
      ...(where.namespace === undefined ? {} : { namespace: where.namespace }),
      labels: { ...tenantLabels(consumer), [labels.binding]: ctx.binding.uid },
      annotations: {
        [annotations.consumerUid]: consumer.metadata.uid ?? "",
        [annotations.consumerName]: consumer.metadata.name,
        ...(consumer.metadata.namespace === undefined
          ? {}
          : { [annotations.consumerNamespace]: consumer.metadata.namespace }),
      },
    },
    ...(consumer.spec === undefined ? {} : { spec: consumer.spec }),
  };
}

/** The consumer's labels but those of the sync's own domain: those marks are its own to set, never a tenant's. */
function tenantLabels(consumer: KubeObject): Record<string, string> {
  const all = consumer.metadata.labels ?? {};
  return Object.fromEntries(Object.entries(all).filter(([key]) => !key.startsWith(ownDomain)));
}

function ownLabelsMatch(current: KubeObject, desired: KubeObject): boolean {
  const have = current.metadata.labels ?? {};
  const noted = current.metadata.annotations ?? {};
  return (
    Object.entries(desired.metadata.labels ?? {}).every(([k, v]) => have[k] === v) &&
    Object.entries(desired.metadata.annotations ?? {}).every(([k, v]) => noted[k] === v)
  );
}

function withoutOurConditions(status: unknown): unknown {
  if (typeof status !== "object" || status === null) return status;
  const s = status as { conditions?: Condition[] };
  if (!Array.isArray(s.conditions)) return status;
  const conditions = s.conditions.filter((c) => c.type !== deletingCondition);
  return { ...s, conditions };
}

/** The caches of one export, and its own writes not in them yet (recent-writes.ts). */
export type BoundInformers = {
  app: Informer;
  provider: ObjectCache;
  namespaces: ObjectCache;
  written?: { app: RecentWrites; provider: RecentWrites };
};

/**
 * Our finalizer and owner label on, or the finalizer off, the consumer object: a merge patch, so the
 * annotations the cache does not keep (lean.ts) stay; its resourceVersion makes it fail on a newer object.
 */
async function patchConsumerMeta(
  ctx: ExportContext,
  consumer: KubeObject,
  meta: { labels?: Record<string, string>; finalizers: string[] },
  written: RecentWrites | undefined,
): Promise<KubeObject> {
  const patched = leanObject(
    await ctx.app.mergePatch(ctx.ref, consumer.metadata.name, consumer.metadata.namespace, {
      metadata: { resourceVersion: consumer.metadata.resourceVersion, ...meta },
    }),
  );
  written?.note(patched);
  return patched;
}

export async function reconcileBoundObject(
  ctx: ExportContext,
  informers: BoundInformers,
  namespace: string | undefined,
  name: string,
): Promise<void> {
  const written = informers.written;
  const cachedConsumer = informers.app.get(name, namespace);
  const consumer = written ? written.app.get(cachedConsumer, name, namespace) : cachedConsumer;
  const where = providerKey(ctx, namespace, name);
  const cachedProvider = informers.provider.get(where.name, where.namespace);
  const provider = written ? written.provider.get(cachedProvider, where.name, where.namespace) : cachedProvider;
  const ref: ResourceRef = ctx.ref;

  if (consumer === undefined) {
    // A copy of ours whose consumer object is gone: delete it, once the app cluster itself says
    // the object is not there. The cache's word is no proof: it may come from a relist through a
    // broken proxy. A provider object that is not a copy of ours is adopted elsewhere.
    if (
      provider !== undefined &&
      provider.metadata.labels?.[labels.binding] === ctx.binding.uid &&
      provider.metadata.deletionTimestamp === undefined &&
      informers.app.hasSynced() &&
      // read from the control plane when the cache lacks the namespace: a copy just made may be
      // known only from our own write, whose watch event starts no reconcile (recent-writes.ts)
      (await notItsCopy(ctx, informers.namespaces, provider, namespace, name)) === undefined
    ) {
      const live = await ctx.app.get(ref, name, namespace);
      if (live !== undefined) {
        ctx.log.debug({ object: `${namespace ?? ""}/${name}` }, "consumer object still there; its event is on the way");
        return;
      }
      await ctx.control.delete(ref, where.name, where.namespace, { uid: provider.metadata.uid });
      ctx.log.info(
        { object: `${where.namespace ?? ""}/${where.name}` },
        "deleted provider copy of a deleted consumer object",
      );
    }
    return;
  }

  // another binding of the same app cluster manages this object: never touch it
  const owner = consumer.metadata.labels?.[labels.binding];
  if (owner !== undefined && owner !== ctx.binding.uid) return;

  if (consumer.metadata.deletionTimestamp !== undefined) {
    if (!consumer.metadata.finalizers?.includes(finalizer)) return;
    const refused = provider && (await notItsCopy(ctx, informers.namespaces, provider, namespace, name));
    if (refused) ctx.log.warn({ object: `${namespace ?? ""}/${name}` }, `${refused}: not deleted with it`);
    // a copy already gone (the cache lags) lets the consumer object go at once: its deletion event
    // may never reach this key (dropped while its namespace was not cached)
    const gone =
      provider !== undefined &&
      !refused &&
      provider.metadata.deletionTimestamp === undefined &&
      !(await ctx.control.delete(ref, where.name, where.namespace, {
        propagationPolicy: "Background",
        uid: provider.metadata.uid,
      }));
    if (provider !== undefined && !refused && !gone) {
      await setDeletingCondition(ctx, consumer);
      return; // the provider informer requeues us when the copy is gone
    }
    // the provider copy is gone: let the consumer object go too
    await patchConsumerMeta(
      ctx,
      consumer,
      { finalizers: (consumer.metadata.finalizers ?? []).filter((f) => f !== finalizer) },
      written?.app,
    );
    ctx.log.info(
      { object: `${namespace ?? ""}/${name}` },
      refused
        ? "no provider copy of its own; released the consumer object"
        : "provider copy deleted; released the consumer object",
    );
    return;
  }

  // The finalizer and the owner label first, so the consumer object cannot go before its provider
  // copy does and no other binding takes it; then on with the updated object rather than waiting
  // for its watch event.
  let withFinalizer = consumer;
  if (!consumer.metadata.finalizers?.includes(finalizer) || owner === undefined) {
    const finalizers = consumer.metadata.finalizers ?? [];
    withFinalizer = await patchConsumerMeta(
      ctx,
      consumer,
      {
        labels: { [labels.binding]: ctx.binding.uid },
        finalizers: finalizers.includes(finalizer) ? finalizers : [...finalizers, finalizer],
      },
      written?.app,
    );
    ctx.stage?.("first app object patched");
  }

  if (where.namespace !== undefined && namespace !== undefined) {
    await ctx.ensureProviderNamespace(namespace).catch((err: unknown) => {
      if (err instanceof ProviderNamespaceConflict) ctx.reportConflict(err.message);
      throw err;
    });
    ctx.stage?.("provider namespace ready");
  }

  const desired = desiredProviderCopy(ctx, withFinalizer);
  let current = provider;
  if (current !== undefined) refuseCopyOfAnother(ctx, current, namespace, name);
  if (current === undefined) {
    // a plain create costs the API server less than a server-side apply; later changes apply
    // Already there means our cache is behind our own create: read it rather than write again.
    current = await ctx.control.create(ref, desired).catch(async (err: unknown) => {
      if (!(err instanceof KubeApiError) || err.code !== 409) throw err;
      const existing = await ctx.control.get(ref, where.name, where.namespace);
      if (existing !== undefined) refuseCopyOfAnother(ctx, existing, namespace, name);
      if (
        existing !== undefined &&
        isDeepStrictEqual(spec(existing), spec(desired)) &&
        ownLabelsMatch(existing, desired)
      ) {
        return existing;
      }
      return ctx.control.apply(ref, desired, fieldManager, true);
    });
    written?.provider.note(leanObject(current));
    ctx.metrics.synced(ctx, "spec");
    ctx.stage?.("first copy created");
  } else if (!isDeepStrictEqual(spec(current), spec(desired)) || !ownLabelsMatch(current, desired)) {
    current = await ctx.control.apply(ref, desired, fieldManager, true);
    written?.provider.note(leanObject(current));
    ctx.metrics.synced(ctx, "spec");
  }

  const providerStatus = current.status;
  if (providerStatus !== undefined && !isDeepStrictEqual(providerStatus, withoutOurConditions(withFinalizer.status))) {
    written?.app.note(leanObject(await ctx.app.updateStatus(ref, { ...withFinalizer, status: providerStatus })));
    ctx.metrics.synced(ctx, "status");
  }
}

function sameKey(key: { namespace: string | undefined; name: string } | undefined, namespace?: string, name?: string) {
  return key !== undefined && key.namespace === namespace && key.name === name;
}

/** The consumer object a copy of ours records it mirrors, where it is another than namespace/name. */
function recordedOther(ctx: ExportContext, provider: KubeObject, namespace: string | undefined, name: string) {
  if (provider.metadata.labels?.[labels.binding] !== ctx.binding.uid) return undefined;
  const noted = provider.metadata.annotations ?? {};
  const other = {
    namespace: ctx.ref.namespaced ? (noted[annotations.consumerNamespace] ?? namespace) : undefined,
    name: noted[annotations.consumerName] ?? name,
  };
  return sameKey(other, namespace, name) ? undefined : other;
}

/** Never writes one consumer object's copy over another's (two app namespaces must not share a provider namespace). */
function refuseCopyOfAnother(ctx: ExportContext, provider: KubeObject, namespace: string | undefined, name: string) {
  const other = recordedOther(ctx, provider, namespace, name);
  if (other === undefined) return;
  const text = `${ctx.ref.resource} ${provider.metadata.namespace ?? ""}/${provider.metadata.name} on the control plane is the copy of ${other.namespace ?? ""}/${other.name}, not of ${namespace ?? ""}/${name}: ${namespace ?? ""}/${name} is not synced`;
  ctx.reportConflict(text);
  throw new Error(text);
}

/**
 * Why the provider object at a consumer object's place is not its copy, when it is not: its
 * namespace mirrors another app namespace, or it records another consumer object. Read from the
 * control plane itself when the cache has no such namespace.
 */
async function notItsCopy(
  ctx: ExportContext,
  namespaces: ObjectCache,
  provider: KubeObject,
  namespace: string | undefined,
  name: string,
): Promise<string | undefined> {
  const where = `${provider.metadata.namespace ?? ""}/${provider.metadata.name}`;
  const providerNs = provider.metadata.namespace;
  if (ctx.ref.namespaced && providerNs !== undefined) {
    const ns =
      namespaces.get(providerNs) ??
      (await (ctx.controlScope
        ? ctx.controlScope.readNamespace(providerNs)
        : ctx.control.get(refs.namespaces, providerNs)));
    const mirrored = ns?.metadata.labels?.[labels.consumerNamespace];
    if (ns?.metadata.labels?.[labels.binding] !== ctx.binding.uid || mirrored !== namespace) {
      return `provider namespace ${providerNs} mirrors app namespace ${mirrored ?? "(none of this binding)"}, not ${namespace ?? ""}`;
    }
  }
  const other = recordedOther(ctx, provider, namespace, name);
  if (other !== undefined) return `${where} on the control plane is the copy of ${other.namespace ?? ""}/${other.name}`;
  return undefined;
}

async function setDeletingCondition(ctx: ExportContext, consumer: KubeObject): Promise<void> {
  const status = (consumer.status ?? {}) as { conditions?: Condition[] };
  if (status.conditions?.some((c) => c.type === deletingCondition)) return;
  const condition: Condition = {
    type: deletingCondition,
    status: "True",
    reason: "WaitingForProvider",
    message: "the control plane is deleting this object's resources; it goes once they are gone",
    lastTransitionTime: kubeTime(),
  };
  try {
    await ctx.app.updateStatus(ctx.ref, {
      ...consumer,
      status: { ...status, conditions: [...(status.conditions ?? []), condition] },
    });
  } catch (err) {
    // a schema without status.conditions refuses it; deletion goes on without the condition
    if (!(err instanceof KubeApiError) || err.code !== 422) throw err;
  }
}

/**
 * A provider object in a mapped namespace that no consumer object claims: create its consumer
 * counterpart, so what the provider made directly shows up in the app cluster.
 */
export async function adoptProviderObject(
  ctx: ExportContext,
  informers: { app: Informer; provider: ObjectCache },
  provider: KubeObject,
  consumerNamespace: string | undefined,
  consumerName: string,
): Promise<void> {
  if (provider.metadata.labels?.[labels.binding] === ctx.binding.uid) return; // a copy of ours
  if (provider.metadata.deletionTimestamp !== undefined) return;
  if (informers.app.get(consumerName, consumerNamespace) !== undefined) return;
  const { [labels.binding]: _ours, ...providerLabels } = provider.metadata.labels ?? {};
  const created = await ctx.app.create(ctx.ref, {
    apiVersion: provider.apiVersion,
    kind: provider.kind,
    metadata: {
      name: consumerName,
      ...(consumerNamespace === undefined ? {} : { namespace: consumerNamespace }),
      labels: { ...providerLabels, [labels.binding]: ctx.binding.uid },
      finalizers: [finalizer],
    },
    ...(provider.spec === undefined ? {} : { spec: provider.spec }),
  });
  await ctx.control.apply(
    ctx.ref,
    {
      apiVersion: provider.apiVersion,
      kind: provider.kind,
      metadata: {
        name: provider.metadata.name,
        ...(provider.metadata.namespace === undefined ? {} : { namespace: provider.metadata.namespace }),
        labels: { [labels.binding]: ctx.binding.uid },
        annotations: {
          [annotations.consumerUid]: created.metadata.uid ?? "",
          [annotations.consumerName]: consumerName,
          ...(consumerNamespace === undefined ? {} : { [annotations.consumerNamespace]: consumerNamespace }),
        },
      },
    },
    `${fieldManager}-adopt`,
    true,
  );
  ctx.log.info(
    { object: `${consumerNamespace ?? ""}/${consumerName}` },
    "adopted an object created on the control plane",
  );
}
