import type { Middleware, Subscription } from "../app/types.js";
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
  return {
    handler: withMiddleware([...app.middleware, ...(options.middleware ?? [])], subscription.handler),
    format: options.decode ?? "json",
    ackPolicy: options.ackPolicy,
    schema: options.schema,
  };
}
