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
 * failure becomes an Outcome, so one bad message cannot stop the worker. Answers synchronously
 * when the handler is sync and there is no async schema to wait for (the common hot path).
 */
export function runHandler(prepared: PreparedHandler, data: DeliveryData, signal: AbortSignal): Outcome | Promise<Outcome> {
  let body: unknown;
  try {
    body = decodeBody(data.body, prepared.format);
  } catch (error) {
    return { type: "dead", reason: { reason: "undecodable", error: serializeError(error) } };
  }
  const schema = prepared.schema;
  if (!schema) return callHandler(prepared, body, data, signal);
  const validated = schema["~standard"].validate(body);
  const afterValidation = (result: Awaited<typeof validated>): Outcome | Promise<Outcome> => {
    if (result.issues) {
      return { type: "dead", reason: { reason: "invalid", error: { name: "ValidationError", message: describeIssues(result.issues) } } };
    }
    return callHandler(prepared, result.value, data, signal);
  };
  return validated instanceof Promise ? validated.then(afterValidation) : afterValidation(validated);
}

function callHandler(prepared: PreparedHandler, body: unknown, data: DeliveryData, signal: AbortSignal): Outcome | Promise<Outcome> {
  const manual = prepared.ackPolicy === "manual";
  const message = new HandlerMessage(body as never, data, signal, manual);
  let result: unknown;
  try {
    result = prepared.handler(message);
  } catch (error) {
    return failureOutcome(prepared, data.attempt, error);
  }
  if (typeof (result as PromiseLike<unknown> | undefined)?.then === "function") {
    return Promise.resolve(result).then(
      () => decided(message),
      (error: unknown) => failureOutcome(prepared, data.attempt, error),
    );
  }
  return decided(message);
}

/** Success: ack, or under the manual policy what the handler decided (nothing decided: give it back). */
function decided(message: HandlerMessage): Outcome {
  if (!message.manual) return ACK;
  return message.decision ?? { type: "retry", delayMs: 0, error: { name: "NoAckDecision", message: "handler returned without message.ack() or message.nack()" } };
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
