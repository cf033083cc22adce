// What the two long-running commands, `sync` (control plane) and `konnector` (app cluster), share:
// the flags they both define (one definition each, worded for the command's cluster), their number
// checks, where their kubeconfig comes from, and how they stop and log a forgotten promise.
import { delimiter } from "node:path";
import type { Logger } from "pino";
import {
  inClusterKubeconfig,
  type ParsedKubeconfig,
  readKubeconfigFile,
  readKubeconfigFiles,
} from "../kube/kubeconfig.ts";
import type { FlagDefinitions } from "./help.ts";
import { UsageError } from "./usage.ts";

/** --kubeconfig of a command run in a pod; cluster: whose kubeconfig, as in "the app cluster". */
export function podKubeconfigFlag(cluster: string) {
  return {
    kubeconfig: {
      type: "string",
      value: "FILE",
      description: `${cluster}'s kubeconfig; without it, the files in KUBECONFIG, merged as kubectl does (never ~/.kube/config)`,
      env: "KUBECONFIG",
      defaultText: "the pod's service account",
    },
  } as const satisfies FlagDefinitions;
}

/** --qps and --burst; clients: which clients the rate applies to. */
export function rateFlags(defaults: { qps: string; burst: string }, clients: string) {
  return {
    qps: {
      type: "string",
      default: defaults.qps,
      value: "N",
      description: `requests per second of each client: ${clients}`,
    },
    burst: {
      type: "string",
      default: defaults.burst,
      value: "N",
      description: "requests allowed in a burst above the steady --qps",
    },
  } as const satisfies FlagDefinitions;
}

/** --leader-election-namespace and --lease-duration; leases: which Leases, as in "the Lease" */
export function leaseFlags(leases: { namespaceOf: string; durationOf: string; defaultNamespace: string }) {
  return {
    "leader-election-namespace": {
      type: "string",
      value: "NAMESPACE",
      description: `the namespace of ${leases.namespaceOf}`,
      env: "POD_NAMESPACE",
      defaultText: leases.defaultNamespace,
    },
    "lease-duration": {
      type: "string",
      default: "15",
      value: "SECONDS",
      description: `how long ${leases.durationOf} holds without renewal`,
    },
  } as const satisfies FlagDefinitions;
}

/** --metrics-address and --health-address; health: what the probes say, after "/healthz and /readyz". */
export function endpointFlags(health: string) {
  return {
    "metrics-address": {
      type: "string",
      default: ":8080",
      value: "HOST:PORT",
      description: "where to serve Prometheus metrics (/metrics); empty for none",
    },
    "health-address": {
      type: "string",
      default: ":8081",
      value: "HOST:PORT",
      description: `where to serve /healthz and /readyz${health}; empty for none`,
    },
  } as const satisfies FlagDefinitions;
}

export const debugFlag = {
  debug: {
    type: "boolean",
    short: "d",
    default: false,
    description: "log at debug level, and errors with their stack",
  },
} as const satisfies FlagDefinitions;

/** A flag's value as a whole number above 0, or a UsageError naming the flag. */
export function positive(name: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new UsageError(`--${name} must be a positive whole number, got "${value}"`);
  return n;
}

/** A flag's value as the share of a token's lifetime at which it is renewed: above 0, below 1. */
export function lifetimeShare(name: string, value: string): number {
  const share = Number(value);
  if (!(share > 0 && share < 1)) {
    throw new UsageError(`--${name} must be a share of the token's lifetime between 0 and 1, got "${value}"`);
  }
  return share;
}

/** --kubeconfig, else KUBECONFIG's files, else the pod's service account (never ~/.kube/config). */
export function podKubeconfig(file: string | undefined): ParsedKubeconfig {
  if (file) return readKubeconfigFile(file);
  const env = process.env.KUBECONFIG;
  return env ? readKubeconfigFiles(env.split(delimiter)) : inClusterKubeconfig();
}

/**
 * A promise nobody awaited failed: a bug, logged loudly, but not a reason to stop serving every
 * other tenant or binding (each reconcile already handles its own errors).
 */
export function logUnhandledRejections(logger: Logger): void {
  process.on("unhandledRejection", (err) => {
    logger.error(
      { err: err instanceof Error ? err.message : String(err) },
      "unhandled rejection (a bug; please report it)",
    );
  });
}

export type StopSignals = {
  /** aborted once a stop is asked for */
  readonly signal: AbortSignal;
  /** resolves with what asked for the stop: SIGTERM, SIGINT or a stop(reason) */
  readonly stopped: Promise<string>;
  readonly stop: (reason: string) => void;
};

/** SIGTERM and SIGINT (once each), or stop(reason) from the command itself, end the command. */
export function stopSignals(): StopSignals {
  const stopping = new AbortController();
  let stop: (reason: string) => void = () => undefined;
  const stopped = new Promise<string>((resolve) => {
    stop = resolve;
  });
  process.once("SIGTERM", () => stop("SIGTERM"));
  process.once("SIGINT", () => stop("SIGINT"));
  void stopped.then(() => stopping.abort());
  return { signal: stopping.signal, stopped, stop };
}

/** The last line before stopping: an error when the Lease was lost (lost: why), else info. */
export function logStopping(logger: Logger, signal: string, lost: string | undefined): void {
  logger[lost ? "error" : "info"](
    { signal, reason: lost },
    lost ? "lost leadership: stopping at once" : "shutting down",
  );
}
