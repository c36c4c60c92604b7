import type { BatchHandler, Middleware, Subscription } from "../app/types.js";
import { withMiddleware } from "./compose-middleware.js";
import type { PreparedHandler } from "./run-handler.js";

/**
 * A subscription as it runs where its handler runs (the worker's event loop, a worker thread, the
 * suspect sandbox): its handler inside the app's middleware (`app.use`, in registration order)
 * and then the queue's own (`listenEvents(..., { middleware })`), options resolved once. Each of
 * those places imports the app module and calls this, so middleware runs beside its handler.
 */
export function prepareHandler(app: { readonly middleware: readonly Middleware[] }, subscription: Subscription): PreparedHandler {
  const { options } = subscription;
  const middleware = [...app.middleware, ...(options.middleware ?? [])];
  // A batch handler is called once per batch; its middleware runs per message (run-batch.ts).
  const batch = options.batch ? { handler: subscription.handler as unknown as BatchHandler<never>, middleware } : undefined;
  return {
    handler: withMiddleware(middleware, subscription.handler),
    batch,
    format: options.decode ?? "json",
    ackPolicy: options.ackPolicy,
    schema: options.schema,
  };
}
