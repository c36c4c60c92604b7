import type { Admin } from "kafkajs";
import { ConfigError } from "../../errors.js";

/**
 * Refuses a name Kafka would refuse as a topic (its own rule: 1-249 of letters, digits, ".", "_",
 * "-"; not "." or ".."), as a ConfigError naming it: checked when a consumer or publish is made,
 * so a worker with such a queue stops before `ready` instead of retrying for ever.
 */
export function checkTopicName(topic: string, brokerUrl: string): void {
  if (/^[\w.-]{1,249}$/.test(topic) && topic !== "." && topic !== "..") return;
  throw new ConfigError(
    `broker ${brokerUrl}: ${JSON.stringify(topic)} is not a valid Kafka topic name (1-249 letters, digits, ".", "_" or "-")`,
  );
}

/**
 * Creates the topics this broker publishes to or consumes, once each, with the URL's partition
 * count: relying on the broker's auto-creation would give them its `num.partitions` instead.
 * A topic that exists already keeps its partitions. A failed creation is forgotten, so the next
 * publish or consumer start tries again.
 */
export class TopicRegistry {
  readonly #ensured = new Map<string, Promise<void>>();

  constructor(
    readonly admin: () => Promise<Admin>,
    readonly partitions: number,
  ) {}

  ensure(topic: string): Promise<void> {
    let ensured = this.#ensured.get(topic);
    if (!ensured) {
      ensured = this.#create(topic);
      ensured.catch(() => this.#ensured.delete(topic));
      this.#ensured.set(topic, ensured);
    }
    return ensured;
  }

  async #create(topic: string): Promise<void> {
    const admin = await this.admin();
    // Asking first keeps kafkajs from logging a "Topic creation errors" line for every existing topic.
    if ((await admin.listTopics()).includes(topic)) return;
    try {
      // Waits until the new partitions have leaders, so a publish right after does not fail.
      await admin.createTopics({ topics: [{ topic, numPartitions: this.partitions }], waitForLeaders: true });
    } catch (error) {
      // Another broker of this process, or another worker, created it first.
      if (!alreadyExists(error)) throw error;
    }
  }
}

function alreadyExists(error: unknown): boolean {
  const { type, errors } = error as { type?: string; errors?: unknown[] };
  return type === "TOPIC_ALREADY_EXISTS" || (Array.isArray(errors) && errors.some(alreadyExists));
}
