import type { AckPolicy, BatchHandler, BodyFormat, Handler, Middleware, StandardSchema } from "../app/types.js";
import type { Delivery } from "../brokers/contract.js";
import { serializeError } from "../errors.js";
import { decodeBody } from "./decode.js";
import { ACK, HandlerMessage } from "./HandlerMessage.js";
import { failed, type Outcome, type RunResult } from "./outcome.js";

/**
 * A subscription with its options resolved once at start-up, so nothing is merged per message.
 * `handler` is the user's handler inside its middleware (see prepare-handler.ts).
 */
export interface PreparedHandler {
  handler: Handler<never>;
  format: BodyFormat;
  ackPolicy?: AckPolicy;
  schema?: StandardSchema;
  /** A batch subscription: its handler takes Message[], with the middleware run per message (run-batch.ts). */
  batch?: { handler: BatchHandler<never>; middleware: readonly Middleware[] };
}

/** The fields of a delivery a handler run needs (a plain object, so it can cross to a thread). */
export type DeliveryData = Pick<Delivery, "id" | "queue" | "body" | "headers" | "key" | "attempt">;

/**
 * Decodes, validates, runs the handler (inside its middleware), and says what came of it: an
 * Outcome when the message decided it (ack, manual nack, undecodable, invalid), a Failed when the
 * handler threw (the dispatcher's retry step decides retry or dead letter). Never throws, so one
 * bad message cannot stop the worker. Answers synchronously when the handler is sync and there is
 * no async schema to wait for (the common hot path).
 */
export function runHandler(prepared: PreparedHandler, data: DeliveryData, signal: AbortSignal): RunResult | Promise<RunResult> {
  let body: unknown;
  try {
    body = decodeBody(data.body, prepared.format);
  } catch (error) {
    return { type: "dead", reason: { reason: "undecodable", error: serializeError(error) } };
  }
  const schema = prepared.schema;
  if (!schema) return callHandler(prepared, body, data, signal);
  const validated = schema["~standard"].validate(body);
  const afterValidation = (result: Awaited<typeof validated>): RunResult | Promise<RunResult> => {
    if (result.issues) {
      return { type: "dead", reason: { reason: "invalid", error: { name: "ValidationError", message: describeIssues(result.issues) } } };
    }
    return callHandler(prepared, result.value, data, signal);
  };
  return validated instanceof Promise ? validated.then(afterValidation) : afterValidation(validated);
}

function callHandler(prepared: PreparedHandler, body: unknown, data: DeliveryData, signal: AbortSignal): RunResult | Promise<RunResult> {
  const manual = prepared.ackPolicy === "manual";
  const message = new HandlerMessage(body as never, data, signal, manual);
  let result: unknown;
  try {
    result = prepared.handler(message);
  } catch (error) {
    return failed(error);
  }
  if (typeof (result as PromiseLike<unknown> | undefined)?.then === "function") {
    return Promise.resolve(result).then(
      () => decided(message),
      failed,
    );
  }
  return decided(message);
}

/** Success: ack, or under the manual policy what the handler decided (nothing decided: give it back). */
export function decided(message: HandlerMessage): Outcome {
  if (!message.manual) return ACK;
  return message.decision ?? { type: "retry", delayMs: 0, error: { name: "NoAckDecision", message: "handler returned without message.ack() or message.nack()" } };
}

export function describeIssues(issues: ReadonlyArray<{ message: string; path?: ReadonlyArray<PropertyKey | { key: PropertyKey }> }>): string {
  return issues
    .slice(0, 5)
    .map((issue) => {
      const path = issue.path?.map((part) => String(typeof part === "object" ? part.key : part)).join(".");
      return path ? `${path}: ${issue.message}` : issue.message;
    })
    .join("; ");
}
