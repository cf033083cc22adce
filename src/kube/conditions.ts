// Reading status conditions, the same way for every kind of object.
import type { KubeObject } from "./client.ts";

export type Condition = { type: string; status: string; reason?: string; message?: string };

export function conditionsOf(obj: KubeObject | undefined): Condition[] {
  return (obj?.status as { conditions?: Condition[] } | undefined)?.conditions ?? [];
}

export function conditionOf(obj: KubeObject | undefined, type: string): Condition | undefined {
  return conditionsOf(obj).find((c) => c.type === type);
}

/** A CRD the API server serves already. */
export function isEstablished(crd: KubeObject | undefined): boolean {
  return conditionOf(crd, "Established")?.status === "True";
}
