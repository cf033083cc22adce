// The ClusterRoles that aggregate a bound API into the app cluster's admin, edit and view: what the
// sync installs with the API (sync/binding/consumer-crd.ts), and what the binding's account may
// write by name (app-access/rbac.ts).
import type { KubeObject } from "../kube/client.ts";
import { labels, managedByValue } from "./naming.ts";

const roles = {
  admin: ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"],
  edit: ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"],
  view: ["get", "list", "watch"],
} as const;

/** ClusterRoles aggregating the bound API into the app cluster's admin, edit and view. */
export function aggregatedRoles(group: string, plural: string): KubeObject[] {
  return Object.entries(roles).map(([role, verbs]) => ({
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRole",
    metadata: {
      name: `klutch-bind:${plural}.${group}:${role}`,
      labels: { [`rbac.authorization.k8s.io/aggregate-to-${role}`]: "true", [labels.managedBy]: managedByValue },
    },
    rules: [{ apiGroups: [group], resources: [plural], verbs: [...verbs] }],
  }));
}
