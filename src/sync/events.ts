// Kubernetes Events (AppClusterBindings, XRDs): what an operator sees in `kubectl describe`. The
// same event is not repeated within a few minutes; failing to record one is logged, never thrown.
import { hostname } from "node:os";
import type { Logger } from "pino";
import { refs } from "../api/resources.ts";
import type { KubeClient } from "../kube/client.ts";
import { kubeTime } from "../kube/time.ts";
import type { BindingRef } from "./mirror/export-context.ts";

/** The object an event is about; one without a namespace (an XRD) gets its events in default. */
export type InvolvedObject = { apiVersion: string; kind: string; name: string; namespace?: string; uid?: string };

export function bindingObject(binding: BindingRef): InvolvedObject {
  return {
    apiVersion: binding.apiVersion ?? "bind.klutch.dev/v1alpha1",
    kind: "AppClusterBinding",
    name: binding.name,
    namespace: binding.namespace,
    uid: binding.uid,
  };
}

const quietMs = 5 * 60_000;

export class EventRecorder {
  readonly #client: KubeClient;
  readonly #logger: Logger;
  readonly #recent = new Map<string, number>();

  constructor(client: KubeClient, logger: Logger) {
    this.#client = client;
    this.#logger = logger;
  }

  /**
   * Resolves once the event is recorded, or skipped as a repeat; never rejects. via: the client to
   * write it with (a binding's fenced one, binding/controller.ts), default the recorder's.
   */
  warn(object: InvolvedObject, reason: string, message: string, via?: KubeClient): Promise<void> {
    const key = `${object.kind}/${object.namespace ?? ""}/${object.name}/${object.uid ?? ""}/${reason}/${message}`;
    const last = this.#recent.get(key);
    const now = Date.now();
    if (last !== undefined && now - last < quietMs) return Promise.resolve();
    this.#recent.set(key, now);
    for (const [k, at] of this.#recent) if (now - at > quietMs) this.#recent.delete(k);
    const time = kubeTime(new Date(now));
    return (via ?? this.#client)
      .create(refs.events, {
        apiVersion: "v1",
        kind: "Event",
        metadata: {
          name: `${object.name}.${now.toString(16)}${Math.random().toString(16).slice(2, 6)}`,
          namespace: object.namespace ?? "default",
        },
        involvedObject: object,
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
      .then(
        () => undefined,
        (err: unknown) => this.#logger.warn({ err: String(err), reason }, "could not record an event"),
      );
  }
}
