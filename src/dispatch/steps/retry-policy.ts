import type { RetryOptions } from "../../app/types.js";
import { decideFailure } from "../../pipeline/retry-decision.js";
import type { Delivery } from "../../brokers/contract.js";
import type { Step, StepResult } from "./step.js";

/**
 * Turns a raw failure from the steps inside (the handler threw, its thread crashed or ran past its
 * hard timeout, the soft timeout fired) into a retry with backoff or a dead letter, per the
 * subscription's retry settings (`undefined`: the first failure dead-letters). The only place
 * that policy lives: runners, threads and the sandbox report failures, they do not judge them.
 */
export function retryPolicy(retry: Required<RetryOptions> | undefined): Step {
  const judge = (result: StepResult, delivery: Delivery): StepResult =>
    result?.type === "failed" ? decideFailure(retry, delivery.attempt, result) : result;
  return (next) => (delivery, signal) => {
    const result = next(delivery, signal);
    return result instanceof Promise ? result.then((done) => judge(done, delivery)) : judge(result, delivery);
  };
}
