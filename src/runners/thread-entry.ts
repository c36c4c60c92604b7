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
import { loadHandlers } from "./load-handlers.js";
import {
  type AbortNotice,
  type ProbeReply,
  type RunBatchTask,
  type RunTask,
  reviveError,
  type SerializedError,
  STARTED,
  type StartedNote,
  type ThreadReply,
  type ThreadSetup,
  type ThreadTask,
} from "./thread-protocol.js";

const setup = workerData as ThreadSetup;

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
      return failed(failure);
    };
  },
);

async function run(found: Map<string, PreparedHandler>, task: RunTask | RunBatchTask): Promise<RunResult | RunResult[]> {
  const prepared = found.get(task.sub);
  if (!prepared) {
    const error = new AppLoadError(`the thread found no handler for ${task.sub} in ${setup.appModule}`);
    return failed(error);
  }
  const controller = new AbortController();
  const early = task.aborted ?? (earlyAborts.size > 0 ? earlyAborts.get(task.task) : undefined);
  if (early) {
    earlyAborts.delete(task.task);
    controller.abort(reviveError(early));
  }
  running.set(task.task, controller);
  if (task.notify) parentPort?.postMessage({ [STARTED]: task.task } satisfies StartedNote);
  try {
    if (task.kind === "batch") return await runBatch(prepared, task.messages, controller.signal);
    return await runHandler(prepared, task, controller.signal);
  } finally {
    running.delete(task.task);
  }
}
