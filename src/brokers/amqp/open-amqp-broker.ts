import type { Broker } from "../contract.js";
import { parseAmqpUrl } from "./amqp-url.js";
import { AmqpBroker } from "./AmqpBroker.js";
import type { AmqpEventLog } from "./AmqpConnection.js";

export type { AmqpEventLog } from "./AmqpConnection.js";

/**
 * `amqp://[user:password@]host[:port][/vhost][?durable=true&queueType=classic]` (and `amqps://`)
 * -> the RabbitMQ adapter (./AmqpBroker.ts). Throws ConfigError (URL redacted) for a malformed
 * URL or option; opens no connection: connect() does. `onEvent` hears of lost connections,
 * reconnects and refused declarations; its messages do not name the broker (the caller, BrokerSet,
 * prefixes its redacted URL once) and never contain the password.
 */
export function openAmqpBroker(url: string, onEvent?: AmqpEventLog): Broker {
  return new AmqpBroker(parseAmqpUrl(url), onEvent ?? (() => {}));
}
