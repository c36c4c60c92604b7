import type { Admin } from "kafkajs";

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
    if (!/^[\w.-]{1,249}$/.test(topic)) {
      throw new Error(`"${topic}" is not a valid Kafka topic name (letters, digits, ".", "_", "-"; at most 249)`);
    }
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
