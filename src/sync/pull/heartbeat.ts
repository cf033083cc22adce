// Whether a pull binding's konnector is alive, from the heartbeat it writes into its ClusterBinding's
// status (lastHeartbeatTime, heartbeatInterval): the Healthy condition, as klutch-bind's backend
// words it, and when to look again. Silence only turns the condition False: nothing is deleted.

import { type Heartbeat, parseGoDuration } from "../../api/pull-binding.ts";
import type { Condition } from "../../kube/conditions.ts";

/** a heartbeat dated this far in the future is not believed (clocks differ by less) */
export const maxDriftMs = 10_000;

/**
 * the longest recheck asked for: the konnector writes both times, and a timer over 2^31-1 ms fires
 * after 1 ms (a heartbeat dated in the year 9999 spun the reconcile); the resync looks sooner anyway
 */
export const maxRecheckMs = 10 * 60_000;

export type Health = {
  condition: Condition /** look again after this many ms, when the verdict may change */;
  recheckMs?: number;
};

export function heartbeatHealth(heartbeat: Heartbeat, now: number): Health {
  const health = verdict(heartbeat, now);
  if (health.recheckMs === undefined) return health;
  return { ...health, recheckMs: Math.min(Math.max(health.recheckMs, 1), maxRecheckMs) };
}

/** a value the konnector wrote, as a message shows it: at most 80 characters (a status holds its message and the field) */
function shown(value: string): string {
  return value.length > 80 ? `${value.slice(0, 77)}...` : value;
}

function verdict(heartbeat: Heartbeat, now: number): Health {
  const at = heartbeat.lastHeartbeatTime;
  if (at === undefined) {
    return {
      condition: {
        type: "Healthy",
        status: "Unknown",
        reason: "FirstHeartbeatPending",
        message: "the konnector has not written a heartbeat yet",
      },
    };
  }
  const last = Date.parse(at);
  if (Number.isNaN(last)) {
    return {
      condition: {
        type: "Healthy",
        status: "False",
        reason: "HeartbeatInvalid",
        message: `status.lastHeartbeatTime ${JSON.stringify(shown(at))} is not a time`,
      },
    };
  }
  let interval: number | undefined;
  try {
    interval =
      heartbeat.heartbeatInterval === undefined
        ? undefined
        : parseGoDuration(heartbeat.heartbeatInterval, "status.heartbeatInterval");
  } catch (err) {
    return {
      condition: {
        type: "Healthy",
        status: "False",
        reason: "HeartbeatIntervalMissing",
        message: String((err as Error).message),
      },
    };
  }
  if (interval === undefined || interval <= 0) {
    return {
      condition: {
        type: "Healthy",
        status: "False",
        reason: "HeartbeatIntervalMissing",
        message: "the konnector wrote a heartbeat without status.heartbeatInterval",
      },
    };
  }
  const ago = now - last;
  if (ago < -maxDriftMs) {
    return {
      condition: {
        type: "Healthy",
        status: "False",
        reason: "HeartbeatTimeDrift",
        message: `the last heartbeat is dated ${Math.round(-ago / 1000)}s in the future: the konnector's clock is off`,
      },
      recheckMs: -ago - maxDriftMs + 1,
    };
  }
  const deadline = 2 * interval;
  if (ago > deadline) {
    return {
      condition: {
        type: "Healthy",
        status: "False",
        reason: "HeartbeatTimeout",
        message: `no heartbeat since ${shown(at)}, more than twice the konnector's interval (${shown(heartbeat.heartbeatInterval ?? "")}); nothing is deleted because of it`,
      },
    };
  }
  return {
    condition: {
      type: "Healthy",
      status: "True",
      reason: "HeartbeatReceived",
      message: `heartbeats arrive within twice the konnector's interval (${shown(heartbeat.heartbeatInterval ?? "")})`,
    },
    recheckMs: deadline - ago + 1,
  };
}

/** conditions with each of changes in place of the one of its type, lastTransitionTime kept while its status holds */
export function withConditions(
  current: readonly (Condition & { lastTransitionTime?: string })[],
  changes: readonly Condition[],
  now: Date,
): Array<Condition & { lastTransitionTime: string }> {
  const stamp = now.toISOString();
  const kept = current.filter((c) => !changes.some((n) => n.type === c.type));
  const changed = changes.map((c) => {
    const before = current.find((b) => b.type === c.type);
    return { ...c, lastTransitionTime: before?.status === c.status ? (before.lastTransitionTime ?? stamp) : stamp };
  });
  return [...kept.map((c) => ({ ...c, lastTransitionTime: c.lastTransitionTime ?? stamp })), ...changed];
}

/** the conditions differ in anything but lastTransitionTime */
export function sameConditions(a: readonly Condition[], b: readonly Condition[]): boolean {
  const key = (list: readonly Condition[]) =>
    JSON.stringify(
      [...list]
        .map((c) => [c.type, c.status, c.reason ?? "", c.message ?? ""])
        .sort((x, y) => String(x[0]).localeCompare(String(y[0]))),
    );
  return key(a) === key(b);
}
