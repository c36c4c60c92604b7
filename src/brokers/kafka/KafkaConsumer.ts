import type { Admin, Kafka, KafkaMessage } from "kafkajs";
import type { Consumer, DeadLetterReason, Delivery, OutgoingMessage } from "../contract.js";
import { deadLetterHeaders } from "../dead-letter.js";
import { takeRoundRobin } from "../round-robin.js";
import { Wakeup } from "../wakeup.js";
import { decodeDeliveries } from "../delivery-counts.js";
import { KafkaDelivery, type RecordSettler } from "./KafkaDelivery.js";
import { GroupMember } from "./group-member.js";
import { DEFAULT_BUFFER, FetchFlow } from "./fetch-flow.js";
import { describeKafkaError, type KafkaEventLog } from "./kafka-client.js";
import type { KafkaUrl } from "./kafka-url.js";
import { OffsetCommitter } from "./offset-committer.js";
import { type KafkaRecord, PartitionState } from "./partition-state.js";
import type { TopicRegistry } from "./topics.js";

/** What a consumer uses of its broker (KafkaBroker says what each does), and no more. */
export interface KafkaConsumerContext {
  readonly config: KafkaUrl;
  /** The broker's URL, password redacted, for error messages. */
  readonly url: string;
  readonly log: KafkaEventLog;
  /** The kafkajs client the group member's consumer is made from. */
  readonly client: Kafka;
  /** Creates a topic on first use. */
  readonly topics: TopicRegistry;
  /** The shared admin client (committed offsets), connected on first use. */
  admin(): Promise<Admin>;
  /** Dead letters go out as the broker publishes (acks=all). */
  publish(queue: string, messages: OutgoingMessage[]): Promise<void>;
  /** Called once, when the consumer has closed: the broker stops tracking it. */
  closed(consumer: KafkaConsumer): void;
}

/** The most records per partition a commit counts ahead of their hand-out (PartitionState.claimAhead). */
const MAX_CLAIM_AHEAD = 4096;
/** How long close() waits for its last commit before leaving the group anyway. */
const CLOSE_COMMIT_MS = 5000;
/**
 * A rejoin held for running records goes this long before the rebalance timeout: the coordinator
 * began counting up to a heartbeat and a fetch wait before the member heard of the rebalance.
 */
const REJOIN_MARGIN_MS = 5000;
const NEVER = new AbortController().signal;

/**
 * The receiving side of one queue (topic): a group member fetches into per-partition buffers,
 * receive() hands out of them, settles move each partition's commit point (partition-state.ts),
 * an OffsetCommitter sends those points in batches, and a FetchFlow pauses fetching while the
 * buffer is full. A batch mixes partitions fairly, each in offset order. A record goes out only
 * once a commit counts its delivery (write-ahead, PartitionState.claimAhead), so a record whose
 * handler kills the worker reaches its verdict on the next owners. On a rebalance the member
 * rejoins only once the records out with handlers are settled and committed (#finishRunning), so
 * no record runs here and on its partition's next owner at once.
 */
export class KafkaConsumer implements Consumer, RecordSettler {
  readonly #states = new Map<number, PartitionState>();
  readonly #wakeup = new Wakeup();
  /** Notified when a record out with a handler comes back (settled, or its partition dropped). */
  readonly #returned = new Wakeup();
  readonly #member: GroupMember;
  readonly #committer: OffsetCommitter;
  readonly #flow: FetchFlow;
  #turn = 0;
  /** The last #take left a ready record waiting for a commit that counts it. */
  #blocked = false;
  /** The last #take used up half a partition's claimed window: commit the next claims now. */
  #refill = false;
  /**
   * Records per partition whose next delivery each commit counts ahead (PartitionState.claimAhead):
   * the caller's concurrency at first, doubled each time a receive had to wait for a commit, so a
   * fast consumer claims what it hands out in about one commit round trip and never waits.
   */
  #claimAhead: number;
  #closing = false;
  #closed: Promise<void> | undefined;

  constructor(
    readonly context: KafkaConsumerContext,
    readonly queue: string,
    readonly deadLetterQueue: string,
    maxInFlight: number | undefined,
    /** The caller runs one record per partition at a time: hand out no more (ConsumerOptions.onePerPartition). */
    readonly onePerPartition = false,
  ) {
    this.#member = new GroupMember(
      context.client,
      context.config.group,
      queue,
      {
        beforeStart: () => context.topics.ensure(queue),
        onBatch: (partition, messages) => this.#onBatch(partition, messages),
        onAssigned: (partitions) => this.#onAssigned(partitions),
        onRebalancing: () => this.#onRebalancing(),
        beforeRejoin: () => this.#finishRunning(),
        onLost: () => this.#revokeAll(),
      },
      context.log,
      context.config.rebalanceTimeoutMs,
    );
    this.#committer = new OffsetCommitter((offsets) => this.#member.commit(offsets), context.log, Math.max(1, Math.floor(maxInFlight ?? DEFAULT_BUFFER)));
    this.#flow = new FetchFlow(maxInFlight, this.#member);
    this.#claimAhead = Math.min(MAX_CLAIM_AHEAD, Math.max(1, Math.floor(maxInFlight ?? DEFAULT_BUFFER)));
    this.#member.start();
  }

  async receive(max: number, signal: AbortSignal): Promise<Delivery[]> {
    while (!signal.aborted && !this.#closing) {
      const failure = this.#member.takeFailure();
      if (failure) throw new Error(`kafka ${this.context.url}: consumer of ${this.queue} failed: ${describeKafkaError(failure)}`);
      const want = Math.max(1, Math.floor(max));
      let records = this.#take(want);
      if (records.length === 0 && this.#blocked) {
        // Ready records wait for a commit that counts their delivery (write-ahead, see
        // PartitionState.claimAhead). If it fails they go out anyway: a stalled consumer is worse
        // than a missed count.
        this.#widenClaims();
        const written = await this.#committer.flush();
        if (this.#closing) break;
        records = this.#take(want, !written);
        if (records.length === 0 && this.#blocked) records = this.#take(want, true); // claims cut short: never stall
      }
      if (this.#refill) this.#committer.hurry(); // claim the next ones before they are needed
      if (records.length > 0) return records.map((record) => new KafkaDelivery(this, record));
      await this.#wakeup.wait(signal);
    }
    return [];
  }

  ack(record: KafkaRecord): void {
    if (record.state.revoked || record.done) return;
    record.state.finish(record);
    this.#committer.acked(record.state);
    if (this.onePerPartition) this.#wakeup.notify(); // the partition's next record may go now
    if (record.state.rebalancing) this.#returned.notify();
  }

  nack(record: KafkaRecord, delayMs: number): void {
    record.state.retry(record, delayMs);
    if (this.onePerPartition) this.#wakeup.notify();
    if (record.state.rebalancing) this.#returned.notify();
  }

  async deadLetter(delivery: KafkaDelivery, reason: DeadLetterReason): Promise<void> {
    const { record } = delivery;
    if (record.state.revoked || record.done) return;
    try {
      const headers = deadLetterHeaders(delivery, reason);
      await this.context.publish(this.deadLetterQueue, [{ body: delivery.body, headers, key: delivery.key }]);
    } catch (error) {
      this.nack(record, 1000); // not finished: hand it out again rather than stall the partition
      throw error;
    }
    this.ack(record);
  }

  /** Commits what is finished (and the delivery counts of what is not), then leaves the group. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#closing = true;
      this.#wakeup.notify();
      this.context.closed(this);
      // The last commit counts only what was handed out: records claimed ahead never ran here.
      for (const state of this.#states.values()) {
        state.claimAhead = 0;
        this.#committer.mark(state);
      }
      await Promise.race([this.#committer.flush(), new Promise((resolve) => setTimeout(resolve, CLOSE_COMMIT_MS).unref())]);
      this.#committer.stop();
      this.#revokeAll();
      await this.#member.stop();
    })();
    return this.#closed;
  }

  #widenClaims(): void {
    if (this.#claimAhead >= MAX_CLAIM_AHEAD) return;
    this.#claimAhead = Math.min(MAX_CLAIM_AHEAD, this.#claimAhead * 2);
    for (const state of this.#states.values()) state.claimAhead = this.#claimAhead;
  }

  /** Takes what may go out now (`force`: also records whose delivery no commit counts yet). */
  #take(max: number, force = false): KafkaRecord[] {
    const states = [...this.#states.values()];
    this.#turn = (this.#turn + 1) % Math.max(1, states.length);
    const out = takeRoundRobin<PartitionState, KafkaRecord>(
      states,
      max,
      this.#turn,
      (state, upTo, into) => state.take(upTo, into, this.onePerPartition, force),
      (state) => this.#committer.mark(state), // delivery counts changed: they travel with the next commit
    );
    this.#blocked = false;
    this.#refill = false;
    for (const state of states) {
      if (state.blocked || state.refill) {
        this.#committer.mark(state);
        this.#blocked ||= state.blocked;
        this.#refill ||= state.refill;
      }
      if (state.tombstones === 0) continue;
      this.context.log("debug", `${this.queue} partition ${state.partition}: skipped ${state.tombstones} tombstone(s) (null value)`);
      state.tombstones = 0;
      this.#committer.mark(state);
    }
    this.#flow.taken(this.#states);
    return out;
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

  /** Hands out nothing until the new assignment, and commits without claims ahead (PartitionState.rebalancing). */
  #onRebalancing(): void {
    for (const state of this.#states.values()) {
      state.rebalancing = true;
      this.#committer.mark(state);
    }
    void this.#committer.flush();
  }

  /**
   * Before the member rejoins (every partition may move then): hands nothing more out, waits until
   * every record out with a handler is settled, and commits. Records fetched and not handed out
   * stay uncommitted for the next owner: they never ran here. A handler still running when the
   * rebalance timeout nearly passed is left running, and its record may run again on the new owner.
   */
  async #finishRunning(): Promise<void> {
    this.#onRebalancing();
    const deadline = Date.now() + Math.max(0, this.context.config.rebalanceTimeoutMs - REJOIN_MARGIN_MS);
    let running = this.#running();
    if (running > 0) this.context.log("info", `${this.queue}: group rebalancing; rejoining once ${running} running record(s) finish`);
    while (running > 0 && !this.#closing) {
      const left = deadline - Date.now();
      if (left <= 0) {
        this.context.log("warn", `${this.queue}: ${running} record(s) still running at the rebalance timeout; rejoining, and their partitions' next owners may run them again (raise ?rebalanceTimeout=)`);
        break;
      }
      await this.#returned.wait(NEVER, left);
      running = this.#running();
    }
    for (const state of this.#states.values()) this.#committer.mark(state);
    await this.#committer.flush();
  }

  #running(): number {
    let running = 0;
    for (const state of this.#states.values()) running += state.outstanding;
    return running;
  }

  /** A new assignment: revoked partitions are dropped (settles of their records do nothing). */
  #onAssigned(partitions: number[]): void {
    for (const state of this.#states.values()) state.rebalancing = false;
    this.#wakeup.notify();
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
    for (const state of states) state.claimAhead = this.#claimAhead;
    for (const state of states) this.#states.set(state.partition, state);
    if (states.length > 0) void this.#loadPriorDeliveries(states);
  }

  /** Reads earlier owners' delivery counts from the committed offsets' metadata. */
  async #loadPriorDeliveries(states: PartitionState[]): Promise<void> {
    let committed = new Map<number, { offset: string; metadata: string | null }>();
    try {
      const admin = await this.context.admin();
      const [topic] = await admin.fetchOffsets({ groupId: this.context.config.group, topics: [this.queue] });
      committed = new Map(topic?.partitions.map((p) => [p.partition, p]));
    } catch (error) {
      this.context.log("warn", `${this.queue}: cannot read committed offsets, attempts restart at 1: ${describeKafkaError(error)}`);
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
    this.#returned.notify();
  }
}
