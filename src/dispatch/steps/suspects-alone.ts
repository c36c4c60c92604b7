import type { Logger } from "../../log/logger.js";
import type { Outcome, RunResult } from "../../pipeline/outcome.js";
import type { DeliveryData } from "../../pipeline/run-handler.js";
import type { SuspectSandbox } from "../../runners/SuspectSandbox.js";
import type { Step } from "./step.js";

export interface SuspectOptions {
  /** Subscription id, as the sandbox knows it. */
  id: string;
  queue: string;
  /** A delivery seen more often than this was never finished: a worker died each time it held it. */
  maxDeliveries: number;
  /** Where suspects run, isolated from this worker; without one the verdict is given at once. */
  sandbox: SuspectSandbox | undefined;
  logger: Logger;
}

/** The verdict on a message whose handler kept killing its process. */
function poison(message: string): Outcome {
  return { type: "dead", reason: { reason: "poison", error: { name: "PoisonMessage", message } } };
}

/**
 * The poison policy. A *suspect* (delivered more than `maxDeliveries` times without a result, so a
 * worker died each time it held it) may be poison itself or only bad company (prefetched beside a
 * poison message, or its ack lost with the worker). Instead of the runner it runs alone in the
 * sandbox: its outcome there stands (a success acks it); only a message that kills the sandbox
 * `maxDeliveries` times is dead-lettered as poison. Without a sandbox (a Worker built without an
 * app module path) the verdict is given at once. Other messages go on to the runner.
 */
export function suspectsAlone(options: SuspectOptions): Step {
  const { id, queue, maxDeliveries, sandbox, logger } = options;
  const runSuspect = async (delivery: DeliveryData, signal: AbortSignal): Promise<RunResult> => {
    const history = `delivered ${delivery.attempt} times without a result`;
    if (!sandbox) return poison(`${history}: its handler kept killing the worker`);
    logger.warn({ queue, messageId: delivery.id, attempt: delivery.attempt }, `suspect message (${history}): running it alone in the suspect sandbox`);
    for (let deaths = 1; ; deaths++) {
      const result = await sandbox.run(id, delivery, signal);
      if (result.kind === "done") return result.outcome;
      if (result.kind === "unavailable") return poison(`${history}, and the suspect sandbox could not run it: ${result.why}`);
      // Given up meanwhile (timeout, shutdown): back to the broker, no verdict.
      if (signal.aborted) return { type: "retry", delayMs: 0, error: { name: "HandlerAbandoned", message: "the worker gave the message up" } };
      if (deaths >= maxDeliveries) return poison(`${history}, then it killed the suspect sandbox ${deaths} times running alone there (last: ${result.why})`);
      logger.warn({ queue, messageId: delivery.id, deaths, of: maxDeliveries }, `suspect message killed the suspect sandbox (${result.why}); running it again`);
    }
  };
  return (next) => (delivery, signal) => (delivery.attempt > maxDeliveries ? runSuspect(delivery, signal) : next(delivery, signal));
}
