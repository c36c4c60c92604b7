import type { CronJob } from "../app/types.js";
import type { CoordinationStore } from "../coordination/CoordinationStore.js";
import { ConfigError, serializeError } from "../errors.js";
import type { Logger } from "../log/logger.js";
import type { WorkerObserver } from "../observability/WorkerObserver.js";
import { loadCroner } from "./load-croner.js";

/**
 * How long a tick's lease lives: longer than any clock difference between the app's hosts, so a
 * host whose clock runs behind finds the lease of a tick another host already ran.
 */
const TICK_LEASE_MS = 10 * 60_000;
/** setTimeout's longest delay; a tick further away is reached in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface Scheduled {
  job: CronJob;
  nextRun(after: Date): Date | null;
  timer?: NodeJS.Timeout;
}

/**
 * Runs the app's cron jobs on this worker. Every worker schedules every job; at each tick each one
 * asks the coordination store for the lease of (app, job, tick time), and only the one that gets it
 * runs the handler, so a tick runs once across all processes and hosts.
 *
 * Policies: a tick missed while no worker ran (or while this one's event loop was blocked past it)
 * is not replayed: the next tick due runs. Ticks do not wait for each other: a handler that runs
 * longer than the interval overlaps the next tick. A handler's error is logged and counted, never
 * stops the worker. When the store does not answer, the tick is skipped and logged (running it
 * without the lease could run it on every worker).
 */
export class CronScheduler {
  readonly #scheduled: Scheduled[] = [];
  readonly #running = new Set<Promise<void>>();
  readonly #stop = new AbortController();

  constructor(
    readonly jobs: CronJob[],
    readonly store: CoordinationStore,
    /** Scopes the leases: two apps sharing a store may both have a job named "tick". */
    readonly app: string,
    readonly logger: Logger,
    readonly observer: WorkerObserver,
  ) {}

  /** Parses every expression (one ConfigError for a bad one, naming the job) and arms the timers. */
  async start(): Promise<void> {
    const { Cron } = await loadCroner();
    for (const job of this.jobs) {
      let cron: InstanceType<typeof Cron>;
      try {
        cron = new Cron(job.expression, { timezone: job.options.timezone, paused: true });
        cron.nextRun(); // an unknown time zone fails here, not at construction
      } catch (error) {
        throw new ConfigError(`app.cron("${job.name}", "${job.expression}"): ${(error as Error).message}`);
      }
      this.observer.cron(job.name);
      this.#scheduled.push({ job, nextRun: (after) => cron.nextRun(after) });
    }
    for (const scheduled of this.#scheduled) this.#arm(scheduled, new Date());
  }

  /** Stops scheduling, aborts running handlers' signals after `graceMs`, and waits for them. */
  async stop(graceMs: number): Promise<void> {
    for (const scheduled of this.#scheduled) clearTimeout(scheduled.timer);
    this.#scheduled.length = 0;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
    });
    await Promise.race([Promise.allSettled([...this.#running]), deadline]);
    clearTimeout(timer);
    this.#stop.abort(new Error("worker stopped"));
  }

  /** Arms the timer of the first tick after `after` (never one already past: not replayed). */
  #arm(scheduled: Scheduled, after: Date): void {
    if (this.#stop.signal.aborted || !this.#scheduled.includes(scheduled)) return;
    const next = scheduled.nextRun(new Date(Math.max(after.getTime(), Date.now())));
    if (next === null) return; // a schedule with no future tick (e.g. a past year)
    const wait = next.getTime() - Date.now();
    if (wait > MAX_TIMER_MS) {
      scheduled.timer = setTimeout(() => this.#arm(scheduled, after), MAX_TIMER_MS);
      return;
    }
    scheduled.timer = setTimeout(() => {
      this.#arm(scheduled, next);
      this.#tick(scheduled.job, next);
    }, Math.max(0, wait));
  }

  #tick(job: CronJob, scheduledAt: Date): void {
    const run = this.#run(job, scheduledAt).finally(() => this.#running.delete(run));
    this.#running.add(run);
  }

  async #run(job: CronJob, scheduledAt: Date): Promise<void> {
    const stats = this.observer.cron(job.name);
    const log = { cron: job.name, scheduledAt: scheduledAt.toISOString() };
    let mine: boolean;
    try {
      mine = await this.store.claim(`cron:${this.app}:${job.name}:${scheduledAt.getTime()}`, TICK_LEASE_MS);
    } catch (error) {
      stats.missed += 1;
      this.logger.warn({ ...log, err: serializeError(error) }, `cron ${job.name}: tick skipped, the coordination store ${this.store.url} did not answer`);
      return;
    }
    if (!mine) {
      stats.skipped += 1;
      return;
    }
    stats.runs += 1;
    const started = Date.now();
    try {
      await job.handler({ name: job.name, scheduledAt, signal: this.#stop.signal });
      this.logger.debug({ ...log, durationMs: Date.now() - started }, `cron ${job.name} ran`);
    } catch (error) {
      stats.failed += 1;
      this.logger.error({ ...log, err: serializeError(error) }, `cron ${job.name} failed`);
    }
  }
}
