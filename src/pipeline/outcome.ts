import type { DeadLetterReason, Delivery } from "../brokers/contract.js";

/**
 * What a handler run came to, as plain data (it crosses thread and process boundaries):
 * the dispatcher turns it into ack, delayed nack or dead letter on the delivery it owns.
 */
export type Outcome =
  | { type: "ack" }
  | { type: "retry"; delayMs: number; error: DeadLetterReason["error"] }
  | { type: "dead"; reason: DeadLetterReason };

export function settle(delivery: Delivery, outcome: Outcome): Promise<void> {
  switch (outcome.type) {
    case "ack":
      return delivery.ack();
    case "retry":
      return delivery.nack({ delayMs: outcome.delayMs });
    case "dead":
      return delivery.deadLetter(outcome.reason);
  }
}
