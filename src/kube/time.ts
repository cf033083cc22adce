/** A Kubernetes Time (RFC 3339, whole seconds), as in conditions and events. */
export function kubeTime(date: Date = new Date()): string {
  return date.toISOString().replace(/\.\d+Z$/, "Z");
}

/** A Kubernetes MicroTime (RFC 3339, microseconds), as in leases. */
export function kubeMicroTime(date: Date = new Date()): string {
  return date.toISOString().replace("Z", "000Z");
}
