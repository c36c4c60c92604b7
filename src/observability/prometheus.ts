import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { WorkerObserver } from "./WorkerObserver.js";

/** What the metrics read from the running worker at scrape time. */
export interface MetricsSource {
  observer: WorkerObserver;
  /** Messages fetched or running, per subscription id. */
  inFlight(): Map<string, number>;
  /** Waiting messages (or lag) per subscription id, where the broker can tell. */
  backlog(): Promise<Map<string, number>>;
}

/**
 * The Prometheus registry of one worker process. Counters are read from the in-memory QueueStats
 * when scraped, so the per-message cost is a few integer increments plus one histogram observe.
 */
export function createMetricsRegistry(source: MetricsSource): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "wqueue_" });
  const labelNames = ["queue", "broker"] as const;
  const counter = (name: string, help: string, read: (s: import("./QueueStats.js").QueueStats) => number) =>
    new Counter({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        for (const stats of source.observer.queues.values()) this.inc({ queue: stats.queue, broker: stats.broker }, read(stats));
      },
    });
  counter("wqueue_messages_received_total", "Messages received from the broker", (s) => s.received);
  counter("wqueue_messages_succeeded_total", "Messages whose handler succeeded", (s) => s.succeeded);
  counter("wqueue_messages_failed_total", "Handler runs that failed (retried or dead-lettered)", (s) => s.failed);
  counter("wqueue_messages_retried_total", "Messages given back for a later attempt", (s) => s.retried);
  counter("wqueue_messages_dead_lettered_total", "Messages moved to a dead-letter queue", (s) => s.deadLettered);

  new Gauge({
    name: "wqueue_messages_in_flight",
    help: "Messages fetched or being handled",
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      const inFlight = source.inFlight();
      for (const [id, stats] of source.observer.queues) this.set({ queue: stats.queue, broker: stats.broker }, inFlight.get(id) ?? 0);
    },
  });
  new Gauge({
    name: "wqueue_queue_backlog",
    help: "Messages waiting in the queue (or consumer lag), where the broker tells",
    labelNames,
    // Every child process sees the same queue: across processes take the largest, not the sum.
    aggregator: "max",
    registers: [registry],
    async collect() {
      this.reset();
      const backlog = await source.backlog();
      for (const [id, stats] of source.observer.queues) {
        const value = backlog.get(id);
        if (value !== undefined) this.set({ queue: stats.queue, broker: stats.broker }, value);
      }
    },
  });
  const duration = new Histogram({
    name: "wqueue_handler_duration_seconds",
    help: "Handler run time, decode included",
    labelNames,
    buckets: [0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  for (const stats of source.observer.queues.values()) {
    const child = duration.labels({ queue: stats.queue, broker: stats.broker });
    stats.onDuration = (ms) => child.observe(ms / 1000);
  }
  return registry;
}
