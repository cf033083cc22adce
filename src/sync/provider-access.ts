// What a binding holds on the control plane besides its copies: one provider namespace per bound
// app namespace, and in each, for exports with claims, the sync's access to the claimed resources.
import { KubeApiError, type KubeClient, type KubeObject } from "../kube/client.ts";
import type { BindingRef } from "./export-context.ts";
import { annotations, fieldManager, labels, managedByValue, providerNamespace } from "./naming.ts";
import { claimsAccessName } from "./release.ts";
import { refs } from "./resources.ts";

type Subject = { kind: string; name: string; namespace?: string; apiGroup?: string };

export class ProviderAccess {
  readonly #control: KubeClient;
  #self: Promise<Subject> | undefined;
  /** ensureNamespace and ensureClaimsAccess under way, by what they make: every worker waits for the one */
  readonly #pending = new Map<string, Promise<unknown>>();

  constructor(control: KubeClient) {
    this.#control = control;
  }

  /**
   * Creates (once) the provider namespace mirroring appNs for binding; done remembers what exists
   * already. Refuses a namespace of that name that is not the binding's.
   */
  async ensureNamespace(binding: BindingRef, appNs: string, done: Set<string>): Promise<string> {
    const name = providerNamespace(binding.uid, appNs);
    if (done.has(name)) return name;
    await this.#once(`ns:${name}`, () => this.#makeNamespace(binding, appNs, name, done));
    return name;
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

  async #makeNamespace(binding: BindingRef, appNs: string, name: string, done: Set<string>): Promise<void> {
    if (done.has(name)) return;
    let ns = await this.#control.get(refs.namespaces, name);
    if (ns === undefined) {
      try {
        ns = await this.#control.create(refs.namespaces, {
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
        ns = await this.#control.get(refs.namespaces, name);
      }
    }
    if (!owned(ns, binding)) {
      throw new Error(`namespace ${name} exists on the control plane and does not belong to this binding`);
    }
    done.add(name);
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
  ): Promise<void> {
    const name = claimsAccessName(exportId);
    const cacheKey = `${namespace}/${name}`;
    if (done.has(cacheKey)) return;
    await this.#once(`access:${binding.uid}:${cacheKey}`, () =>
      this.#grantClaimsAccess(binding, namespace, role, name, cacheKey, done),
    );
  }

  async #grantClaimsAccess(
    binding: BindingRef,
    namespace: string,
    role: string,
    name: string,
    cacheKey: string,
    done: Set<string>,
  ): Promise<void> {
    if (done.has(cacheKey)) return;
    await this.#control.apply(
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

  /** Who the sync is on the control plane, as an RBAC subject. */
  #identity(): Promise<Subject> {
    this.#self ??= this.#control
      .request<{ status?: { userInfo?: { username?: string } } }>(
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        { body: { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" } },
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
}

function owned(ns: KubeObject | undefined, binding: BindingRef): boolean {
  return ns?.metadata.labels?.[labels.binding] === binding.uid;
}
