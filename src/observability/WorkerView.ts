import type { DeadLetterTarget } from "../dead-letters/dead-letters.js";
import type { WorkerObserver } from "./WorkerObserver.js";

/**
 * What observability reads from a running worker. Declared here so that observability depends on
 * no worker code; `Worker` implements it structurally. Maps are keyed by subscription id.
 */
export interface WorkerView {
  readonly observer: WorkerObserver;
  readonly model: { model: string; concurrency: number };
  inFlightBySubscription(): Map<string, number>;
  /** Messages waiting per subscription, where the broker can tell. */
  backlog(): Promise<Map<string, number>>;
  readiness(): { ready: boolean; problems: string[] };
  deadLettersOf(queue: string): Promise<DeadLetterTarget | undefined>;
  /** Pauses or resumes fetching on `queue`; how many subscriptions listen on it. */
  setPaused(queue: string, paused: boolean): number;
  pausedSubscriptions(): Set<string>;
  /** The limit in force of each `concurrency: "auto"` subscription. */
  adaptiveLimits?(): Map<string, number>;
}
