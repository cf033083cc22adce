// A binding's connection to its app cluster: the client made of the kubeconfig its Secret holds
// (made anew only when that kubeconfig changes), the renewal of its service account's token, and
// the probe saying whether the cluster answers: the Connected condition the status starts from.
import { createHash } from "node:crypto";
import { bindingKey, type Condition } from "../../api/binding-spec.ts";
import { appAccessAnnotation, defaultRenewFraction } from "../../app-access/account.ts";
import { AppNamespaceAccess } from "../../app-access/namespace-access.ts";
import { appAccessOf, renewIfDue } from "../../app-access/token-renewal.ts";
import type { CacheBudget } from "../../kube/cache-budget.ts";
import type { ClientOptions, KubeClient, KubeObject } from "../../kube/client.ts";
import { bindingObject, type EventRecorder } from "../events.ts";
import { InformerRegistry } from "../informers.ts";
import { fenced } from "../replicas/fence.ts";
import { appClient, readKubeconfig } from "./app-kubeconfig.ts";
import type { BindingControllerOptions } from "./options.ts";
import { assertLive, type BindingState } from "./state.ts";

/** What a connection needs of the binding controller. */
export type ConnectionDeps = {
  options: BindingControllerOptions;
  events: EventRecorder;
  /** client options for an app cluster of a binding of namespace */
  appClientOptions: (namespace: string) => ClientOptions;
  /** the app cache budget of namespace's bindings */
  cacheBudget: (namespace: string) => CacheBudget;
  /** client as the binding's writes must use it (fence.ts) */
  fence: (client: KubeClient, uid: string, key: string, state?: BindingState) => KubeClient;
  stopBinding: (state: BindingState) => Promise<void>;
  /** reconcile the binding again in ms */
  requeue: (key: string, ms: number) => void;
};

export class AppConnection {
  readonly #d: ConnectionDeps;

  constructor(deps: ConnectionDeps) {
    this.#d = deps;
  }

  /**
   * A client for the binding's app cluster, and whether it answers. Without usable credentials the
   * binding stops syncing (nothing written, nothing deleted) until they are back: the old ones may
   * have been withdrawn on purpose.
   */
  async connect(state: BindingState, binding: KubeObject): Promise<Condition> {
    const o = this.#d.options;
    const stopped = async (reason: string, text: string): Promise<Condition> => {
      await this.#d.stopBinding(state);
      return { type: "Connected", status: "False", reason, message: text };
    };
    const kubeconfig = await readKubeconfig(o.control, binding, o.kubeconfigSecrets);
    state.stage?.("secret read", { ok: kubeconfig.ok });
    if (!kubeconfig.ok) return stopped(kubeconfig.reason, kubeconfig.message);
    const source = clientSource(kubeconfig.secret, kubeconfig.key, kubeconfig.text);
    if (state.clientSource !== source) {
      const kubeconfigChanged = state.clientSource !== undefined;
      await this.#d.stopBinding(state);
      assertLive(state); // a cancelled binding opens no client
      try {
        const app = appClient(kubeconfig, this.#d.appClientOptions(binding.metadata.namespace ?? ""));
        app.observeRequests(o.metrics.apiRequests("app"));
        const gate = o.writeGate;
        const view = gate ? fenced(app, gate, `binding ${state.key}: this replica (no longer the leader)`) : app;
        state.app = this.#d.fence(view, state.ref.uid, state.key, state);
        state.appOwner = app;
      } catch (err) {
        return stopped("InvalidKubeconfig", message(err));
      }
      state.appInformers = new InformerRegistry(
        state.app,
        this.#d.options.logger.child({ binding: bindingKey(binding), cluster: "app" }),
        this.#d.cacheBudget(binding.metadata.namespace ?? ""),
      );
      state.clientSource = source;
      state.access = appAccessOf(kubeconfig.secret, kubeconfig.text);
      state.namespaceAccess = state.access && new AppNamespaceAccess(state.app, state.access.account);
      // every time: a changed kubeconfig restarts the binding's informers, which relist
      state.stage?.("app client created", kubeconfigChanged ? { kubeconfigChanged } : undefined, true);
    }
    const app = state.app;
    if (app === undefined) return stopped("NotConnected", "no client for the app cluster");
    const expired = await this.#renewToken(state, kubeconfig, app);
    if (expired !== undefined) return stopped("TokenExpired", expired);
    const looked = await state.probe.look(app, this.#d.options.logger.child({ binding: bindingKey(binding) }), (ms) => {
      if (state.app === app) this.#d.requeue(bindingKey(binding), ms);
    });
    state.stage?.("app cluster probed", { connected: looked.status });
    return looked;
  }

  /**
   * Renews the binding's service account token when due (token-renewal.ts), in place: the client
   * and its informers go on. Says why the binding cannot connect when the token has expired.
   */
  async #renewToken(
    state: BindingState,
    kubeconfig: { secret: KubeObject; key: string; text: string },
    app: KubeClient,
  ): Promise<string | undefined> {
    if (state.access === undefined) return undefined;
    const o = this.#d.options;
    const control = this.#d.fence(o.control, state.ref.uid, state.key, state);
    const outcome = await renewIfDue(control, app, kubeconfig, state.access, {
      fraction: o.appTokenRenewFraction ?? defaultRenewFraction,
      ...(o.appTokenSeconds ? { seconds: o.appTokenSeconds } : {}),
      ...(state.lastRenewal !== undefined ? { lastRenewal: state.lastRenewal } : {}),
      log: this.#d.options.logger.child({ binding: state.key }),
    });
    if (outcome.kind === "expired") return outcome.message;
    if (outcome.kind === "renewed") {
      // our own write: the client has the new token already, nothing restarts
      state.clientSource = clientSource(outcome.secret, kubeconfig.key, outcome.text);
      state.access = outcome.access;
      state.lastRenewal = outcome.access.times.issuedAt;
    }
    if (outcome.kind === "failed")
      void this.#d.events.warn(bindingObject(state.ref), "TokenNotRenewed", outcome.message, control);
    // a timer at most an hour ahead (the periodic resync looks anyway)
    this.#d.requeue(state.key, Math.min(Math.max(outcome.ms, 100), 3_600_000));
    return undefined;
  }
}

/**
 * What a binding's app client is made of: the kubeconfig under its key, and whether the sync renews
 * its token (an annotation). A digest, so that no credential is kept.
 */
function clientSource(secret: KubeObject, key: string, text: string): string {
  const renews = secret.metadata.annotations?.[appAccessAnnotation] ?? "";
  return createHash("sha256").update(`${key}\0${renews}\0`).update(text).digest("hex");
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
