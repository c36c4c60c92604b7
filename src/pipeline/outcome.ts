import type { DeadLetterReason, Delivery } from "../brokers/contract.js";
import { RateLimited, RetryLater, serializeError } from "../errors.js";

/**
 * What a handler run came to, as plain data (it crosses thread and process boundaries):
 * the dispatcher turns it into ack, delayed nack or dead letter on the delivery it owns.
 */
export type Outcome =
  | { type: "ack" }
  | {
      type: "retry";
      delayMs: number;
      error: DeadLetterReason["error"];
      /** RateLimited: give back without counting an attempt, and pause the queue for `delayMs`. */
      pause?: true;
      /** Give back without counting an attempt (a message deferred by its key's rate limit). */
      keepAttempt?: true;
    }
  | { type: "dead"; reason: DeadLetterReason };

/**
 * The handler (or its thread) failed: the raw fact, before any policy. The retry step of the
 * dispatch chain (dispatch/steps/retry-policy.ts) turns it into a retry or a dead letter, so
 * no runner, thread or sandbox needs to know the subscription's retry settings.
 */
export interface Failed {
  type: "failed";
  error: NonNullable<DeadLetterReason["error"]>;
  /** Set when the error was a RetryLater: the delay it asked for. */
  retryInMs?: number;
  /** Set when the error was a RateLimited: how long the queue pauses. */
  pauseMs?: number;
}

/** What a runner answers: an Outcome the handler side already decided, or a Failed to map. */
export type RunResult = Outcome | Failed;

/** An error as a Failed result, keeping what RetryLater asked for (it crosses threads as data). */
export function failed(error: unknown): Failed {
  const serialized = serializeError(error);
  if (serialized.name === RateLimited.name) {
    const pauseMs = (error as RateLimited).pauseMs;
    if (typeof pauseMs === "number" && Number.isFinite(pauseMs) && pauseMs >= 0) return { type: "failed", error: serialized, pauseMs: Math.ceil(pauseMs) };
  }
  const requested = serialized.name === RetryLater.name ? (error as RetryLater).delayMs : undefined;
  return typeof requested === "number" && requested >= 0 ? { type: "failed", error: serialized, retryInMs: requested } : { type: "failed", error: serialized };
}

export function settle(delivery: Delivery, outcome: Outcome): Promise<void> {
  switch (outcome.type) {
    case "ack":
      return delivery.ack();
    case "retry":
      return outcome.pause || outcome.keepAttempt ? delivery.nack({ delayMs: outcome.delayMs, keepAttempt: true }) : delivery.nack({ delayMs: outcome.delayMs });
    case "dead":
      return delivery.deadLetter(outcome.reason);
  }
}
