import type { Outcome } from "../../pipeline/outcome.js";
import type { Step, StepResult } from "./step.js";

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
  return (next) => (delivery, signal) => {
    const started = performance.now();
    const result = next(delivery, signal);
    // Checked here, not in a shared helper: each step's call site stays monomorphic (hot path).
    return result instanceof Promise ? result.then((done) => count(done, started)) : count(result, started);
  };
}
