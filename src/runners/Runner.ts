import type { DeliveryData } from "../pipeline/run-handler.js";
import type { Outcome } from "../pipeline/outcome.js";

/**
 * A concurrency model: where and how a handler runs. The dispatcher keeps the delivery (and so the
 * broker connection and the ack) in its own thread and gives the runner only the message's data;
 * the runner answers with an Outcome. `run` never rejects for a handler's failure.
 */
export interface Runner {
  /** "event-loop", "threads", "processes": shown in the ready line. */
  readonly model: string;
  run(subscriptionId: string, data: DeliveryData, signal: AbortSignal): Promise<Outcome>;
  close(): Promise<void>;
}
