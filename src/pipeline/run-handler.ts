import type { AckPolicy, BodyFormat, Handler, RetryOptions, StandardSchema } from "../app/types.js";
import type { Delivery } from "../brokers/contract.js";
import { DeadLetterNow, DecodeError, RetryLater, serializeError } from "../errors.js";
import { retryDelayMs } from "./backoff.js";
import { decodeBody } from "./decode.js";
import { ACK, HandlerMessage } from "./HandlerMessage.js";
import type { Outcome } from "./outcome.js";

/** A subscription with its options resolved once at start-up, so nothing is merged per message. */
export interface PreparedHandler {
  handler: Handler<never>;
  format: BodyFormat;
  /** undefined: no retries, the first failure dead-letters. */
  retry: Required<RetryOptions> | undefined;
  ackPolicy?: AckPolicy;
  schema?: StandardSchema;
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
  if (prepared.schema) {
    const result = await prepared.schema["~standard"].validate(body);
    if (result.issues) {
      const error = { name: "ValidationError", message: describeIssues(result.issues) };
      return { type: "dead", reason: { reason: "invalid", error } };
    }
    body = result.value;
  }
  const manual = prepared.ackPolicy === "manual";
  const message = new HandlerMessage(body as never, data, signal, manual);
  try {
    const result = prepared.handler(message);
    // Only a returned promise is awaited: a sync handler costs no extra microtask.
    if (typeof (result as PromiseLike<unknown> | undefined)?.then === "function") await result;
    if (!manual) return ACK;
    // Manual policy and no decision: give the message back rather than guess.
    return message.decision ?? { type: "retry", delayMs: 0, error: { name: "NoAckDecision", message: "handler returned without message.ack() or message.nack()" } };
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

function describeIssues(issues: ReadonlyArray<{ message: string; path?: ReadonlyArray<PropertyKey | { key: PropertyKey }> }>): string {
  return issues
    .slice(0, 5)
    .map((issue) => {
      const path = issue.path?.map((part) => String(typeof part === "object" ? part.key : part)).join(".");
      return path ? `${path}: ${issue.message}` : issue.message;
    })
    .join("; ");
}
