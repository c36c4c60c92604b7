import { DEFAULT_BROKER_NAME } from "../brokers/BrokerSet.js";
import type { Subscription } from "../app/types.js";

/**
 * How a runner names a subscription: `${broker name}/${queue}`, the broker name being "default"
 * when the subscription names none. A thread or child finds its handler again by this id, so the
 * worker and every runner must build it the same way.
 */
export function subscriptionId(subscription: Pick<Subscription, "queue" | "options">): string {
  return `${subscription.options.broker ?? DEFAULT_BROKER_NAME}/${subscription.queue}`;
}
