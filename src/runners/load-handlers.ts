import { loadApp } from "../app/load-app.js";
import { prepareHandler } from "../pipeline/prepare-handler.js";
import type { PreparedHandler } from "../pipeline/run-handler.js";
import { subscriptionId } from "./subscription-id.js";
import type { ThreadSubscriptionSettings } from "./thread-protocol.js";

/**
 * Imports the app module in this thread or process (the way the CLI does, so `.ts` apps load
 * through tsx) and prepares the handlers of the given subscriptions: closures do not cross
 * threads or processes, the module path and plain settings do. The app's middleware comes with
 * the import, so it runs here beside the handler. Subscriptions the module does not register are
 * left out; callers report them.
 */
export async function loadHandlers(
  appModule: string,
  cwd: string,
  settings: Readonly<Record<string, ThreadSubscriptionSettings>>,
): Promise<Map<string, PreparedHandler>> {
  const { app } = await loadApp(appModule, cwd);
  const found = new Map<string, PreparedHandler>();
  for (const subscription of app.subscriptions) {
    const id = subscriptionId(subscription);
    const wanted = settings[id];
    if (!wanted) continue;
    found.set(id, { ...prepareHandler(app, subscription), format: wanted.format, ackPolicy: wanted.ackPolicy });
  }
  return found;
}
