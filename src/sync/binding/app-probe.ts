// A look at an app cluster: does it answer /version, and which cluster is it (its kube-system
// namespace's uid, the same whatever kubeconfig reaches it). Asked at most once a minute while it
// answers, and with growing pauses (1 s .. 30 s) while it does not, so an unreachable cluster costs
// little.
import type { Logger } from "pino";
import type { Condition } from "../../api/binding-spec.ts";
import { refs } from "../../api/resources.ts";
import { type KubeClient, KubeDecodeError } from "../../kube/client.ts";
import { refusedServerAddress } from "../../kube/server-addresses.ts";

const okMs = 60_000;
const minMs = 1_000;
const maxMs = 30_000;

export class AppProbe {
  condition: Condition | undefined;
  /** the app cluster's kube-system namespace uid, once seen */
  clusterUid: string | undefined;
  #next = 0;
  #failures = 0;
  #looking: Promise<Condition> | undefined;

  /** The next look happens at the next call, whatever the pause. */
  expire(): void {
    this.#next = 0;
  }

  /**
   * The Connected condition; onRetry(ms) asks for another look after a failure. Looks asked for
   * while one is under way (a binding's exports, looked at concurrently) share it.
   */
  look(app: KubeClient, log: Logger, onRetry: (ms: number) => void): Promise<Condition> {
    if (this.condition !== undefined && Date.now() < this.#next) return Promise.resolve(this.condition);
    this.#looking ??= this.#look(app, log, onRetry).finally(() => {
      this.#looking = undefined;
    });
    return this.#looking;
  }

  async #look(app: KubeClient, log: Logger, onRetry: (ms: number) => void): Promise<Condition> {
    try {
      const version = await app.serverVersion();
      this.clusterUid ??= await this.#clusterUid(app, log);
      this.condition = {
        type: "Connected",
        status: "True",
        reason: "Reachable",
        message: `app cluster ${app.server} (${version.gitVersion})`,
      };
      this.#next = Date.now() + okMs;
      this.#failures = 0;
    } catch (err) {
      this.#failures++;
      const pause = Math.min(maxMs, minMs * 2 ** (this.#failures - 1));
      this.condition = {
        type: "Connected",
        status: "False",
        // answering, but not as a Kubernetes API server does (a proxy's sign-in page, say); or
        // where app cluster servers may not be (server-addresses.ts: nothing was sent)
        reason:
          err instanceof KubeDecodeError
            ? "InvalidAnswers"
            : refusedServerAddress(err) !== undefined
              ? "ServerAddressRefused"
              : "Unreachable",
        message: `app cluster ${app.server}: ${err instanceof Error ? err.message : String(err)}`,
      };
      this.#next = Date.now() + pause;
      onRetry(pause);
    }
    return this.condition;
  }

  async #clusterUid(app: KubeClient, log: Logger): Promise<string | undefined> {
    try {
      return (await app.get(refs.namespaces, "kube-system"))?.metadata.uid;
    } catch (err) {
      log.info(
        { err: err instanceof Error ? err.message : String(err) },
        "cannot read the app cluster's kube-system namespace: its identity is missing from the binding's status",
      );
      return undefined;
    }
  }
}
