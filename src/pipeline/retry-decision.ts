import type { RetryOptions } from "../app/types.js";
import { DeadLetterNow, DecodeError } from "../errors.js";
import { retryDelayMs } from "./backoff.js";
import type { Failed, Outcome } from "./outcome.js";

/**
 * The retry policy: a failure of attempt `attempt` becomes a retry after the backoff (or the delay
 * RetryLater asked for), or a dead letter when the attempts are spent, retries are off
 * (`retry` undefined), or the error asks for it (DeadLetterNow, DecodeError). RateLimited is a
 * retry after its pause that keeps the attempt.
 * Errors are compared by name, not instanceof: the app may import another copy of wqueue.
 */
export function decideFailure(retry: Required<RetryOptions> | undefined, attempt: number, failure: Failed): Outcome {
  const { error } = failure;
  if (error.name === DeadLetterNow.name) return { type: "dead", reason: { reason: "dead-letter-requested", error } };
  if (error.name === DecodeError.name) return { type: "dead", reason: { reason: "undecodable", error } };
  // A pause, not a failure: spends no attempt, so it never dead-letters (retries off included).
  if (failure.pauseMs !== undefined) return { type: "retry", delayMs: failure.pauseMs, error, pause: true };
  if (retry === undefined || attempt >= retry.maxAttempts) return { type: "dead", reason: { reason: "handler-failed", error } };
  return { type: "retry", delayMs: failure.retryInMs ?? retryDelayMs(attempt, retry), error };
}
