import type { Metric, Registry } from "prom-client";
import type { PromClient } from "./prom-client.js";
import { DURATION_BUCKETS } from "./QueueStats.js";
import type { WorkerObserver } from "./WorkerObserver.js";

/** What the metrics read from the running worker at scrape time. */
export interface MetricsSource {
  observer: WorkerObserver;
  /** Messages fetched or running, per subscription id. */
  inFlight(): Map<string, number>;
  /** Waiting messages (or lag) per subscription id, where the broker can tell. */
  backlog(): Promise<Map<string, number>>;
  /** The limit in force of each `concurrency: "auto"` subscription, by id. */
  adaptiveLimits?(): Map<string, number>;
}

/**
 * The Prometheus registry of one worker process. Counters are read from the in-memory QueueStats
 * when scraped, so the per-message cost is a few integer increments plus one histogram observe.
 */
export function createMetricsRegistry(source: MetricsSource, prom: PromClient): Registry {
  const { Counter, Gauge } = prom;
  const registry = new prom.Registry();
  prom.collectDefaultMetrics({ register: registry, prefix: "wqueue_" });
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

  new Counter({
    name: "wqueue_cron_runs_total",
    help: "Cron ticks this worker ran, by outcome (ok, failed); ticks another worker ran are not counted",
    labelNames: ["cron", "outcome"],
    registers: [registry],
    collect() {
      this.reset();
      for (const cron of source.observer.crons.values()) {
        this.inc({ cron: cron.name, outcome: "ok" }, cron.runs - cron.failed);
        this.inc({ cron: cron.name, outcome: "failed" }, cron.failed);
      }
    },
  });

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
    name: "wqueue_concurrency_limit",
    help: 'The in-flight limit a concurrency: "auto" queue has found (across processes: their sum)',
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      const limits = source.adaptiveLimits?.() ?? new Map<string, number>();
      for (const [id, stats] of source.observer.queues) {
        const limit = limits.get(id);
        if (limit !== undefined) this.set({ queue: stats.queue, broker: stats.broker }, limit);
      }
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
  registry.registerMetric(durationHistogram(source) as unknown as Metric);
  return registry;
}

/**
 * The handler duration histogram, built at scrape time from the buckets QueueStats fills: a
 * prom-client Histogram would cost a label lookup and an observe() per message on the hot path.
 */
function durationHistogram(source: MetricsSource) {
  const name = "wqueue_handler_duration_seconds";
  return {
    name,
    help: "Handler run time, decode included",
    type: "histogram",
    aggregator: "sum",
    collect: undefined,
    reset() {},
    async get() {
      const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
      for (const stats of source.observer.queues.values()) {
        const labels = { queue: stats.queue, broker: stats.broker };
        let cumulative = 0;
        DURATION_BUCKETS.forEach((bound, i) => {
          cumulative += stats.durationBuckets[i] as number;
          values.push({ labels: { ...labels, le: bound }, value: cumulative, metricName: `${name}_bucket` });
        });
        cumulative += stats.durationBuckets[DURATION_BUCKETS.length] as number;
        values.push({ labels: { ...labels, le: "+Inf" }, value: cumulative, metricName: `${name}_bucket` });
        values.push({ labels, value: stats.durationSumSeconds, metricName: `${name}_sum` });
        values.push({ labels, value: cumulative, metricName: `${name}_count` });
      }
      return { name, help: this.help, type: this.type, values, aggregator: this.aggregator };
    },
  };
}
