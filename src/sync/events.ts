// Kubernetes Events on AppClusterBindings: what an operator sees in `kubectl describe`. The same
// event is not repeated within a few minutes; failing to record one is logged, never thrown.
import { hostname } from "node:os";
import type { Logger } from "pino";
import type { KubeClient } from "../kube/client.ts";
import { kubeTime } from "../kube/time.ts";
import type { BindingRef } from "./export-context.ts";
import { refs } from "./resources.ts";

const quietMs = 5 * 60_000;

export class EventRecorder {
  readonly #client: KubeClient;
  readonly #logger: Logger;
  readonly #recent = new Map<string, number>();

  constructor(client: KubeClient, logger: Logger) {
    this.#client = client;
    this.#logger = logger;
  }

  warn(binding: BindingRef, reason: string, message: string): void {
    const key = `${binding.uid}/${reason}/${message}`;
    const last = this.#recent.get(key);
    const now = Date.now();
    if (last !== undefined && now - last < quietMs) return;
    this.#recent.set(key, now);
    for (const [k, at] of this.#recent) if (now - at > quietMs) this.#recent.delete(k);
    const time = kubeTime(new Date(now));
    this.#client
      .create(refs.events, {
        apiVersion: "v1",
        kind: "Event",
        metadata: {
          name: `${binding.name}.${now.toString(16)}${Math.random().toString(16).slice(2, 6)}`,
          namespace: binding.namespace,
        },
        involvedObject: {
          apiVersion: "bind.klutch.dev/v1alpha1",
          kind: "AppClusterBinding",
          name: binding.name,
          namespace: binding.namespace,
          uid: binding.uid,
        },
        type: "Warning",
        reason,
        message,
        count: 1,
        firstTimestamp: time,
        lastTimestamp: time,
        source: { component: "klutch-bind-sync" },
        reportingComponent: "klutch-bind-sync",
        reportingInstance: hostname(),
      })
      .catch((err: unknown) => this.#logger.warn({ err: String(err), reason }, "could not record an event"));
  }
}
