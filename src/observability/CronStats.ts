/** Counters of one cron job on this worker: ticks it ran, ticks another worker had, failures. */
export class CronStats {
  /** Ticks this worker took the lease for and ran (failures included). */
  runs = 0;
  /** Runs whose handler threw. */
  failed = 0;
  /** Ticks another worker had already taken. */
  skipped = 0;
  /** Ticks not run because the coordination store did not answer. */
  missed = 0;

  constructor(readonly name: string) {}
}
