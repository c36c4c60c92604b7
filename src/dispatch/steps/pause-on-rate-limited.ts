import type { Step, StepResult } from "./step.js";

/**
 * RateLimited (retry-decision.ts made it a retry with `pause`): pauses the queue through its gate
 * (here at once, on every worker through the coordination store). Sits outside the retry step.
 */
export function pauseOnRateLimited(gate: { pause(ms: number): void }): Step {
  const seen = (result: StepResult): StepResult => {
    if (result?.type === "retry" && result.pause) gate.pause(result.delayMs);
    return result;
  };
  return (next) => (delivery, signal) => {
    const result = next(delivery, signal);
    return result instanceof Promise ? result.then(seen) : seen(result);
  };
}
