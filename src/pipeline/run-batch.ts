import type { BatchResult, Handler } from "../app/types.js";
import { serializeError } from "../errors.js";
import { withMiddleware } from "./compose-middleware.js";
import { decodeBody } from "./decode.js";
import { HandlerMessage } from "./HandlerMessage.js";
import { failed, type Outcome, type RunResult } from "./outcome.js";
import { type DeliveryData, decided, describeIssues, type PreparedHandler, runHandler } from "./run-handler.js";

/**
 * Runs a batch subscription's handler once on a batch, and says what came of each message, in the
 * order given (plain data, so it crosses threads):
 *
 * - each message is decoded and validated alone: one that is undecodable or fails its schema is
 *   dead-lettered alone and never reaches the handler;
 * - the handler gets the rest as `Message[]`. Returning `{ failed: [{ message, error }] }` fails
 *   exactly those (the retry step retries or dead-letters each on its own); the others are acked
 *   (or, with ackPolicy "manual", get what the handler decided for each). A thrown error fails
 *   every message that reached the handler. A result that names a message not in the batch fails
 *   the batch with InvalidBatchResult (retried like a throw: nothing is lost);
 * - middleware (`app.use`, then the queue's) runs per message, around that message's share of the
 *   one handler call: each message's chain runs up to `await next()`, the handler runs once every
 *   chain has reached next() or ended without it, and each next() then resolves, or throws that
 *   message's own error, so logging, metrics and error mapping (RetryLater, DeadLetterNow) see
 *   one message as they do without batches. A chain that ends without next() skips its message
 *   (acked), one that throws before next() fails its message alone.
 *
 * `signal` is the batch's: it aborts when the worker gives the batch up. Never rejects.
 */
export async function runBatch(prepared: PreparedHandler, batch: readonly DeliveryData[], signal: AbortSignal): Promise<RunResult[]> {
  const results: RunResult[] = new Array(batch.length);
  const messages: HandlerMessage[] = [];
  const at: number[] = [];
  const manual = prepared.ackPolicy === "manual";
  const bodies = batch.map((data) => decodeAndValidate(prepared, data));
  const settledBodies = bodies.some((body) => body instanceof Promise) ? await Promise.all(bodies) : (bodies as Checked[]);
  settledBodies.forEach((checked, i) => {
    if ("outcome" in checked) results[i] = checked.outcome;
    else {
      messages.push(new HandlerMessage(checked.body as never, batch[i] as DeliveryData, signal, manual));
      at.push(i);
    }
  });
  if (messages.length === 0) return results;
  const handled = prepared.batch?.middleware.length ? await throughMiddleware(prepared, messages) : await callOnce(prepared, messages);
  handled.forEach((result, j) => {
    results[at[j] as number] = result;
  });
  return results;
}

/** One message alone (a suspect in the sandbox, or a runner asked for one): a batch of one where the subscription batches. */
export function runAlone(prepared: PreparedHandler, data: DeliveryData, signal: AbortSignal): RunResult | Promise<RunResult> {
  if (!prepared.batch) return runHandler(prepared, data, signal);
  return runBatch(prepared, [data], signal).then((results) => results[0] as RunResult);
}

type Checked = { body: unknown } | { outcome: Outcome };

function decodeAndValidate(prepared: PreparedHandler, data: DeliveryData): Checked | Promise<Checked> {
  let body: unknown;
  try {
    body = decodeBody(data.body, prepared.format);
  } catch (error) {
    return { outcome: { type: "dead", reason: { reason: "undecodable", error: serializeError(error) } } };
  }
  const schema = prepared.schema;
  if (!schema) return { body };
  const after = (result: Awaited<ReturnType<typeof schema["~standard"]["validate"]>>): Checked =>
    result.issues
      ? { outcome: { type: "dead", reason: { reason: "invalid", error: { name: "ValidationError", message: describeIssues(result.issues) } } } }
      : { body: result.value };
  const validated = schema["~standard"].validate(body);
  return validated instanceof Promise ? validated.then(after) : after(validated);
}

const NO_ERROR = Symbol("no error");

/**
 * Calls the handler once. Answers, per message, the error to fail it with, or NO_ERROR.
 * Never rejects.
 */
async function handlerErrors(prepared: PreparedHandler, messages: readonly HandlerMessage[]): Promise<unknown[]> {
  const handler = prepared.batch?.handler;
  let returned: unknown;
  try {
    if (!handler) throw new Error("not a batch subscription");
    returned = await handler(messages as HandlerMessage[] as never[]);
  } catch (error) {
    return messages.map(() => error);
  }
  const errors: unknown[] = messages.map(() => NO_ERROR);
  if (returned === undefined || returned === null) return errors;
  const list = (returned as BatchResult).failed;
  if (typeof returned !== "object" || (list !== undefined && !Array.isArray(list))) {
    return messages.map(() => invalidResult(`it returned ${describe(returned)}; return nothing, or { failed: [{ message, error }] }`));
  }
  const index = new Map(messages.map((message, i) => [message as unknown, i]));
  for (const entry of list ?? []) {
    const i = index.get((entry as { message?: unknown } | null)?.message);
    if (i === undefined) {
      return messages.map(() => invalidResult("its result names a message that is not one of this batch's (failed: [{ message, error }] takes the messages it was given)"));
    }
    errors[i] = entry.error ?? new Error("the batch handler reported this message failed");
  }
  return errors;
}

async function callOnce(prepared: PreparedHandler, messages: readonly HandlerMessage[]): Promise<RunResult[]> {
  const errors = await handlerErrors(prepared, messages);
  return messages.map((message, i) => (errors[i] === NO_ERROR ? decided(message) : failed(errors[i])));
}

/** Each message through the middleware; the handler once, when every chain has reached next() or ended. */
async function throughMiddleware(prepared: PreparedHandler, messages: readonly HandlerMessage[]): Promise<RunResult[]> {
  const entered = new Set<HandlerMessage>();
  let ended = 0;
  let release: (errors: Map<HandlerMessage, unknown>) => void = () => {};
  const done = new Promise<Map<HandlerMessage, unknown>>((resolve) => {
    release = resolve;
  });
  const runIfAllThere = () => {
    if (entered.size + ended < messages.length) return;
    const reached = [...entered];
    if (reached.length === 0) return release(new Map());
    void handlerErrors(prepared, reached).then((errors) => release(new Map(reached.map((message, i) => [message, errors[i]]))));
  };
  const inner: Handler<never> = async (message) => {
    entered.add(message as unknown as HandlerMessage);
    runIfAllThere();
    const error = (await done).get(message as unknown as HandlerMessage);
    if (error !== NO_ERROR) throw error;
  };
  const chain = withMiddleware(prepared.batch?.middleware ?? [], inner);
  return Promise.all(
    messages.map(async (message) => {
      let outcome: RunResult;
      try {
        await chain(message as never);
        outcome = decided(message);
      } catch (error) {
        outcome = failed(error);
      }
      if (!entered.has(message)) {
        ended += 1;
        runIfAllThere();
      }
      return outcome;
    }),
  );
}

function invalidResult(why: string): Error {
  const error = new Error(`the batch handler's result is not valid: ${why}`);
  error.name = "InvalidBatchResult";
  return error;
}

function describe(value: unknown): string {
  try {
    return typeof value === "object" ? JSON.stringify(value)?.slice(0, 80) ?? String(value) : `${typeof value} ${String(value)}`;
  } catch {
    return typeof value;
  }
}
