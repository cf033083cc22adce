// Clients whose writes go out only while this replica may write: while it holds the leader Lease
// (--leader-elect), or while it holds a binding (shards.ts: it serves it, or hands it over while
// its Lease still lists it). A replica that lost its Lease stops serving everything at once, but its
// syncs stop only as the hand-over reaches them; meanwhile a sync busy with an object, or woken
// after a stall by answers that came in the meantime, would still write for a binding another
// replica may already serve. These clients refuse such writes (the reconcile fails, and the
// hand-over stops the sync). The client asks at each write's call and again right before it is
// sent (KubeClient.gated): the wait for the rate limiter in between may outlast the Lease.
import type { KubeClient } from "../../kube/client.ts";

export class NotServedError extends Error {
  constructor(what: string) {
    super(`${what}: not served by this replica any more; nothing written`);
  }
}

/**
 * A view of client whose writes fail with NotServedError unless holds() says yes as each one is
 * sent; reads and watches always go out. Closing it leaves client open.
 */
export function fenced(client: KubeClient, holds: () => boolean, what: string): KubeClient {
  return client.gated(() => (holds() ? undefined : new NotServedError(what)));
}
