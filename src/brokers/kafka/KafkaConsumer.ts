import type { KafkaMessage } from "kafkajs";
import type { Consumer, DeadLetterReason, Delivery } from "../contract.js";
import { deadLetterHeaders } from "../dead-letter.js";
import { takeRoundRobin } from "../round-robin.js";
import { Wakeup } from "../wakeup.js";
import { decodeDeliveries } from "../delivery-counts.js";
import { KafkaDelivery, type RecordSettler } from "./KafkaDelivery.js";
import type { KafkaBroker } from "./KafkaBroker.js";
import { GroupMember } from "./group-member.js";
import { FetchFlow } from "./fetch-flow.js";
import { describeKafkaError } from "./kafka-client.js";
import { OffsetCommitter } from "./offset-committer.js";
import { type KafkaRecord, PartitionState } from "./partition-state.js";

/** How long close() waits for its last commit before leaving the group anyway. */
const CLOSE_COMMIT_MS = 5000;

/**
 * The receiving side of one queue (topic): a group member fetches into per-partition buffers,
 * receive() hands out of them, settles move each partition's commit point (partition-state.ts),
 * an OffsetCommitter sends those points in batches, and a FetchFlow pauses fetching while the
 * buffer is full. A batch mixes partitions fairly, each in offset order.
 */
export class KafkaConsumer implements Consumer, RecordSettler {
  readonly #states = new Map<number, PartitionState>();
  readonly #wakeup = new Wakeup();
  readonly #member: GroupMember;
  readonly #committer: OffsetCommitter;
  readonly #flow: FetchFlow;
  #turn = 0;
  #closing = false;
  #closed: Promise<void> | undefined;

  constructor(
    readonly broker: KafkaBroker,
    readonly queue: string,
    readonly deadLetterQueue: string,
    maxInFlight: number | undefined,
  ) {
    this.#member = new GroupMember(
      broker.client,
      broker.config.group,
      queue,
      {
        beforeStart: () => broker.topics.ensure(queue),
        onBatch: (partition, messages) => this.#onBatch(partition, messages),
        onAssigned: (partitions) => this.#onAssigned(partitions),
        onRebalancing: () => void this.#committer.flush(),
        onLost: () => this.#revokeAll(),
      },
      broker.log,
    );
    this.#committer = new OffsetCommitter((offsets) => this.#member.commit(offsets), broker.log);
    this.#flow = new FetchFlow(maxInFlight, this.#member);
    this.#member.start();
  }

  async receive(max: number, signal: AbortSignal): Promise<Delivery[]> {
    while (!signal.aborted && !this.#closing) {
      const failure = this.#member.takeFailure();
      if (failure) throw new Error(`kafka ${this.broker.url}: consumer of ${this.queue} failed: ${describeKafkaError(failure)}`);
      const records = await this.#counted(this.#take(Math.max(1, Math.floor(max))));
      if (records.length > 0) return records.map((record) => new KafkaDelivery(this, record));
      await this.#wakeup.wait(signal);
    }
    return [];
  }

  ack(record: KafkaRecord): void {
    if (record.state.revoked || record.done) return;
    record.state.finish(record);
    this.#committer.mark(record.state);
  }

  nack(record: KafkaRecord, delayMs: number): void {
    record.state.retry(record, delayMs);
  }

  async deadLetter(delivery: KafkaDelivery, reason: DeadLetterReason): Promise<void> {
    const { record } = delivery;
    if (record.state.revoked || record.done) return;
    try {
      const headers = deadLetterHeaders(delivery, reason);
      await this.broker.publish(this.deadLetterQueue, [{ body: delivery.body, headers, key: delivery.key }]);
    } catch (error) {
      record.state.retry(record, 1000); // not finished: hand it out again rather than stall the partition
      throw error;
    }
    this.ack(record);
  }

  /** Commits what is finished (and the delivery counts of what is not), then leaves the group. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#closing = true;
      this.#wakeup.notify();
      this.broker.forget(this);
      await Promise.race([this.#committer.flush(), new Promise((resolve) => setTimeout(resolve, CLOSE_COMMIT_MS).unref())]);
      this.#committer.stop();
      this.#revokeAll();
      await this.#member.stop();
    })();
    return this.#closed;
  }

  #take(max: number): KafkaRecord[] {
    const states = [...this.#states.values()];
    this.#turn = (this.#turn + 1) % Math.max(1, states.length);
    const out = takeRoundRobin<PartitionState, KafkaRecord>(
      states,
      max,
      this.#turn,
      (state, upTo, into) => state.take(upTo, into),
      (state) => this.#committer.mark(state), // delivery counts changed: they travel with the next commit
    );
    this.#flow.taken(this.#states);
    return out;
  }

  /**
   * Commits the delivery counts of the records being handed out before they go: one commit for the
   * whole batch, every partition in it, carrying each partition's commit point too. Kafka counts
   * nothing itself: without this, a record whose handler kills the worker at once comes back to the
   * next owner as a first delivery every time, so the poison rule never stops the loop and the
   * records behind it never run. A commit that fails is retried by the committer and the records go
   * out anyway (a stalled consumer is worse than a missed count); those of a partition revoked
   * meanwhile do not (its new owner reads them from the committed offset).
   */
  async #counted(records: KafkaRecord[]): Promise<KafkaRecord[]> {
    if (records.length === 0) return records;
    await this.#committer.flush();
    return records.some((record) => record.state.revoked) ? records.filter((record) => !record.state.revoked) : records;
  }

  #onBatch(partition: number, messages: KafkaMessage[]): void {
    // GROUP_JOIN creates the state before kafkajs fetches. A batch of a partition without one was
    // fetched before a rebalance took that partition away: its new owner reads it from the
    // committed offset, so it is dropped here.
    const state = this.#states.get(partition);
    if (this.#closing || state === undefined) return;
    state.addBatch(messages);
    this.#flow.fetched(this.#states);
    this.#wakeup.notify();
  }

  /** A new assignment: revoked partitions are dropped (settles of their records do nothing). */
  #onAssigned(partitions: number[]): void {
    const owned = new Set(partitions);
    for (const [partition, state] of this.#states) {
      if (owned.has(partition)) continue;
      state.revoke();
      this.#states.delete(partition);
      this.#flow.revoked(partition);
    }
    this.#assign(partitions.filter((partition) => !this.#states.has(partition)));
  }

  #assign(partitions: number[]): void {
    const states = partitions.map((partition) => new PartitionState(this.queue, partition, () => this.#wakeup.notify()));
    for (const state of states) this.#states.set(state.partition, state);
    if (states.length > 0) void this.#loadPriorDeliveries(states);
  }

  /** Reads earlier owners' delivery counts from the committed offsets' metadata. */
  async #loadPriorDeliveries(states: PartitionState[]): Promise<void> {
    let committed = new Map<number, { offset: string; metadata: string | null }>();
    try {
      const admin = await this.broker.admin();
      const [topic] = await admin.fetchOffsets({ groupId: this.broker.config.group, topics: [this.queue] });
      committed = new Map(topic?.partitions.map((p) => [p.partition, p]));
    } catch (error) {
      this.broker.log("warn", `${this.queue}: cannot read committed offsets, attempts restart at 1: ${describeKafkaError(error)}`);
    }
    for (const state of states) {
      const entry = committed.get(state.partition);
      state.setPrior(entry ? decodeDeliveries(Number(entry.offset), entry.metadata) : new Map());
    }
    this.#wakeup.notify();
  }

  #revokeAll(): void {
    for (const state of this.#states.values()) state.revoke();
    this.#states.clear();
    this.#flow.reset();
    this.#wakeup.notify();
  }
}
