import { HandlerTimeout } from "../../runners/errors.js";
import { failed } from "../../pipeline/outcome.js";
import type { StepResult, Step } from "./step.js";

/**
 * `timeoutMs`: past it, message.signal aborts and the run answers a HandlerTimeout failure (the
 * retry step maps it), freeing the slot even if the handler never returns. The handler's signal
 * also aborts at the shutdown deadline, as without a timeout.
 */
export function softTimeout(timeoutMs: number): Step {
  return (next) => (delivery, deadline) => {
    const controller = new AbortController();
    const onDeadline = () => controller.abort(deadline.reason);
    deadline.addEventListener("abort", onDeadline, { once: true });
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<StepResult>((resolve) => {
      timer = setTimeout(() => {
        const error = new HandlerTimeout(`handler still running after ${timeoutMs} ms`);
        controller.abort(error);
        resolve(failed(error));
      }, timeoutMs);
    });
    return Promise.race([Promise.resolve(next(delivery, controller.signal)), timedOut]).finally(() => {
      clearTimeout(timer);
      deadline.removeEventListener("abort", onDeadline);
    });
  };
}
