import type { Outcome } from "../pipeline/outcome.js";

/** A failure kept for the dashboard: what failed, where, and what happens to it next. */
export interface RecentFailure {
  at: string;
  queue: string;
  messageId: string;
  attempt: number;
  /** "retry" or "dead" (with the dead-letter reason). */
  outcome: string;
  error: string;
}

const LATENCY_WINDOW = 512;

/** Upper bounds (seconds) of the handler duration histogram's buckets. */
export const DURATION_BUCKETS = [0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/**
 * Per-queue counters in plain numbers, updated on every message with no allocation: the source
 * for Prometheus counters (read at scrape time), the dashboard and `wqueue stats`.
 */
export class QueueStats {
  received = 0;
  succeeded = 0;
  failed = 0;
  retried = 0;
  deadLettered = 0;
  /** Handler durations of the latest messages, in ms, as a ring. */
  readonly #latencies = new Float64Array(LATENCY_WINDOW);
  #latencyCount = 0;
  /** Handler durations per bucket of DURATION_BUCKETS (not cumulative), the last for +Inf. */
  readonly durationBuckets = new Float64Array(DURATION_BUCKETS.length + 1);
  durationSumSeconds = 0;

  constructor(
    readonly queue: string,
    readonly broker: string,
  ) {}

  record(outcome: Outcome, durationMs: number): void {
    this.#latencies[this.#latencyCount % LATENCY_WINDOW] = durationMs;
    this.#latencyCount += 1;
    const seconds = durationMs / 1000;
    this.durationSumSeconds += seconds;
    let bucket = 0;
    while (bucket < DURATION_BUCKETS.length && seconds > (DURATION_BUCKETS[bucket] as number)) bucket += 1;
    this.durationBuckets[bucket] = (this.durationBuckets[bucket] ?? 0) + 1;
    if (outcome.type === "ack") {
      this.succeeded += 1;
      return;
    }
    this.failed += 1;
    if (outcome.type === "retry") this.retried += 1;
    else this.deadLettered += 1;
  }

  /** Percentile (0..1) of the recent handler durations, in ms; undefined before any message. */
  latencyMs(percentile: number): number | undefined {
    const n = Math.min(this.#latencyCount, LATENCY_WINDOW);
    if (n === 0) return undefined;
    const sorted = this.#latencies.slice(0, n).sort();
    return sorted[Math.min(n - 1, Math.floor(percentile * n))];
  }
}
