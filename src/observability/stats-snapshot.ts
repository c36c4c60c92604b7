import type { RecentFailure } from "./QueueStats.js";
import type { WorkerView } from "./WorkerView.js";

/** GET /api/stats: what the dashboard and `wqueue stats` show. Totals only; clients derive rates. */
export interface StatsSnapshot {
  time: number;
  pid: number;
  uptimeSeconds: number;
  model: string;
  concurrency: number;
  /** One entry per worker process (one, or the children under --processes). */
  processes: number;
  queues: QueueSnapshot[];
  recentFailures: RecentFailure[];
  /** The app's cron jobs: ticks run here (under --processes: by all children), failed, left to another worker, missed. */
  crons?: CronSnapshot[];
  /** Under --processes: each child, also one that does not answer. */
  children?: ChildSnapshot[];
}

export interface ChildSnapshot {
  index: number;
  pid: number | undefined;
  uptimeSeconds: number | null;
  ready: boolean;
  /** Why not ready, or why it did not answer. */
  problems: string[];
  received: number;
  inFlight: number;
  /** The queues this child has paused. */
  paused: string[];
}

export interface CronSnapshot {
  name: string;
  runs: number;
  failed: number;
  skipped: number;
  missed: number;
}

export interface QueueSnapshot {
  queue: string;
  broker: string;
  received: number;
  succeeded: number;
  failed: number;
  retried: number;
  deadLettered: number;
  inFlight: number;
  backlog: number | null;
  p50Ms: number | null;
  p95Ms: number | null;
  /** Fetching stopped from the dashboard (under --processes: in any child). */
  paused: boolean;
  /** `concurrency: "auto"` only: the limit it has found (under --processes: the children's sum). */
  autoLimit?: number;
}

export async function statsSnapshot(worker: WorkerView): Promise<StatsSnapshot> {
  const inFlight = worker.inFlightBySubscription();
  const backlog = await worker.backlog();
  const paused = worker.pausedSubscriptions();
  const limits = worker.adaptiveLimits?.() ?? new Map<string, number>();
  const queues = [...worker.observer.queues].map(([id, s]) => ({
    queue: s.queue,
    broker: s.broker,
    received: s.received,
    succeeded: s.succeeded,
    failed: s.failed,
    retried: s.retried,
    deadLettered: s.deadLettered,
    inFlight: inFlight.get(id) ?? 0,
    backlog: backlog.get(id) ?? null,
    p50Ms: s.latencyMs(0.5) ?? null,
    p95Ms: s.latencyMs(0.95) ?? null,
    paused: paused.has(id),
    ...(limits.has(id) ? { autoLimit: limits.get(id) } : {}),
  }));
  return {
    time: Date.now(),
    pid: process.pid,
    uptimeSeconds: Math.round(process.uptime()),
    ...worker.model,
    processes: 1,
    queues,
    recentFailures: worker.observer.recentFailures,
    crons: [...worker.observer.crons.values()].map(({ name, runs, failed, skipped, missed }) => ({ name, runs, failed, skipped, missed })),
  };
}
