// What a binding holds on the control plane besides its copies: one provider namespace per bound
// app namespace, and in each, for exports with claims, the sync's access to the claimed resources.

import {
  annotations,
  earlierProviderNamespace,
  fieldManager,
  labels,
  managedByValue,
  ProviderNamespaceConflict,
  providerNamespace,
} from "../../api/naming.ts";
import { refs } from "../../api/resources.ts";
import { KubeApiError, type KubeClient } from "../../kube/client.ts";
import { claimsAccessName } from "../binding/release.ts";
import type { BindingRef } from "../mirror/export-context.ts";
import type { TenantLimits } from "./limits.ts";

type Subject = { kind: string; name: string; namespace?: string; apiGroup?: string };

export class ProviderAccess {
  readonly #control: KubeClient;
  #self: Promise<Subject> | undefined;
  /** ensureNamespace and ensureClaimsAccess under way, by what they make: every worker waits for the one */
  readonly #pending = new Map<string, Promise<unknown>>();
  readonly #limits: TenantLimits | undefined;

  /** limits: how many provider namespaces a binding namespace's bindings may have (none when absent) */
  constructor(control: KubeClient, limits?: TenantLimits) {
    this.#control = control;
    this.#limits = limits;
  }

  /**
   * Creates (once) the provider namespace mirroring appNs for binding, asking via the binding's
   * own (fenced) client when given; done remembers what exists already. Refuses a namespace of that name that is not the binding's or mirrors another app namespace.
   */
  async ensureNamespace(binding: BindingRef, appNs: string, done: Set<string>, via?: KubeClient): Promise<string> {
    const name = providerNamespace(binding.uid, appNs);
    if (done.has(name)) return name;
    // before any request: what waits for room costs the control plane nothing
    this.#limits?.admitNamespace(binding.namespace, name);
    const client = via ?? this.#tenant(binding);
    await this.#once(`ns:${name}`, () => this.#makeNamespace(client, binding, appNs, name, done));
    return name;
  }

  /** The binding's tenant's view of the control plane client: its requests wait in its own line. */
  #tenant(binding: BindingRef): KubeClient {
    return this.#control.forTenant(binding.namespace);
  }

  /** Runs make once for key while it is under way (measured: 117 creates for 10 namespaces without). */
  async #once(key: string, make: () => Promise<void>): Promise<void> {
    let pending = this.#pending.get(key);
    if (pending === undefined) {
      pending = make().finally(() => this.#pending.delete(key));
      this.#pending.set(key, pending);
    }
    await pending;
  }

  async #makeNamespace(
    client: KubeClient,
    binding: BindingRef,
    appNs: string,
    name: string,
    done: Set<string>,
  ): Promise<void> {
    if (done.has(name)) return;
    let ns = await client.get(refs.namespaces, name);
    if (ns === undefined) {
      await this.#refuseEarlierName(client, binding, appNs, name);
      try {
        ns = await client.create(refs.namespaces, {
          apiVersion: "v1",
          kind: "Namespace",
          metadata: {
            name,
            labels: {
              [labels.binding]: binding.uid,
              [labels.consumerNamespace]: appNs,
              [labels.managedBy]: managedByValue,
            },
            annotations: { [annotations.bindingName]: `${binding.namespace}/${binding.name}` },
          },
        });
      } catch (err) {
        if (!(err instanceof KubeApiError) || err.code !== 409) throw err;
        ns = await client.get(refs.namespaces, name);
      }
    }
    if (ns?.metadata.labels?.[labels.binding] !== binding.uid) {
      throw new ProviderNamespaceConflict(
        `namespace ${name} exists on the control plane and does not belong to this binding: app namespace ${appNs} is not synced`,
      );
    }
    const mirrored = ns.metadata.labels?.[labels.consumerNamespace];
    if (mirrored !== appNs) {
      throw new ProviderNamespaceConflict(
        `provider namespace ${name} mirrors app namespace ${mirrored ?? "(none)"}, not ${appNs}: app namespace ${appNs} is not synced (rename it)`,
      );
    }
    done.add(name);
  }

  /** A long app namespace's provider namespace as an earlier version named it holds its copies: no second set. */
  async #refuseEarlierName(client: KubeClient, binding: BindingRef, appNs: string, name: string): Promise<void> {
    const earlier = earlierProviderNamespace(binding.uid, appNs);
    if (earlier === name) return;
    const found = await client.get(refs.namespaces, earlier);
    const labelled = found?.metadata.labels;
    if (labelled?.[labels.binding] !== binding.uid || labelled?.[labels.consumerNamespace] !== appNs) return;
    throw new ProviderNamespaceConflict(
      `app namespace ${appNs} has its copies in provider namespace ${earlier}, named by an earlier version; this version names it ${name} and makes no second set: move the objects there, or delete ${earlier} if they may go`,
    );
  }

  /**
   * Binds the export's claims role in one provider namespace to the sync's own identity: the only
   * place it may read and write claimed resources on the control plane.
   */
  async ensureClaimsAccess(
    binding: BindingRef,
    namespace: string,
    exportId: string,
    role: string,
    done: Set<string>,
    via?: KubeClient,
  ): Promise<void> {
    const name = claimsAccessName(exportId);
    const cacheKey = `${namespace}/${name}`;
    if (done.has(cacheKey)) return;
    const client = via ?? this.#tenant(binding);
    await this.#once(`access:${binding.uid}:${cacheKey}`, () =>
      this.#grantClaimsAccess(client, binding, namespace, role, name, cacheKey, done),
    );
  }

  async #grantClaimsAccess(
    client: KubeClient,
    binding: BindingRef,
    namespace: string,
    role: string,
    name: string,
    cacheKey: string,
    done: Set<string>,
  ): Promise<void> {
    if (done.has(cacheKey)) return;
    await client.apply(
      refs.roleBindings,
      {
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "RoleBinding",
        metadata: { name, namespace, labels: { [labels.binding]: binding.uid, [labels.managedBy]: managedByValue } },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: role },
        subjects: [await this.#identity()],
      },
      fieldManager,
      true,
    );
    done.add(cacheKey);
  }

  /** Who the sync is on the control plane, as an RBAC subject; asked again after a failure. */
  #identity(): Promise<Subject> {
    if (this.#self !== undefined) return this.#self;
    const asked = this.#control
      .request<{ status?: { userInfo?: { username?: string } } }>(
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        { body: { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" } },
      )
      .then(subjectOf);
    this.#self = asked;
    asked.catch(() => {
      if (this.#self === asked) this.#self = undefined;
    });
    return asked;
  }
}

function subjectOf(review: { status?: { userInfo?: { username?: string } } } | undefined): Subject {
  const username = review?.status?.userInfo?.username;
  if (typeof username !== "string" || username === "") {
    throw new Error(
      "the control plane's SelfSubjectReview names no user (status.userInfo.username): no one to grant claims access to",
    );
  }
  const sa = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(username);
  return sa
    ? { kind: "ServiceAccount", name: sa[2] ?? "", namespace: sa[1] ?? "" }
    : { kind: "User", apiGroup: "rbac.authorization.k8s.io", name: username };
}
