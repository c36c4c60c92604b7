import type { Step } from "./step.js";

/**
 * ackPolicy "before" (at-most-once): the message is acked on receipt, then run; whatever the
 * handler does, nothing settles it again (the inner steps still count and log the result).
 */
export const ackBefore: Step = (next) => (delivery, signal) =>
  delivery.ack().then(async () => {
    await next(delivery, signal);
    return undefined;
  });
