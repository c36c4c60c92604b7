import { type Broker, MAX_PRIORITY } from "../brokers/contract.js";
import { ConfigError } from "../errors.js";

/** Why a broker kind cannot order a queue by priority, for the error a publish with one gets. */
const WHY_NOT: Record<string, string> = {
  amqp: "the queue is declared without x-max-priority: add ?maxPriority=9 to the amqp:// URL (an existing queue keeps its arguments: see the README's Priorities section for moving to a new one)",
  kafka: "a Kafka topic is a log read in offset order",
  kinesis: "a Kinesis shard is a log read in sequence order",
  nats: "a JetStream stream is read in sequence order",
  sqs: "SQS has no message priorities (use one queue per priority)",
  mqtt: "MQTT delivers in publish order",
  postgres: "not built for the PostgreSQL broker yet",
  "redis-list": "mode=list pops one plain list (use the default reliable mode)",
  "redis-stream": "a stream is read in entry order (use the default reliable mode)",
};

/**
 * The priority a publish asks for, checked: an integer 0..MAX_PRIORITY (higher handled first),
 * 0 when not given. Above 0 only on a broker with `features.priorities`; elsewhere a ConfigError
 * naming the broker and why, before anything is sent (0 is the default everywhere, so it passes).
 */
export function checkedPriority(queue: string, priority: number | undefined, broker: Broker): number | undefined {
  if (priority === undefined) return undefined;
  if (!Number.isInteger(priority) || priority < 0 || priority > MAX_PRIORITY) {
    throw new ConfigError(`publish("${queue}"): priority must be an integer from 0 to ${MAX_PRIORITY} (higher first), not ${priority}`);
  }
  if (priority > 0 && !broker.features.priorities) {
    const why = WHY_NOT[broker.kind] ?? "the broker does not order messages by priority";
    throw new ConfigError(`publish("${queue}"): { priority } needs a broker that orders by it (sqlite://, redis:// reliable lists, amqp://?maxPriority=9), not ${broker.kind} (${broker.url}): ${why}`);
  }
  return priority;
}
