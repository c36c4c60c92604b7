import type { Outcome } from "../../pipeline/outcome.js";
import { type Step, type StepResult, whenDone } from "./step.js";

/** Where outcomes are counted (QueueStats: metrics, dashboard, `wqueue stats`). */
export interface OutcomeRecorder {
  record(outcome: Outcome, durationMs: number): void;
}

/** Counts each decided outcome with the time the run took (policies inside it included). */
export function recordStats(stats: OutcomeRecorder): Step {
  const count = (result: StepResult, started: number): StepResult => {
    if (result !== undefined && result.type !== "failed") stats.record(result, performance.now() - started);
    return result;
  };
  return (next) => (delivery, signal) => whenDone(next(delivery, signal), count, performance.now());
}
