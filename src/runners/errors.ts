/**
 * Errors a runner reports for a message whose handler could not finish on its own. Each sets
 * `name`: they reach the dead-letter headers and the logs as name, message and stack, and are
 * matched by name like the errors of ../errors.ts.
 */

/** The handler ran past its subscription's `hardTimeoutMs`: its thread was terminated and replaced. */
export class HandlerTimeout extends Error {
  override name = "HandlerTimeout";
}

/** The handler's thread died under it (process.exit, an uncaught exception, out of memory). */
export class HandlerCrashed extends Error {
  override name = "HandlerCrashed";
}

/** The runner closed (forced stop) before the handler finished: the message goes back untouched. */
export class RunnerClosed extends Error {
  override name = "RunnerClosed";
}

/**
 * The message went back before its handler had started: the worker gave it up (shutdown deadline),
 * or the thread it waited on (behind another message of its task) died.
 */
export class HandlerAbandoned extends Error {
  override name = "HandlerAbandoned";
}
