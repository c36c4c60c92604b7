/**
 * The script every thread of a ThreadPoolRunner runs. Piscina imports it and calls the default
 * export once per task. On import it starts loading the app module (the same way the CLI does, so
 * `.ts` apps load through tsx) and finds each subscription's handler by its id: closures do not
 * cross threads, the module path does. It never throws for a handler's failure: the reply is a
 * RunResult, errors already serialized (name, message, stack); the worker's retry step decides.
 */
import { BroadcastChannel, parentPort, threadId, workerData } from "node:worker_threads";
import { AppLoadError, serializeError } from "../errors.js";
import type { RunResult } from "../pipeline/outcome.js";
import { failed } from "../pipeline/outcome.js";
import { type PreparedHandler, runHandler } from "../pipeline/run-handler.js";
import { runBatch } from "../pipeline/run-batch.js";
import { HandlerAbandoned } from "./errors.js";
import { loadHandlers } from "./load-handlers.js";
import {
  type AbortNotice,
  type ProbeReply,
  Progress,
  type RunBatchTask,
  type RunItem,
  type RunManyTask,
  reviveError,
  type SerializedError,
  STARTED,
  type StartedNote,
  type ThreadReply,
  type ThreadSetup,
  type ThreadTask,
} from "./thread-protocol.js";

const setup = workerData as ThreadSetup;
const progress = new Int32Array(setup.progress);

/** Controllers of the tasks running on this thread, by task number. */
const running = new Map<number, AbortController>();

/**
 * Aborts for tasks not running here: another thread's, or one of ours whose task message is still
 * on its way (the notice travels on another channel, so it can arrive first). Kept, a bounded
 * number, so such a task starts with its signal aborted.
 */
const earlyAborts = new Map<number, SerializedError>();
const EARLY_ABORTS_KEPT = 10_000;

const aborts = new BroadcastChannel(setup.abortChannel);
aborts.onmessage = (event) => {
  const notice = (event as unknown as { data: AbortNotice }).data;
  for (const task of notice.tasks) {
    const controller = running.get(task);
    if (controller) {
      controller.abort(reviveError(notice.reason));
      continue;
    }
    earlyAborts.set(task, notice.reason);
    if (earlyAborts.size > EARLY_ABORTS_KEPT) earlyAborts.delete(earlyAborts.keys().next().value as number);
  }
};
// The channel must not keep an idle thread alive: piscina decides when threads end.
(aborts as unknown as { unref(): void }).unref();

const handlers = loadHandlers(setup.appModule, setup.cwd, setup.subscriptions);

/**
 * Piscina awaits a default export that is not a function before the thread reports ready, so a
 * thread (a replacement one too) gets no message until the app has loaded. A thread whose load
 * failed still starts, and answers with the error: the runner's start() reports it, and a message
 * that reaches such a thread is retried like any failure.
 */
export default handlers.then(
  (found) =>
    (task: ThreadTask): Promise<ThreadReply> | ProbeReply => {
      if (task.kind === "probe") return { kind: "probe", ids: [...found.keys()], threadId };
      return run(found, task);
    },
  (error: unknown) => {
    const failure = new AppLoadError(`${setup.appModule} failed to load in a worker thread: ${(error as Error)?.message ?? error}`);
    failure.stack = (error as Error)?.stack ?? failure.stack;
    return (task: ThreadTask): ThreadReply => {
      if (task.kind === "probe") return { kind: "probe", error: serializeError(error) };
      return (task.kind === "batch" ? task.messages : task.items).map(() => failed(failure));
    };
  },
);

function run(found: Map<string, PreparedHandler>, task: RunManyTask | RunBatchTask): Promise<RunResult[]> {
  if (task.kind === "batch") return runBatchTask(found, task);
  return runMany(found, task);
}

/** The messages one after another; each result, once known, also noted in its progress cell. */
async function runMany(found: Map<string, PreparedHandler>, task: RunManyTask): Promise<RunResult[]> {
  const results: RunResult[] = new Array(task.items.length);
  for (let i = 0; i < task.items.length; i++) {
    const item = task.items[i] as RunItem;
    // Waiting behind another message of the task is waiting as in the runner's queue: a message
    // given up before it starts is not run. (The first one starts at once, as a single send does.)
    const early = item.aborted ?? (earlyAborts.size > 0 ? earlyAborts.get(item.task) : undefined);
    if (i > 0 && early) {
      earlyAborts.delete(item.task);
      results[i] = abandoned(item.sub);
      Atomics.store(progress, item.slot, Progress.finished);
      continue;
    }
    const pending = runItem(found, item, early, task.notify);
    const result = pending instanceof Promise ? await pending : pending;
    Atomics.store(progress, item.slot, result.type === "ack" ? Progress.acked : Progress.finished);
    results[i] = result;
  }
  return results;
}

function runItem(found: Map<string, PreparedHandler>, item: RunItem, early: SerializedError | undefined, notify: true | undefined): RunResult | Promise<RunResult> {
  const prepared = found.get(item.sub);
  if (!prepared) return failed(new AppLoadError(`the thread found no handler for ${item.sub} in ${setup.appModule}`));
  const controller = new AbortController();
  if (early) {
    earlyAborts.delete(item.task);
    controller.abort(reviveError(early));
  }
  Atomics.store(progress, item.slot, Progress.started);
  if (notify) parentPort?.postMessage({ [STARTED]: item.task } satisfies StartedNote);
  running.set(item.task, controller);
  const result = runHandler(prepared, item, controller.signal); // never throws
  if (!(result instanceof Promise)) {
    running.delete(item.task);
    return result;
  }
  return result.finally(() => running.delete(item.task));
}

async function runBatchTask(found: Map<string, PreparedHandler>, task: RunBatchTask): Promise<RunResult[]> {
  const prepared = found.get(task.sub);
  if (!prepared) return task.messages.map(() => failed(new AppLoadError(`the thread found no handler for ${task.sub} in ${setup.appModule}`)));
  const controller = new AbortController();
  const early = task.aborted ?? (earlyAborts.size > 0 ? earlyAborts.get(task.task) : undefined);
  if (early) {
    earlyAborts.delete(task.task);
    controller.abort(reviveError(early));
  }
  running.set(task.task, controller);
  if (task.notify) parentPort?.postMessage({ [STARTED]: task.task } satisfies StartedNote);
  try {
    return await runBatch(prepared, task.messages, controller.signal);
  } finally {
    running.delete(task.task);
  }
}

/** As the runner answers for a message given up while it waited on the main thread. */
function abandoned(sub: string): RunResult {
  const error = new HandlerAbandoned(`${sub}: the message was given up before its handler started`);
  return { type: "retry", delayMs: 0, error: serializeError(error) };
}
