import { ConfigError } from "../errors.js";
import type { Broker, BrokerLog } from "./contract.js";
import { parseBrokerUrl, redactUrl } from "./url.js";

/**
 * Broker URL scheme -> adapter. Adapters are imported lazily, so a worker that only uses SQLite
 * never loads the Redis client, and importing an app module loads none of them.
 */
const adapters: Record<string, (url: string, log: BrokerLog) => Promise<Broker>> = {
  "memory:": async (url) => new (await import("./memory/MemoryBroker.js")).MemoryBroker(url),
  "redis:": async (url, log) => (await import("./redis/open-redis-broker.js")).openRedisBroker(url, log),
  "rediss:": async (url, log) => (await import("./redis/open-redis-broker.js")).openRedisBroker(url, log),
  "amqp:": async (url, log) => (await import("./amqp/open-amqp-broker.js")).openAmqpBroker(url, log),
  "amqps:": async (url, log) => (await import("./amqp/open-amqp-broker.js")).openAmqpBroker(url, log),
  "kafka:": async (url, log) => (await import("./kafka/open-kafka-broker.js")).openKafkaBroker(url, log),
  "sqs:": async (url, log) => (await import("./sqs/open-sqs-broker.js")).openSqsBroker(url, log),
  "kinesis:": async (url, log) => (await import("./kinesis/open-kinesis-broker.js")).openKinesisBroker(url, log),
  "nats:": async (url, log) => (await import("./nats/open-nats-broker.js")).openNatsBroker(url, log),
  "postgres:": async (url, log) => new (await import("./postgres/PostgresBroker.js")).PostgresBroker(url, log),
  "postgresql:": async (url, log) => new (await import("./postgres/PostgresBroker.js")).PostgresBroker(url, log),
  "mqtt:": async (url, log) => new (await import("./mqtt/MqttBroker.js")).MqttBroker(url, log),
  "mqtts:": async (url, log) => new (await import("./mqtt/MqttBroker.js")).MqttBroker(url, log),
  "sqlite:": async (url) => new (await import("./sqlite/SqliteBroker.js")).SqliteBroker(url),
};

/** Schemes on the roadmap, so a user gets "not yet" instead of "unknown". */
const planned: string[] = [];

export const DEFAULT_BROKER_URL = "sqlite://wqueue.db";

export function supportedSchemes(): string[] {
  return Object.keys(adapters).map((scheme) => scheme.slice(0, -1));
}

/** Creates (does not connect) the adapter for a URL; a ConfigError for an unknown scheme. */
export async function createBroker(url: string, log: BrokerLog = () => {}): Promise<Broker> {
  const { protocol } = parseBrokerUrl(url);
  const open = adapters[protocol];
  if (open) return open(url, log);
  const known = supportedSchemes().join(", ");
  if (planned.includes(protocol)) {
    throw new ConfigError(`broker ${redactUrl(url)}: ${protocol.slice(0, -1)} is planned but not available yet (available: ${known})`);
  }
  throw new ConfigError(`broker ${redactUrl(url)}: unknown scheme "${protocol.slice(0, -1)}" (available: ${known})`);
}
