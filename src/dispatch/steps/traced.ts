import type { MessageTracer } from "../../observability/tracing.js";
import type { Outcome } from "../../pipeline/outcome.js";
import type { Step } from "./step.js";

/**
 * OpenTelemetry, when installed: each message runs in a consumer span, continuing the producer's
 * trace from its headers. Sits outside the retry step, so the span sees the decided Outcome.
 */
export function traced(tracer: MessageTracer): Step {
  return (next) => (delivery, signal) => tracer.consume(delivery, () => Promise.resolve(next(delivery, signal) as Outcome | Promise<Outcome>));
}
