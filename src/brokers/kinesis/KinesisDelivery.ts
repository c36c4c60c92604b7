import type { DeadLetterReason, Headers } from "../contract.js";
import { SettleOnceDelivery } from "../settle-once.js";
import type { DecodedRecord } from "./record-codec.js";
import type { ShardRecord } from "./ShardState.js";

const settled = Promise.resolve();

/** Settles through the consumer that handed it out, which owns the shard's checkpoint. */
export interface RecordSettler {
  ack(record: ShardRecord): void;
  nack(record: ShardRecord, delayMs: number): void;
  deadLetter(delivery: KinesisDelivery, reason: DeadLetterReason): Promise<void>;
}

/**
 * One handed-out Kinesis record. `id` is "shardId:sequenceNumber", unique within the stream.
 * `attempt` starts at the envelope's attempt (1 for plain records) and counts every hand-out since,
 * by this worker and by earlier owners of the shard (the checkpoint's delivery counts).
 */
export class KinesisDelivery extends SettleOnceDelivery {
  readonly attempt: number;
  readonly #message: DecodedRecord;

  constructor(
    readonly settler: RecordSettler,
    readonly record: ShardRecord,
  ) {
    super();
    this.#message = record.decoded as DecodedRecord;
    this.attempt = this.#message.attempt + record.deliveries - 1;
  }

  get queue(): string {
    return this.record.shard.stream;
  }

  get partition(): string {
    return this.record.shard.shardId;
  }

  get id(): string {
    return `${this.record.shard.shardId}:${this.record.sequence}`;
  }

  get body(): Uint8Array {
    return this.#message.body;
  }

  get key(): string | undefined {
    return this.#message.key;
  }

  get headers(): Readonly<Headers> {
    return this.#message.headers;
  }

  // Both only record the settle in memory (the checkpoint follows on a timer): no promise of their own.
  protected doAck(): Promise<void> {
    this.settler.ack(this.record);
    return settled;
  }

  protected doNack(delayMs: number): Promise<void> {
    this.settler.nack(this.record, delayMs);
    return settled;
  }

  protected doDeadLetter(reason: DeadLetterReason): Promise<void> {
    return this.settler.deadLetter(this, reason);
  }
}
