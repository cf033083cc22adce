// The pull bindings' part of `klutch-bind status`: a second table below the push bindings' (which
// stays as it was, for scripts that parse it), one row per cluster namespace the person may read,
// with the Healthy condition the sync derives from the konnector's heartbeat, how long ago that
// heartbeat was, the konnector's version and the exports. Silence shows as Healthy False; status
// only reads.
import type { PullBindingView } from "../bind/pull-binding-view.ts";
import { table } from "./table.ts";

/** a duration as kubectl-like text: 45s, 3m12s, 2h5m, 3d4h */
export function duration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86_400)}d${Math.floor((s % 86_400) / 3600)}h`;
}

function lastHeartbeat(view: PullBindingView, now: number): string {
  if ("invalid" in view.heartbeat) return "invalid";
  const at = view.heartbeat.lastHeartbeatTime;
  if (at === undefined) return "never";
  const t = Date.parse(at);
  if (Number.isNaN(t)) return "invalid";
  return t > now ? `in ${duration(t - now)}` : `${duration(now - t)} ago`;
}

function exportsCell(view: PullBindingView): string {
  const e = view.exports;
  if (e.state === "refused") return "(not readable)";
  if (e.state === "failed") return "(unreadable)";
  const listed = e.items.map((x) => x.api).join(",") || "-";
  return e.more ? `${listed},+${e.more} more` : listed;
}

/** The pull bindings' table and, below it, why each unhealthy one is so. */
export function pullStatus(views: readonly PullBindingView[], more: number, now: number): string {
  const rows = views.map((v) => [
    v.namespace,
    v.healthy ? `${v.healthy.status} ${v.healthy.reason ?? ""}`.trimEnd() : "Unknown",
    lastHeartbeat(v, now),
    ("invalid" in v.heartbeat ? undefined : v.heartbeat.konnectorVersion) ?? "-",
    exportsCell(v),
  ]);
  let out = table(["PULL BINDING", "HEALTHY", "LAST HEARTBEAT", "KONNECTOR", "EXPORTS"], rows);
  if (more > 0) out += `(${more} more cluster namespaces not shown)\n`;
  for (const v of views) {
    if (v.deleting) out += `\n${v.namespace} (pull): being deleted\n`;
    if (v.healthy && v.healthy.status !== "True" && v.healthy.message) {
      out += `\n${v.namespace} (pull): ${v.healthy.message}\n`;
    } else if ("invalid" in v.heartbeat) {
      out += `\n${v.namespace} (pull): ${v.heartbeat.invalid}\n`;
    }
  }
  return out;
}
