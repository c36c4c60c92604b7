import type { Broker, BrokerLog } from "../contract.js";
import { NatsBroker } from "./NatsBroker.js";
import { parseNatsUrl } from "./nats-url.js";

/**
 * `nats://[user:password@|token@]host[:port][?stream=&subjectPrefix=&durable=&ackWait=&maxDeliver=
 * &maxAckPending=&tls=]` -> the NATS JetStream adapter (./NatsBroker.ts; options: ./nats-url.ts;
 * queue -> subject, stream and consumer: ./subjects.ts). Throws ConfigError (URL redacted) for a
 * malformed URL or option; opens no connection: connect() does. `log` hears of lost connections,
 * reconnects, failed pulls and stream or consumer changes; its messages carry the redacted URL only.
 *
 * Streams and consumers are created on first use (publish, receive), never by opening the broker.
 *
 * Registered in src/brokers/registry.ts as
 *   "nats:": async (url, log) => (await import("./nats/open-nats-broker.js")).openNatsBroker(url, log),
 */
export function openNatsBroker(url: string, log?: BrokerLog): Broker {
  return new NatsBroker(parseNatsUrl(url), log ?? (() => {}));
}

export { type NatsUrl, parseNatsUrl } from "./nats-url.js";
