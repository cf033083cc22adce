// Prometheus metrics of the sync and the konnector, labelled per binding, and their /metrics endpoint.
import { createServer } from "node:http";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { RequestObservation } from "../kube/client.ts";
import { listen } from "../listen.ts";
import type { ExportContext } from "./mirror/export-context.ts";

export class SyncMetrics {
  readonly registry = new Registry();
  readonly #synced = new Counter({
    name: "klutch_bind_objects_synced_total",
    help: "Writes the sync made, by binding, export and direction (spec, status, claim).",
    labelNames: ["binding", "export", "direction"],
    registers: [this.registry],
  });
  readonly #errors = new Counter({
    name: "klutch_bind_sync_errors_total",
    help: "Failed reconciles, by binding and export.",
    labelNames: ["binding", "export"],
    registers: [this.registry],
  });
  readonly #latency = new Histogram({
    name: "klutch_bind_reconcile_seconds",
    help: "Time of one reconcile of one object.",
    labelNames: ["binding", "export"],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly #queueWait = new Histogram({
    name: "klutch_bind_queue_wait_seconds",
    help: "Time a key waited in a bound export's work queue before a worker took it.",
    labelNames: ["binding", "export"],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly #apiRequest = new Histogram({
    name: "klutch_bind_api_request_seconds",
    help: "Time of one API request from sending it to its answer's last byte (watches excluded), by cluster (control plane, or all app clusters), method and status code (0: no answer).",
    labelNames: ["cluster", "method", "code"],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly #apiRequestWait = new Histogram({
    name: "klutch_bind_api_request_wait_seconds",
    help: "Time an API request waited before it was sent (credentials, connection, the client's rate limit), by cluster.",
    labelNames: ["cluster"],
    buckets: [0.0001, 0.001, 0.005, 0.025, 0.1, 0.5, 1, 5, 30],
    registers: [this.registry],
  });
  readonly #bindingReconciles = new Counter({
    name: "klutch_bind_binding_reconciles_total",
    help: "Reconciles of a binding this process finished, failed ones too, by binding (namespace/name).",
    labelNames: ["binding"],
    registers: [this.registry],
  });
  readonly queueDepth = new Gauge({
    name: "klutch_bind_queue_depth",
    help: "Keys waiting in the work queue of a bound export.",
    labelNames: ["binding", "export"],
    registers: [this.registry],
  });

  readonly served = new Gauge({
    name: "klutch_bind_binding_served",
    help: "1 for each binding this replica serves (klutch-bind sync --shards), labelled with the replica.",
    labelNames: ["binding", "replica"],
    registers: [this.registry],
  });

  readonly shardLeaseLost = new Counter({
    name: "klutch_bind_shard_lease_lost_total",
    help: "Times this process lost its shard Lease (klutch-bind sync --shards): it stopped serving everything and joined again.",
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  /** Reports the API requests sent so far, read from the clients at each scrape. */
  countRequests(read: () => { control: number; app: number }): void {
    new Counter({
      name: "klutch_bind_api_requests_total",
      help: "Requests the sync sent to API servers, by cluster (control plane, or all app clusters).",
      labelNames: ["cluster"],
      registers: [this.registry],
      collect() {
        const now = read();
        this.reset();
        this.inc({ cluster: "control" }, now.control);
        this.inc({ cluster: "app" }, now.app);
      },
    });
  }

  /** The observer of one cluster's client (KubeClient.observeRequests). */
  apiRequests(cluster: "control" | "app"): (observation: RequestObservation) => void {
    return ({ method, status, waitedSeconds, seconds }) => {
      this.#apiRequest.observe({ cluster, method, code: String(status) }, seconds);
      this.#apiRequestWait.observe({ cluster }, waitedSeconds);
    };
  }

  static labels(ctx: Pick<ExportContext, "binding" | "ref">) {
    return { binding: `${ctx.binding.namespace}/${ctx.binding.name}`, export: `${ctx.ref.resource}.${ctx.ref.group}` };
  }

  synced(ctx: Pick<ExportContext, "binding" | "ref">, direction: "spec" | "status" | "claim"): void {
    this.#synced.inc({ ...SyncMetrics.labels(ctx), direction });
  }

  reconciledBinding(binding: { namespace: string; name: string }): void {
    this.#bindingReconciles.inc({ binding: `${binding.namespace}/${binding.name}` });
  }

  failed(ctx: Pick<ExportContext, "binding" | "ref">): void {
    this.#errors.inc(SyncMetrics.labels(ctx));
  }

  observe(ctx: Pick<ExportContext, "binding" | "ref">, seconds: number): void {
    this.#latency.observe(SyncMetrics.labels(ctx), seconds);
  }

  waited(ctx: Pick<ExportContext, "binding" | "ref">, seconds: number): void {
    this.#queueWait.observe(SyncMetrics.labels(ctx), seconds);
  }
}

export type MetricsServer = { port: number; stop: () => Promise<void> };

/**
 * Serves metrics at /metrics on address until stop(). beforeScrape sets the gauges read from the
 * running parts (queue depths, what is served) at each scrape, so that a stopped part's labels go.
 */
export async function serveMetrics(
  address: string,
  metrics: SyncMetrics,
  beforeScrape: () => void = () => undefined,
): Promise<MetricsServer> {
  const server = createServer((req, res) => {
    if (req.url !== "/metrics") {
      res.writeHead(404).end();
      return;
    }
    beforeScrape();
    metrics.registry.metrics().then(
      (text) => res.writeHead(200, { "content-type": metrics.registry.contentType }).end(text),
      (err: unknown) => res.writeHead(500).end(String(err)),
    );
  });
  const port = await listen(server, address);
  return { port, stop: () => new Promise((resolve) => server.close(() => resolve())) };
}
