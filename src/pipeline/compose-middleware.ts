import type { Handler, Middleware } from "../app/types.js";

/**
 * Wraps a handler in user middleware, Koa/Hono style: the first middleware runs outermost, each
 * runs the rest of the chain (and at its end the handler) by awaiting `next()`. Not calling next()
 * skips the handler: the message is acked as handled. An error thrown by the handler or an inner
 * middleware reaches each outer one at its `await next()`, where it may be turned into another
 * (RetryLater, DeadLetterNow). Composed once per subscription; without middleware the handler is
 * returned as it is, so a sync handler stays sync.
 */
export function withMiddleware(middleware: readonly Middleware[], handler: Handler<never>): Handler<never> {
  if (middleware.length === 0) return handler;
  const chain = [...middleware];
  return (message) => {
    let reached = -1;
    const dispatch = async (i: number): Promise<void> => {
      if (i <= reached) throw new Error("a middleware called next() more than once");
      reached = i;
      const current = chain[i];
      if (current === undefined) await handler(message);
      else await current(message, () => dispatch(i + 1));
    };
    return dispatch(0);
  };
}
