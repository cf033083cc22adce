// A binding's clients on a replica of several (shards.ts): their writes go out only while the
// replica holds the binding (serves it, or hands it over while its Lease still lists it). A replica
// that lost its Lease stops serving everything at once, but its syncs stop only as the hand-over
// reaches them; meanwhile a sync busy with an object, or woken after a stall by answers that came
// in the meantime, would still write for a binding another replica may already serve. These
// clients refuse such writes (the reconcile fails, and the hand-over stops the sync).
import type { KubeClient } from "../kube/client.ts";

/** KubeClient's methods that write (request() writes unless its method is GET). */
const writeMethods = new Set<PropertyKey>([
  "create",
  "update",
  "updateStatus",
  "apply",
  "applyStatus",
  "mergePatch",
  "delete",
]);

export class NotServedError extends Error {
  constructor(what: string) {
    super(`${what}: not served by this replica any more; nothing written`);
  }
}

/** client, whose writes fail with NotServedError unless holds() says yes as each one is sent. */
export function fenced(client: KubeClient, holds: () => boolean, what: string): KubeClient {
  const guard = (method: (...args: unknown[]) => unknown, writes: (args: unknown[]) => boolean) => {
    return (...args: unknown[]): unknown =>
      writes(args) && !holds() ? Promise.reject(new NotServedError(what)) : method.apply(client, args);
  };
  const methods = new Map<PropertyKey, unknown>();
  return new Proxy(client, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== "function") return value;
      let bound = methods.get(prop);
      if (bound === undefined) {
        const method = value as (...args: unknown[]) => unknown;
        if (writeMethods.has(prop)) bound = guard(method, () => true);
        else if (prop === "request") bound = guard(method, (args) => args[0] !== "GET");
        else bound = method.bind(target);
        methods.set(prop, bound);
      }
      return bound;
    },
  });
}
