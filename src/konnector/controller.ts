// The konnector's app side: every APIServiceBinding of the app cluster, the Secret each names
// (watched by name), and one control-plane connection (provider.ts) per distinct kubeconfig among
// them, made anew when a Secret's kubeconfig changes and stopped when no binding names it any more.
// Each binding's Ready condition says what it waits for or what is wrong (a missing or broken
// kubeconfig, a missing export), written only when it changed.
import { isDeepStrictEqual } from "node:util";
import type { Logger } from "pino";
import type { DeletionPolicy } from "../api/binding-spec.ts";
import { bindingRef, konnectorFinalizer } from "../api/pull-binding.ts";
import { refs } from "../api/resources.ts";
import type { AppAccount } from "../app-access/account.ts";
import { AppNamespaceAccess } from "../app-access/namespace-access.ts";
import { InputError } from "../export/errors.ts";
import { type ClientOptions, KubeApiError, type KubeClient, type KubeObject } from "../kube/client.ts";
import type { Condition } from "../kube/conditions.ts";
import type { Informer } from "../kube/informer.ts";
import { kubeTime } from "../kube/time.ts";
import type { ExportSync } from "../sync/mirror/export-sync.ts";
import { WorkQueue } from "../sync/queue.ts";
import {
  type BindingSpec,
  boundExportName,
  decodeBindingSpec,
  deletionPolicyOf,
  type SecretRef,
} from "./binding-spec.ts";
import { isProblem, kubeconfigHash, providerKubeconfig } from "./kubeconfig-secret.ts";
import { ProviderConnection, type ProviderOptions } from "./provider.ts";

/** what every control-plane connection is given as the konnector was */
type Shared = Pick<ProviderOptions, "app" | "appRegistry" | "metrics" | "workers" | "heartbeatSeconds" | "version">;

export type KonnectorOptions = Shared & {
  logger: Logger;
  /** a control-plane client for a kubeconfig (its writes fenced as the app client's are), and how to close it */
  controlClient: (kubeconfig: string, options: ClientOptions) => { client: KubeClient; close: () => void };
  controlClientOptions: ClientOptions;
  /** how often each binding's status is looked at again */
  resyncMs?: number;
  /** renew the control-plane token at this share of its lifetime (token-renewal.ts) */
  tokenRenewFraction: number;
  /** serve only the APIServiceBindings with these labels (a label selector); all when absent */
  bindingSelector?: string;
  /**
   * The konnector's own account in the app cluster, when it holds only what `klutch-bind bind URL`
   * grants: claimed resources are then reached per app namespace, through the RoleBinding of the
   * account's claims role it makes there (app-access/namespace-access.ts), as a push binding's account.
   */
  appAccount?: AppAccount;
};

type Held = { informer: Informer; release: () => Promise<void> };
/** hashes: the kubeconfig contents it serves (its own renewals add theirs: they restart nothing) */
type Connection = { provider: ProviderConnection; close: () => void; refs: SecretRef[]; hashes: Set<string> };

export class Konnector {
  readonly #o: KonnectorOptions;
  readonly #shared: Shared;
  readonly #queue: WorkQueue;
  readonly #bindings: Held;
  readonly #secrets = new Map<string, Held>();
  readonly #connections = new Map<string, Connection>();
  readonly #appAccess: AppNamespaceAccess | undefined;
  /** bindings (by uid) the konnector was refused to hold (403), and when: asked again a minute later */
  readonly #unheld = new Map<string, number>();
  #resync: NodeJS.Timeout | undefined;

  constructor(options: KonnectorOptions) {
    this.#o = options;
    const { app, appRegistry, metrics, workers, heartbeatSeconds, version } = options;
    this.#shared = { app, appRegistry, metrics, workers, heartbeatSeconds, version };
    this.#queue = new WorkQueue({
      workers: 1,
      process: () => this.#reconcile(),
      onError: (_key, err, retries) => options.logger.warn({ retries, err: String(err) }, "konnector reconcile failed"),
    });
    this.#appAccess = options.appAccount ? new AppNamespaceAccess(options.app, options.appAccount) : undefined;
    const selected = options.bindingSelector ? { labelSelector: options.bindingSelector } : {};
    this.#bindings = options.appRegistry.acquire(bindingRef, selected, this.#poking());
  }

  #poking() {
    const poke = () => this.#queue.add("all");
    return { add: poke, update: poke, delete: poke };
  }

  start(): void {
    this.#queue.start();
    this.#queue.add("all");
    this.#resync = setInterval(() => this.#queue.add("all"), this.#o.resyncMs ?? 5000);
    this.#resync.unref();
  }

  /** ready once the app cluster's bindings are listed */
  ready(): boolean {
    return this.#bindings.informer.hasSynced();
  }

  get exportSyncs(): ExportSync[] {
    return [...this.#connections.values()].flatMap((c) => c.provider.exportSyncs);
  }

  async stop(): Promise<void> {
    clearInterval(this.#resync);
    await this.#queue.stop();
    for (const [hash, connection] of [...this.#connections]) await this.#close(hash, connection);
    await Promise.all([this.#bindings.release(), ...[...this.#secrets.values()].map((h) => h.release())]);
  }

  async #close(hash: string, connection: Connection): Promise<void> {
    this.#connections.delete(hash);
    await connection.provider.stop();
    connection.close();
  }

  #secret(ref: SecretRef): Held {
    const id = `${ref.namespace}/${ref.name}`;
    let held = this.#secrets.get(id);
    if (held === undefined) {
      held = this.#o.appRegistry.acquire(
        refs.secrets,
        { namespace: ref.namespace, fieldSelector: `metadata.name=${ref.name}` },
        this.#poking(),
      );
      this.#secrets.set(id, held);
    }
    return held;
  }

  async #reconcile(): Promise<void> {
    if (!this.#bindings.informer.hasSynced()) {
      this.#queue.addAfter("all", 200);
      return;
    }
    const problems = new Map<string, Condition>();
    const groups = new Map<
      string,
      {
        text: string;
        namespace: string;
        specs: Map<string, BindingSpec>;
        releasing: Map<string, DeletionPolicy>;
        refs: SecretRef[];
      }
    >();
    const wantedSecrets = new Set<string>();
    const listed = this.#bindings.informer.list();
    const bindings = listed.filter((b) => b.metadata.deletionTimestamp === undefined);
    // deleted ones we hold: their export is released through their kubeconfig's connection, then let go
    const deleted = listed.filter(
      (b) => b.metadata.deletionTimestamp !== undefined && b.metadata.finalizers?.includes(konnectorFinalizer),
    );
    for (const binding of [...bindings, ...deleted]) {
      const name = binding.metadata.name;
      const deleting = binding.metadata.deletionTimestamp !== undefined;
      let spec: BindingSpec;
      let policy: DeletionPolicy = "Orphan";
      try {
        boundExportName(binding);
        spec = decodeBindingSpec(binding);
        if (deleting) policy = deletionPolicyOf(binding);
      } catch (err) {
        if (!(err instanceof InputError)) throw err;
        if (deleting) this.#o.logger.warn({ binding: name, err: err.message }, "cannot release a deleted binding");
        problems.set(name, { type: "Ready", status: "False", reason: "InvalidSpec", message: err.message });
        continue;
      }
      if (!deleting) await this.#hold(binding);
      const ref = spec.kubeconfigSecretRef;
      wantedSecrets.add(`${ref.namespace}/${ref.name}`);
      const secrets = this.#secret(ref).informer;
      if (!secrets.hasSynced()) {
        problems.set(name, { type: "Ready", status: "False", reason: "Pending", message: "reading the kubeconfig" });
        this.#queue.addAfter("all", 500);
        continue;
      }
      const kubeconfig = providerKubeconfig(secrets.get(ref.name, ref.namespace), ref);
      if (isProblem(kubeconfig)) {
        if (deleting) {
          this.#o.logger.warn({ binding: name, err: kubeconfig.message }, "cannot release a deleted binding");
        }
        problems.set(name, { type: "Ready", status: "False", ...kubeconfig });
        continue;
      }
      let group = groups.get(kubeconfig.hash);
      if (group === undefined) {
        group = {
          text: kubeconfig.text,
          namespace: kubeconfig.namespace,
          specs: new Map(),
          releasing: new Map(),
          refs: [],
        };
        groups.set(kubeconfig.hash, group);
      }
      if (deleting) group.releasing.set(name, policy);
      else group.specs.set(name, spec);
      group.refs.push(ref);
    }
    for (const [hash, connection] of [...this.#connections]) {
      if (![...connection.hashes].some((h) => groups.has(h))) {
        this.#o.logger.info(
          { kubeconfig: hash, clusterNamespace: connection.provider.clusterNamespace },
          "kubeconfig gone or changed: closing its connection",
        );
        await this.#close(hash, connection);
      }
    }
    const servedBy = new Map<string, ProviderConnection>();
    for (const [hash, group] of groups) {
      let connection = [...this.#connections.values()].find((c) => c.hashes.has(hash));
      if (connection === undefined) {
        let made: ReturnType<KonnectorOptions["controlClient"]>;
        try {
          made = this.#o.controlClient(group.text, this.#o.controlClientOptions);
        } catch (err) {
          for (const name of group.specs.keys()) {
            problems.set(name, { type: "Ready", status: "False", reason: "KubeconfigInvalid", message: String(err) });
          }
          continue;
        }
        const provider = new ProviderConnection({
          ...this.#shared,
          control: made.client,
          clusterNamespace: group.namespace,
          logger: this.#o.logger.child({ clusterNamespace: group.namespace }),
          ...(this.#appAccess ? { appNamespaceAccess: this.#appAccess } : {}),
          released: (name) => this.#letGo(name),
          renewal: {
            kubeconfig: group.text,
            fraction: this.#o.tokenRenewFraction,
            write: (text) => this.#renewed(fresh, text),
          },
        });
        const fresh: Connection = { provider, close: made.close, refs: group.refs, hashes: new Set([hash]) };
        connection = fresh;
        this.#connections.set(hash, connection);
        provider.start();
        this.#o.logger.info({ clusterNamespace: group.namespace, bindings: [...group.specs.keys()] }, "connected");
      }
      connection.refs = group.refs;
      connection.provider.setBindings(group.specs, group.releasing);
      for (const name of group.specs.keys()) servedBy.set(name, connection.provider);
    }
    for (const [id, held] of [...this.#secrets]) {
      if (wantedSecrets.has(id)) continue;
      this.#secrets.delete(id);
      await held.release();
    }
    for (const binding of bindings) {
      const name = binding.metadata.name;
      const condition = problems.get(name) ??
        servedBy.get(name)?.condition(name) ?? { type: "Ready", status: "False", reason: "Pending", message: "" };
      await this.#writeReady(binding, condition);
    }
  }

  /**
   * Puts our finalizer on a binding we serve, so that its deletion waits for its release. A
   * konnector installed before it held bindings may not patch them (403): it serves on unheld.
   */
  async #hold(binding: KubeObject): Promise<void> {
    const finalizers = binding.metadata.finalizers ?? [];
    const refusedAt = this.#unheld.get(binding.metadata.uid ?? "");
    if (finalizers.includes(konnectorFinalizer) || (refusedAt !== undefined && Date.now() - refusedAt < 60_000)) return;
    const patch = {
      metadata: { resourceVersion: binding.metadata.resourceVersion, finalizers: [...finalizers, konnectorFinalizer] },
    };
    await this.#o.app.mergePatch(bindingRef, binding.metadata.name, undefined, patch).catch((err: unknown) => {
      if (err instanceof KubeApiError && err.code === 409) return; // its event brings the next look
      if (err instanceof KubeApiError && err.code === 403) {
        // asked and said once a minute per binding, not at every reconcile (each 5 s)
        const first = !this.#unheld.has(binding.metadata.uid ?? "");
        this.#unheld.set(binding.metadata.uid ?? "", Date.now());
        if (first) {
          this.#o.logger.warn(
            { binding: binding.metadata.name },
            "may not patch APIServiceBindings: its deletion will not release its objects (bind again to update the konnector's rights)",
          );
        }
        return;
      }
      throw err;
    });
  }

  /** A deleted binding's export is released: our finalizer goes, and with it the binding. */
  async #letGo(name: string): Promise<void> {
    const binding = await this.#o.app.get(bindingRef, name);
    const finalizers = binding?.metadata.finalizers ?? [];
    if (binding === undefined || !finalizers.includes(konnectorFinalizer)) return;
    const patch = {
      metadata: {
        resourceVersion: binding.metadata.resourceVersion,
        finalizers: finalizers.filter((f) => f !== konnectorFinalizer),
      },
    };
    await this.#o.app.mergePatch(bindingRef, name, undefined, patch);
    this.#o.logger.info({ binding: name }, "released a deleted binding");
  }

  /** A connection renewed its token: the kubeconfig with it goes into every Secret the connection serves. */
  async #renewed(connection: Connection, text: string): Promise<void> {
    connection.hashes.add(kubeconfigHash(text));
    const data = Buffer.from(text).toString("base64");
    for (const ref of connection.refs) {
      await this.#o.app.mergePatch(refs.secrets, ref.name, ref.namespace, { data: { [ref.key]: data } });
    }
  }

  async #writeReady(binding: KubeObject, condition: Condition): Promise<void> {
    const conditions =
      (binding.status as { conditions?: Array<Condition & { lastTransitionTime?: string }> })?.conditions ?? [];
    const current = conditions.find((c) => c.type === "Ready");
    const same =
      current !== undefined &&
      isDeepStrictEqual(
        [current.status, current.reason, current.message ?? ""],
        [condition.status, condition.reason, condition.message ?? ""],
      );
    if (same) return;
    const next = {
      ...condition,
      lastTransitionTime:
        current?.status === condition.status ? (current.lastTransitionTime ?? kubeTime()) : kubeTime(),
    };
    await this.#o.app
      .mergePatch(
        bindingRef,
        binding.metadata.name,
        undefined,
        {
          metadata: { resourceVersion: binding.metadata.resourceVersion },
          status: { conditions: [...conditions.filter((c) => c.type !== "Ready"), next] },
        },
        "status",
      )
      .catch((err: unknown) => {
        // the cache is behind a write (ours, or someone's): its event brings the next look
        if (!(err instanceof KubeApiError && err.code === 409)) throw err;
      });
  }
}
