// The konnector's heartbeat on its ClusterBinding's status (lastHeartbeatTime, heartbeatInterval,
// konnectorVersion), as klutch-bind's konnector writes it: at start and every interval. The
// control plane's sync turns it into the binding's Healthy condition (../sync/pull/heartbeat.ts)
// and never deletes anything because it stopped.
import type { Logger } from "pino";
import { clusterBindingName, pullRefs } from "../api/pull-binding.ts";
import type { KubeClient } from "../kube/client.ts";

export class Heartbeat {
  readonly #control: KubeClient;
  readonly #namespace: string;
  readonly #seconds: number;
  readonly #version: string;
  readonly #logger: Logger;
  #timer: NodeJS.Timeout | undefined;
  #failing = false;
  #stopped = false;

  constructor(control: KubeClient, namespace: string, seconds: number, version: string, logger: Logger) {
    this.#control = control;
    this.#namespace = namespace;
    this.#seconds = seconds;
    this.#version = version;
    this.#logger = logger;
  }

  start(): void {
    void this.beat();
    this.#timer = setInterval(() => void this.beat(), this.#seconds * 1000);
    this.#timer.unref();
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
  }

  async beat(): Promise<void> {
    try {
      await this.#control.mergePatch(
        pullRefs.clusterBindings,
        clusterBindingName,
        this.#namespace,
        {
          status: {
            lastHeartbeatTime: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
            heartbeatInterval: `${this.#seconds}s`,
            konnectorVersion: this.#version,
          },
        },
        "status",
      );
      if (this.#failing) this.#logger.info("heartbeat written again");
      this.#failing = false;
    } catch (err) {
      // one cut short by stop() is no trouble
      if (!this.#failing && !this.#stopped) this.#logger.warn({ err: String(err) }, "heartbeat not written");
      this.#failing = true;
    }
  }
}
