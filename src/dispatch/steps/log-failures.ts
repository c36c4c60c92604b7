import type { Delivery } from "../../brokers/contract.js";
import type { Logger } from "../../log/logger.js";
import type { Outcome } from "../../pipeline/outcome.js";
import type { Step, StepResult } from "./step.js";

/** Told about every failure (the dashboard's recent failures). */
export interface FailureObserver {
  failure(delivery: Delivery, outcome: Exclude<Outcome, { type: "ack" }>): void;
}

/** Logs each retry (warn) and dead letter (error) with the error, and tells the observer. */
export function logFailures(logger: Logger, observer: FailureObserver | undefined): Step {
  const log = (result: StepResult, delivery: Delivery): StepResult => {
    if (result === undefined || result.type === "ack" || result.type === "failed") return result;
    observer?.failure(delivery, result);
    const fields = { queue: delivery.queue, messageId: delivery.id, attempt: delivery.attempt };
    if (result.type === "retry") {
      logger.warn({ ...fields, err: result.error, retryInMs: result.delayMs }, "handler failed; will retry");
    } else {
      logger.error({ ...fields, reason: result.reason.reason, err: result.reason.error }, `message dead-lettered (${result.reason.reason})`);
    }
    return result;
  };
  return (next) => (delivery, signal) => {
    const result = next(delivery, signal);
    return result instanceof Promise ? result.then((done) => log(done, delivery)) : log(result, delivery);
  };
}
