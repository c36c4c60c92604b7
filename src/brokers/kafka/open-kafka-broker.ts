import type { Broker } from "../contract.js";
import type { KafkaEventLog } from "./kafka-client.js";
import { KafkaBroker } from "./KafkaBroker.js";
import { parseKafkaUrl } from "./kafka-url.js";

export type { KafkaEventLog } from "./kafka-client.js";

/**
 * `kafka://host:port[,host:port][?group=NAME&partitions=N&rebalanceTimeout=MS]` -> the Kafka adapter
 * (not connected). `group` is the consumer group of every queue read through this URL (default
 * "wqueue"); `partitions` the partition count of topics it creates (default 1; existing topics
 * keep theirs); `rebalanceTimeout` how long a rebalance waits for a member still running records
 * (default 300000: a handler up to about 5 minutes never runs twice at once across a rebalance).
 * A malformed URL is a ConfigError showing only the redacted URL.
 */
export function openKafkaBroker(url: string, onEvent?: KafkaEventLog): Broker {
  return new KafkaBroker(parseKafkaUrl(url), onEvent);
}
