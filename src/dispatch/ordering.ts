import type { Ordering } from "../app/types.js";
import type { Delivery } from "../brokers/contract.js";

export type OrderingKey = (delivery: Delivery) => string | undefined;

/**
 * Which messages must run one after another. Default: by partition on partitioned brokers (Kafka,
 * Kinesis), none elsewhere. A message without a key runs unordered.
 */
export function orderingKeyOf(ordering: Ordering | undefined, partitioned: boolean): OrderingKey | undefined {
  const chosen = resolvedOrdering(ordering, partitioned);
  if (chosen === "none") return undefined;
  if (chosen === "key") return (delivery) => delivery.key;
  if (chosen === "partition") return (delivery) => delivery.partition;
  if (typeof chosen === "function") return chosen;
  const header = chosen.header;
  return (delivery) => delivery.headers[header];
}

/** The ordering a subscription runs with, its default filled in. */
export function resolvedOrdering(ordering: Ordering | undefined, partitioned: boolean): Ordering {
  return ordering ?? (partitioned ? "partition" : "none");
}
