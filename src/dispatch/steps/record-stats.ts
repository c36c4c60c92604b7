import type { Outcome } from "../../pipeline/outcome.js";
import { type Step, whenDone } from "./step.js";

/** Where outcomes are counted (QueueStats: metrics, dashboard, `wqueue stats`). */
export interface OutcomeRecorder {
  record(outcome: Outcome, durationMs: number): void;
}

/** Counts each decided outcome with the time the run took (policies inside it included). */
export function recordStats(stats: OutcomeRecorder): Step {
  return (delivery, signal, next) => {
    const started = performance.now();
    return whenDone(next(delivery, signal), (result) => {
      if (result !== undefined && result.type !== "failed") stats.record(result, performance.now() - started);
      return result;
    });
  };
}
