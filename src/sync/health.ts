// /healthz and /readyz of the sync process. They judge the process (its control-plane caches, its
// work queue), never an app cluster: one tenant's broken cluster must not restart or unready the
// pod that serves every tenant. A standby waiting for leadership is healthy and ready.
import { createServer } from "node:http";
import { listen } from "../listen.ts";

export type HealthReport = { live: boolean; ready: boolean; detail: string };

export const standby: HealthReport = { live: true, ready: true, detail: "standing by for leadership" };

export type HealthServer = { port: number; stop: () => Promise<void> };

/** Serves report() until stop(); report is asked at every probe. */
export async function serveHealth(address: string, report: () => HealthReport): Promise<HealthServer> {
  const server = createServer((req, res) => {
    const now = report();
    if (req.url === "/healthz") res.writeHead(now.live ? 200 : 503).end(now.live ? "ok" : now.detail);
    else if (req.url === "/readyz") res.writeHead(now.ready ? 200 : 503).end(now.ready ? "ok" : now.detail);
    else res.writeHead(404).end();
  });
  const port = await listen(server, address);
  return { port, stop: () => new Promise((resolve) => server.close(() => resolve())) };
}
