import type { BodyFormat, Handler, Message, RetryOptions } from "../app/types.js";
import type { Delivery } from "../brokers/contract.js";
import { DeadLetterNow, DecodeError, RetryLater, serializeError } from "../errors.js";
import { retryDelayMs } from "./backoff.js";
import { decodeBody } from "./decode.js";
import type { Outcome } from "./outcome.js";

/** A subscription with its options resolved once at start-up, so nothing is merged per message. */
export interface PreparedHandler {
  handler: Handler<never>;
  format: BodyFormat;
  /** undefined: no retries, the first failure dead-letters. */
  retry: Required<RetryOptions> | undefined;
}

/** The fields of a delivery a handler run needs (a plain object, so it can cross to a thread). */
export type DeliveryData = Pick<Delivery, "id" | "queue" | "body" | "headers" | "key" | "attempt">;

/**
 * Decodes, runs the handler, and says what should happen to the message. Never throws: every
 * failure becomes an Outcome, so one bad message cannot stop the worker.
 */
export async function runHandler(prepared: PreparedHandler, data: DeliveryData, signal: AbortSignal): Promise<Outcome> {
  let body: unknown;
  try {
    body = decodeBody(data.body, prepared.format);
  } catch (error) {
    return { type: "dead", reason: { reason: "undecodable", error: serializeError(error) } };
  }
  const message: Message<never> = {
    body: body as never,
    raw: data.body,
    headers: data.headers,
    id: data.id,
    queue: data.queue,
    attempt: data.attempt,
    key: data.key,
    signal,
  };
  try {
    await prepared.handler(message);
    return { type: "ack" };
  } catch (error) {
    return failureOutcome(prepared, data.attempt, error);
  }
}

export function failureOutcome(prepared: PreparedHandler, attempt: number, error: unknown): Outcome {
  const serialized = serializeError(error);
  // Compared by name, not instanceof: the app may import another copy of wqueue than the worker.
  if (serialized.name === DeadLetterNow.name) return { type: "dead", reason: { reason: "dead-letter-requested", error: serialized } };
  if (serialized.name === DecodeError.name) return { type: "dead", reason: { reason: "undecodable", error: serialized } };
  const retry = prepared.retry;
  if (retry === undefined || attempt >= retry.maxAttempts) {
    return { type: "dead", reason: { reason: "handler-failed", error: serialized } };
  }
  const requested = serialized.name === RetryLater.name ? (error as RetryLater).delayMs : undefined;
  const delayMs = typeof requested === "number" && requested >= 0 ? requested : retryDelayMs(attempt, retry);
  return { type: "retry", delayMs, error: serialized };
}
