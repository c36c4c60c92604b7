import type { Consumer as KafkaJsConsumer, Kafka, KafkaMessage, TopicPartitionOffsetAndMetadata } from "kafkajs";
import { GROUP_ASSIGNERS } from "./assigner.js";
import { FETCH_MAX_BYTES } from "./fetch-flow.js";
import { describeKafkaError, type KafkaEventLog } from "./kafka-client.js";
import { gateRejoin, ungateRejoin } from "./rejoin-gate.js";

/** What the member tells its owner (a KafkaConsumer); all called synchronously from kafkajs events. */
export interface MemberEvents {
  /** Before each (re)start: the topic must exist with the URL's partition count. */
  beforeStart(): Promise<void>;
  /** One fetched batch of a partition, in offset order. Must not block: kafkajs waits for it. */
  onBatch(partition: number, messages: KafkaMessage[]): void;
  /** A join finished: the partitions of the topic this member owns from now on. */
  onAssigned(partitions: number[]): void;
  /** A rebalance began: any partition may move once this member rejoins. */
  onRebalancing(): void;
  /**
   * The member rejoins once this settles (rejoin-gate.ts): the time to finish and commit what runs,
   * heartbeats going on meanwhile. Past the rebalance timeout the group goes on without the member.
   */
  beforeRejoin(): Promise<void>;
  /** The kafkajs consumer stopped on an error: it owns nothing any more; it restarts by itself. */
  onLost(error: Error): void;
}

const RESTART_MAX_MS = 10_000;
/** A member that sends no heartbeat for this long is evicted and its partitions reassigned. */
export const SESSION_TIMEOUT_MS = 10_000;

/**
 * One consumer-group member reading one topic: a kafkajs consumer with manual commits, started at
 * the group's committed offsets (earliest when there are none, so messages published before the
 * first worker are not skipped). A consumer that crashes is started again with backoff; the error
 * is kept for the owner's next receive to report (`takeFailure`).
 *
 * Timing: a heartbeat every second and fetches that wait at most 500 ms, so a member notices a
 * rebalance within about a second; a member that dies without leaving is evicted after 10 s. A
 * rebalance gives up every partition; the member rejoins only once `beforeRejoin` settles, so a
 * record running here is finished and committed before any other member can be handed it.
 */
export class GroupMember {
  #consumer: KafkaJsConsumer | undefined;
  #launching: Promise<void> | undefined;
  #failure: Error | undefined;
  #failures = 0;
  #restartTimer: NodeJS.Timeout | undefined;
  #stopped = false;
  /** The member id the coordinator gave the current consumer (its rejoin gate's key). */
  #memberId: string | undefined;

  constructor(
    readonly kafka: Kafka,
    readonly groupId: string,
    readonly topic: string,
    readonly events: MemberEvents,
    readonly log: KafkaEventLog,
    /** The group waits this long for a member to rejoin; a gate holds the rejoin at most about as long. */
    readonly rebalanceTimeoutMs: number,
  ) {}

  start(): void {
    this.#launching ??= this.#launch();
  }

  /** The error that stopped the member since the last call, if any. */
  takeFailure(): Error | undefined {
    const failure = this.#failure;
    this.#failure = undefined;
    return failure;
  }

  pause(partitions: number[]): void {
    this.#call((consumer) => consumer.pause([{ topic: this.topic, partitions }]));
  }

  resume(partitions: number[]): void {
    this.#call((consumer) => consumer.resume([{ topic: this.topic, partitions }]));
  }

  /** Commits in the current generation; does nothing while the member is (re)starting. */
  async commit(offsets: TopicPartitionOffsetAndMetadata[]): Promise<void> {
    await this.#consumer?.commitOffsets(offsets);
  }

  /** Leaves the group (its partitions go to the other members at once) and disconnects. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#restartTimer);
    this.#ungate();
    // A join in progress would complete after the disconnect and leave a ghost member behind.
    await Promise.race([this.#launching, new Promise((resolve) => setTimeout(resolve, 3000).unref())]);
    await this.#consumer?.disconnect().catch(() => {});
  }

  #call(action: (consumer: KafkaJsConsumer) => void): void {
    try {
      if (this.#consumer) action(this.#consumer);
    } catch {
      // Not running (restarting): a fresh consumer starts unpaused at the committed offsets anyway.
    }
  }

  async #launch(): Promise<void> {
    const consumer = this.kafka.consumer({
      groupId: this.groupId,
      partitionAssigners: GROUP_ASSIGNERS,
      sessionTimeout: SESSION_TIMEOUT_MS,
      rebalanceTimeout: this.rebalanceTimeoutMs,
      heartbeatInterval: 1000,
      maxWaitTimeInMs: 500,
      maxBytesPerPartition: 1024 * 1024,
      maxBytes: FETCH_MAX_BYTES,
      allowAutoTopicCreation: false,
    });
    this.#consumer = consumer;
    const current = () => this.#consumer === consumer && !this.#stopped;
    consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
      if (!current()) return;
      this.#failures = 0;
      this.#ungate();
      this.#memberId = payload.memberId;
      gateRejoin(payload.memberId, () => this.events.beforeRejoin());
      this.events.onAssigned(payload.memberAssignment[this.topic] ?? []);
    });
    consumer.on(consumer.events.REBALANCING, () => {
      if (current()) this.events.onRebalancing();
    });
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      if (!current()) return;
      this.log("warn", `consumer of ${this.topic} stopped: ${describeKafkaError(payload.error)}`);
      this.events.onLost(payload.error);
      // kafkajs restarts it after retriable errors; after the others, a fresh consumer does.
      if (!payload.restart) this.#restart(consumer, payload.error);
    });
    try {
      await this.events.beforeStart();
      await consumer.connect();
      await consumer.subscribe({ topics: [this.topic], fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: true,
        partitionsConsumedConcurrently: 1,
        eachBatch: async ({ batch }) => {
          if (current()) this.events.onBatch(batch.partition, batch.messages);
        },
      });
    } catch (error) {
      if (!current()) return;
      this.events.onLost(error as Error);
      this.#restart(consumer, error as Error);
    }
  }

  #ungate(): void {
    ungateRejoin(this.#memberId);
    this.#memberId = undefined;
  }

  #restart(consumer: KafkaJsConsumer, error: Error): void {
    this.#failure = error;
    this.#ungate();
    void consumer.disconnect().catch(() => {});
    if (this.#stopped) return;
    this.#failures += 1;
    const delay = Math.min(RESTART_MAX_MS, 250 * 2 ** this.#failures);
    this.#restartTimer = setTimeout(() => {
      this.#launching = this.#launch();
    }, delay);
  }
}
