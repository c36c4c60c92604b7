import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import type { KinesisClient } from "@aws-sdk/client-kinesis";
import type { BrokerLog, Consumer, DeadLetterReason, Delivery, OutgoingMessage } from "../contract.js";
import { describeAwsError, isTransient } from "../aws/sdk-errors.js";
import { deadLetterHeaders } from "../dead-letter.js";
import { takeRoundRobin } from "../round-robin.js";
import { Wakeup } from "../wakeup.js";
import { CheckpointWriter } from "./CheckpointWriter.js";
import { KinesisDelivery, type RecordSettler } from "./KinesisDelivery.js";
import type { KinesisUrl } from "./kinesis-url.js";
import type { LeaseStore, ShardCheckpoint } from "./leases/LeaseStore.js";
import { ShardBalancer, type ShardOwner } from "./ShardBalancer.js";
import { ShardReader } from "./ShardReader.js";
import { type ShardRecord, ShardState } from "./ShardState.js";
import type { StreamDirectory } from "./StreamDirectory.js";

/** What a consumer uses of its broker (KinesisBroker says what each does), and no more. */
export interface KinesisConsumerContext {
  readonly config: KinesisUrl;
  /** The broker's URL, for error messages. */
  readonly url: string;
  readonly log: BrokerLog;
  /** The SDK client the shard readers read with. */
  readonly client: KinesisClient;
  /** Creates a stream on first use; lists its shards. */
  readonly streams: StreamDirectory;
  /** The app's lease and checkpoint store, shared by the broker's consumers. */
  leaseStore(): Promise<LeaseStore>;
  /** Dead letters go out as the broker publishes. */
  publish(queue: string, messages: OutgoingMessage[]): Promise<void>;
  /** Called once, when the consumer has closed: the broker stops tracking it. */
  closed(consumer: KinesisConsumer): void;
}

/** How long close() waits for its last checkpoints and releases before giving up on them. */
const CLOSE_WAIT_MS = 5000;

/**
 * The receiving side of one stream: a ShardBalancer takes this worker's share of the shard leases,
 * a ShardReader per leased shard reads into its ShardState, receive() hands records out of them
 * (fairly across shards, each in sequence order), settles move each shard's checkpoint, and a
 * CheckpointWriter stores it before each hand-out (with the delivery counts) and every second.
 * Each consumer is its own worker in the lease store.
 */
export class KinesisConsumer implements Consumer, RecordSettler, ShardOwner {
  readonly #states = new Map<string, ShardState>();
  readonly #readers = new Map<string, ShardReader>();
  readonly #wakeup = new Wakeup();
  /** Notified on every settle, for hand-overs waiting until their shard has nothing out. */
  readonly #settles = new Wakeup();
  readonly #closeSignal = new AbortController();
  /**
   * Records still running here whose shard's lease was lost or released meanwhile, by shard and
   * sequence. If this worker takes the shard again, its new state holds them back until they
   * settle, and their settles land there: a record never runs twice at once in one worker, and a
   * verdict is given once.
   */
  readonly #orphans = new Map<string, Map<string, ShardRecord>>();
  readonly worker = `${hostname()}:${process.pid}:${randomBytes(3).toString("hex")}`;
  readonly #bufferLimit: number;
  #store: LeaseStore | undefined;
  #balancer: ShardBalancer | undefined;
  #writer: CheckpointWriter | undefined;
  #started: Promise<void> | undefined;
  #failure: Error | undefined;
  #startFailures = 0;
  #turn = 0;
  #closing = false;
  #closed: Promise<void> | undefined;

  constructor(
    readonly context: KinesisConsumerContext,
    readonly queue: string,
    readonly deadLetterQueue: string,
    maxInFlight: number | undefined,
    /** The caller runs one record per shard at a time: hand out no more (ConsumerOptions.onePerPartition). */
    readonly onePerShard = false,
  ) {
    this.#bufferLimit = Math.min(10_000, Math.max(2000, 4 * (maxInFlight ?? 100)));
    this.#start();
  }

  async receive(max: number, signal: AbortSignal): Promise<Delivery[]> {
    while (!signal.aborted && !this.#closing) {
      const failure = this.#failure;
      if (failure) {
        this.#failure = undefined;
        this.#start(); // the caller backs off and asks again
        throw new Error(`kinesis ${this.context.url}: consumer of ${this.queue} cannot start: ${failure.message}`);
      }
      // The lease store does not answer: nothing is handed out (its delivery count could not be
      // stored), and the caller's failing receive shows in /readyz; the balancer keeps retrying.
      const storeFailure = this.#balancer?.failure;
      if (storeFailure !== undefined) throw new Error(`kinesis ${this.context.url}: lease store of ${this.queue} does not answer (${storeFailure}); retrying`);
      const records = await this.#counted(this.#take(Math.max(1, Math.floor(max))));
      if (records.length > 0) return records.map((record) => new KinesisDelivery(this, record));
      // Woken by records; and once per balancer tick, to see a lease store failure begin.
      await this.#wakeup.wait(signal, Math.max(100, this.context.config.leaseMs / 3));
    }
    return [];
  }

  ack(record: ShardRecord): void {
    const state = record.shard;
    if (state.revoked) {
      this.#settleOrphan(record, "finished");
      return;
    }
    state.finish(record);
    this.#settles.notify();
    if (this.onePerShard) this.#wakeup.notify(); // the shard's next record may go now
    if (state.complete) void this.#finishShard(state);
  }

  nack(record: ShardRecord, delayMs: number): void {
    if (record.shard.revoked) {
      this.#settleOrphan(record, "retry");
      return;
    }
    record.shard.retry(record, delayMs);
    this.#settles.notify();
    if (this.onePerShard) this.#wakeup.notify();
  }

  /**
   * A verdict is given only under a lease this worker holds (the record's own, or the one it took
   * the shard again with), checked just before the publish, and its finish is checkpointed right
   * after: a shard that changes hands meanwhile would make its next owner judge it again.
   */
  async deadLetter(delivery: KinesisDelivery, reason: DeadLetterReason): Promise<void> {
    const { record } = delivery;
    const state = this.#holder(record);
    if (state === undefined || record.done) return;
    if (!(await this.#stillLeased(state))) {
      this.lose(state.shardId); // its next owner gives the verdict
      return;
    }
    try {
      // `deadLetters=plain`: the bare payload under its key, for readers that are not wqueue (./kinesis-url.ts).
      const headers = this.context.config.plainDeadLetters ? undefined : deadLetterHeaders(delivery, reason);
      await this.context.publish(this.deadLetterQueue, [{ body: delivery.body, headers, key: delivery.key }]);
    } catch (error) {
      this.nack(record, 1000); // not finished: hand it out again rather than stall the shard
      throw error;
    }
    this.ack(record);
    await this.#writer?.flush(state);
  }

  /** The state that settles `record`: its own, or the state of a later lease here holding it back. */
  #holder(record: ShardRecord): ShardState | undefined {
    if (!record.shard.revoked) return record.shard;
    const current = this.#states.get(record.shard.shardId);
    return current !== undefined && this.#orphans.get(record.shard.shardId)?.get(record.sequence) === record ? current : undefined;
  }

  /** Renews the shard's lease now: false once it is no longer ours (a store failure counts as held). */
  async #stillLeased(state: ShardState): Promise<boolean> {
    const store = this.#store;
    if (store === undefined) return false;
    try {
      const kept = await store.renew(this.queue, [state.shardId], this.worker, this.context.config.leaseMs);
      return kept.includes(state.shardId) && !state.revoked;
    } catch {
      return !state.revoked; // the balancer drops the lease if the store stays silent for a lease time
    }
  }

  /** Keeps what still runs of a state being revoked, for a later lease of the same shard here. */
  #adoptRunning(state: ShardState): void {
    const running = state.running();
    if (running.length === 0) return;
    const orphans = this.#orphans.get(state.shardId) ?? new Map<string, ShardRecord>();
    for (const record of running) orphans.set(record.sequence, record);
    this.#orphans.set(state.shardId, orphans);
  }

  #settleOrphan(record: ShardRecord, how: "finished" | "retry"): void {
    const orphans = this.#orphans.get(record.shard.shardId);
    if (orphans?.get(record.sequence) !== record) return;
    orphans.delete(record.sequence);
    if (orphans.size === 0) this.#orphans.delete(record.shard.shardId);
    record.out = false;
    const current = this.#states.get(record.shard.shardId);
    if (current?.settleEarlier(record.sequence, how)) {
      this.#settles.notify(); // a hand-over may wait for it
      if (how === "finished" && current.complete) void this.#finishShard(current);
    }
  }

  // ShardOwner: called by the balancer.
  held(): { active: string[]; draining: string[] } {
    const active: string[] = [];
    const draining: string[] = [];
    for (const state of this.#states.values()) (state.draining ? draining : active).push(state.shardId);
    return { active, draining };
  }

  start(shardId: string, checkpoint: ShardCheckpoint | undefined): void {
    if (this.#closing || this.#states.has(shardId)) return;
    const state = new ShardState(this.queue, shardId, checkpoint, () => this.#wakeup.notify(), this.#orphans.get(shardId)?.keys());
    const reader = new ShardReader(this.context.client, state, {
      pollMs: this.context.config.pollMs,
      bufferLimit: this.#bufferLimit,
      log: this.context.log,
      onRecords: () => this.#wakeup.notify(),
      onEnd: () => {
        if (state.complete) void this.#finishShard(state);
      },
      onFailed: () => void this.#leave(state),
    });
    this.#states.set(shardId, state);
    this.#readers.set(shardId, reader);
    this.context.log("info", `kinesis stream ${this.queue}: reading shard ${shardId} ${checkpoint ? `after ${checkpoint.sequence}` : "from its start"}`);
    reader.start();
  }

  lose(shardId: string): void {
    const state = this.#states.get(shardId);
    if (state === undefined) return;
    this.context.log("info", `kinesis stream ${this.queue}: lost the lease of shard ${shardId}`);
    this.#adoptRunning(state);
    state.revoke();
    this.#forget(state);
  }

  handOver(shardId: string): void {
    const state = this.#states.get(shardId);
    if (state === undefined || state.draining) return;
    state.draining = true;
    // Waits for every record out with a handler, however long it runs (the balancer keeps renewing
    // a draining shard's lease meanwhile): the next owner would otherwise run it a second time.
    void this.#leave(state, Number.POSITIVE_INFINITY);
  }

  /** Commits what is finished (and the delivery counts of what is not), then releases every lease. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#closing = true;
      this.#closeSignal.abort();
      this.#wakeup.notify();
      this.context.closed(this);
      await this.#started?.catch(() => {});
      const stopping = this.#balancer?.stop();
      this.#writer?.stop();
      // Bounded as a whole: with the store not answering, its calls retry for half a minute, and
      // the leases expire by themselves instead.
      const leaving = (async () => {
        await stopping;
        await Promise.all([...this.#states.values()].map((state) => this.#leave(state)));
        await this.#store?.leave(this.queue, this.worker).catch(() => {});
      })();
      await Promise.race([leaving, new Promise((resolve) => setTimeout(resolve, CLOSE_WAIT_MS).unref())]);
      for (const state of this.#states.values()) state.revoke();
      this.#orphans.clear();
    })();
    return this.#closed;
  }

  #start(): void {
    this.#started = (async () => {
      const store = await this.context.leaseStore();
      await this.context.streams.ensure(this.queue);
      if (this.#closing) return;
      this.#store = store;
      this.#startFailures = 0;
      this.#writer = new CheckpointWriter(store, this.worker, () => this.#states.values(), (state) => this.lose(state.shardId), this.context.log);
      this.#balancer = new ShardBalancer(store, this.queue, this.worker, this.context.config.leaseMs, () => this.context.streams.shards(this.queue), this, this.context.log);
      this.#writer.start();
      this.#balancer.start();
    })().catch((error: Error) => {
      if (this.#closing) return;
      if (isTransient(error)) {
        // Kinesis down or throttling (a restart, say): try again by itself, as the readers do.
        this.#startFailures += 1;
        const delay = Math.min(10_000, 250 * 2 ** Math.min(this.#startFailures, 6));
        if (this.#startFailures === 1) this.context.log("warn", `kinesis stream ${this.queue}: cannot start yet, retrying: ${describeAwsError(error)}`);
        setTimeout(() => this.#closing || this.#start(), delay).unref();
        return;
      }
      // Anything else (the checkpoint store unreachable, access denied) is the caller's to report.
      this.#failure = error;
      this.#wakeup.notify();
    });
  }

  #take(max: number): ShardRecord[] {
    const states = [...this.#states.values()];
    this.#turn = (this.#turn + 1) % Math.max(1, states.length);
    return takeRoundRobin<ShardState, ShardRecord>(
      states,
      max,
      this.#turn,
      (state, upTo, into) => state.take(upTo, into, this.onePerShard),
      (state) => this.#readers.get(state.shardId)?.room(),
    );
  }

  /**
   * Stores the delivery counts of the records being handed out before they go (one conditional
   * write per shard in the batch). Kinesis counts nothing itself: without this, a record whose
   * handler kills the worker at once would come back to the next owner as a first delivery every
   * time, and the poison rule (dead-letter past maxAttempts deliveries) could never stop the loop.
   * Records of a shard whose lease turns out lost are not handed out.
   */
  async #counted(records: ShardRecord[]): Promise<ShardRecord[]> {
    const writer = this.#writer;
    if (records.length === 0 || writer === undefined) return records;
    const states = new Set(records.map((record) => record.shard));
    const held = await Promise.all([...states].map(async (state) => ((await writer.flush(state)) ? undefined : state)));
    const lost = new Set(held.filter((state) => state !== undefined));
    return lost.size === 0 ? records : records.filter((record) => !lost.has(record.shard));
  }

  /** Every record of a closed shard is finished: SHARD_END lets its children start. */
  async #finishShard(state: ShardState): Promise<void> {
    if (state.revoked || !this.#states.has(state.shardId)) return;
    this.context.log("info", `kinesis stream ${this.queue}: shard ${state.shardId} finished (resharded); its children may start`);
    await this.#leave(state);
    this.#balancer?.tickNow();
  }

  /**
   * Stops reading the shard, waits up to `waitMs` for the records out with handlers, writes the
   * checkpoint and releases the lease, so the next owner starts where this one stopped.
   */
  async #leave(state: ShardState, waitMs = 0): Promise<void> {
    state.draining = true;
    await this.#readers.get(state.shardId)?.stop();
    const deadline = Date.now() + waitMs;
    while (!state.drained && !state.revoked && Date.now() < deadline && !this.#closing) {
      await this.#settles.wait(this.#closeSignal.signal, deadline - Date.now());
    }
    if (state.revoked) return;
    const store = this.#store;
    try {
      if (store && (await this.#writer?.flush(state)) !== false) await store.release(this.queue, state.shardId, this.worker);
    } catch (error) {
      this.context.log("warn", `kinesis stream ${this.queue} shard ${state.shardId}: lease not released (it expires instead): ${(error as Error).message}`);
    }
    this.#adoptRunning(state);
    state.revoke();
    this.#forget(state);
  }

  #forget(state: ShardState): void {
    if (this.#states.get(state.shardId) === state) this.#states.delete(state.shardId);
    const reader = this.#readers.get(state.shardId);
    this.#readers.delete(state.shardId);
    void reader?.stop();
    this.#wakeup.notify();
  }
}
