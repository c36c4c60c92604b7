import { ConfigError } from "../errors.js";
import type { Logger } from "../log/logger.js";
import type { PreparedHandler } from "../pipeline/run-handler.js";
import { EventLoopRunner } from "./EventLoopRunner.js";
import type { Runner } from "./Runner.js";

/** The concurrency model of one worker process (`--processes` forks several such workers). */
export type RunnerModel = { kind: "event-loop" } | { kind: "threads"; threads: number; tasksPerThread?: number };

/** A prepared subscription, plus the hard timeout only threads can enforce. */
export type RunnerHandler = PreparedHandler & { hardTimeoutMs?: number };

/**
 * Builds the runner of a model. Threads import the app module themselves to find the handlers
 * (closures do not cross threads), so they need its path: the CLI passes what `-a` was given.
 * On the event loop `hardTimeoutMs` is ignored: nothing can preempt a handler on its own thread.
 * The thread pool's module (and piscina with its thread machinery) is imported only when
 * a queue runs on threads, so an event-loop worker never loads it.
 */
export async function createRunner(
  model: RunnerModel,
  handlers: ReadonlyMap<string, RunnerHandler>,
  appModule: string | undefined,
  options: { logger?: Logger; cwd?: string } = {},
): Promise<Runner> {
  switch (model.kind) {
    case "event-loop":
      return new EventLoopRunner(handlers);
    case "threads": {
      if (appModule === undefined) {
        throw new ConfigError("threads need an app module path: run through the CLI or pass appModule");
      }
      const { ThreadPoolRunner } = await import("./ThreadPoolRunner.js");
      return new ThreadPoolRunner({
        threads: model.threads,
        tasksPerThread: model.tasksPerThread,
        appModule,
        subscriptions: handlers,
        logger: options.logger,
        cwd: options.cwd,
      });
    }
    default:
      throw new ConfigError(`unknown concurrency model ${JSON.stringify((model as { kind: unknown }).kind)}`);
  }
}
