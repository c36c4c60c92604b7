import type { Delivery } from "../brokers/contract.js";
import type { Outcome } from "../pipeline/outcome.js";
import { CronStats } from "./CronStats.js";
import { QueueStats, type RecentFailure } from "./QueueStats.js";

const RECENT_FAILURES = 50;

/**
 * What the dispatcher tells about messages: one QueueStats per subscription plus the latest
 * failures. Everything is in memory and cheap; Prometheus, the dashboard and `wqueue stats` read it.
 */
export class WorkerObserver {
  readonly queues = new Map<string, QueueStats>();
  readonly recentFailures: RecentFailure[] = [];
  /** One per cron job of the app, by name. */
  readonly crons = new Map<string, CronStats>();

  cron(name: string): CronStats {
    let stats = this.crons.get(name);
    if (!stats) {
      stats = new CronStats(name);
      this.crons.set(name, stats);
    }
    return stats;
  }

  /** The stats of one subscription, created at start-up. */
  queue(id: string, queue: string, broker: string): QueueStats {
    let stats = this.queues.get(id);
    if (!stats) {
      stats = new QueueStats(queue, broker);
      this.queues.set(id, stats);
    }
    return stats;
  }

  failure(delivery: Delivery, outcome: Exclude<Outcome, { type: "ack" }>): void {
    const error = outcome.type === "retry" ? outcome.error : outcome.reason.error;
    this.recentFailures.unshift({
      at: new Date().toISOString(),
      queue: delivery.queue,
      messageId: delivery.id,
      attempt: delivery.attempt,
      outcome: outcome.type === "retry" ? `retry in ${outcome.delayMs} ms` : `dead letter (${outcome.reason.reason})`,
      error: error ? `${error.name}: ${error.message}` : "",
    });
    this.recentFailures.length = Math.min(this.recentFailures.length, RECENT_FAILURES);
  }
}
