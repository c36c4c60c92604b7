import { resolveDefaultBrokerUrl } from "../app/WQueue.js";
import { BrokerSet, DEFAULT_BROKER_NAME } from "../brokers/BrokerSet.js";
import { DEFAULT_BROKER_URL } from "../brokers/registry.js";
import { loadApp } from "../app/load-app.js";

/**
 * The brokers of `wqueue push` and `wqueue dead-letters`, and the name to use. Without `--app`:
 * `--broker` URL, else WQUEUE_BROKER_URL, else SQLite. With `--app`, the module is loaded first,
 * so the adapters it registers (registerBroker) serve these URLs too, and the app's brokers are
 * reachable: `--broker` may then name one of its `brokers` (a URL, Broker object or factory), and
 * without `--broker` the app's default broker is used, as the worker would.
 */
export async function openCliBrokers(flags: { broker?: string; app?: string }): Promise<{ brokers: BrokerSet; name: string }> {
  if (flags.app === undefined) {
    return { brokers: new BrokerSet(flags.broker ?? process.env.WQUEUE_BROKER_URL ?? DEFAULT_BROKER_URL), name: DEFAULT_BROKER_NAME };
  }
  const { app } = await loadApp(flags.app);
  const named = app.options.brokers ?? {};
  if (flags.broker !== undefined && Object.hasOwn(named, flags.broker)) {
    return { brokers: new BrokerSet(resolveDefaultBrokerUrl(app), named), name: flags.broker };
  }
  return { brokers: new BrokerSet(resolveDefaultBrokerUrl(app, flags.broker), named), name: DEFAULT_BROKER_NAME };
}
