import type { StatsSnapshot } from "./stats-snapshot.js";

/** One sample of every queue's totals; the dashboard derives rates from consecutive samples. */
export interface HistorySample {
  time: number;
  queues: { queue: string; broker: string; done: number; p95Ms: number | null }[];
}

export const HISTORY_INTERVAL_MS = 5000;
/** 10 minutes of samples at the default interval. */
export const HISTORY_SAMPLES = 120;

/**
 * Server-side history for the dashboard's charts (GET /api/history), so they are full when the
 * page opens: a ring of the last `size` samples of the observed worker, taken every `intervalMs`.
 * A sample that fails (a child not answering) is skipped, not recorded as zero.
 */
export class StatsHistory {
  readonly #samples: HistorySample[] = [];
  readonly #take: () => Promise<StatsSnapshot>;
  readonly intervalMs: number;
  readonly #size: number;
  #timer: NodeJS.Timeout | undefined;

  constructor(take: () => Promise<StatsSnapshot>, options: { intervalMs?: number; size?: number } = {}) {
    this.#take = take;
    this.intervalMs = options.intervalMs ?? HISTORY_INTERVAL_MS;
    this.#size = options.size ?? HISTORY_SAMPLES;
  }

  start(): void {
    if (this.#timer) return;
    void this.sample();
    this.#timer = setInterval(() => void this.sample(), this.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  async sample(): Promise<void> {
    const stats = await this.#take().catch(() => undefined);
    if (!stats) return;
    this.#samples.push({
      time: stats.time,
      queues: stats.queues.map((q) => ({ queue: q.queue, broker: q.broker, done: q.succeeded + q.failed, p95Ms: q.p95Ms })),
    });
    if (this.#samples.length > this.#size) this.#samples.shift();
  }

  samples(): HistorySample[] {
    return [...this.#samples];
  }
}
