import type { DeadLetterReason, Headers } from "../contract.js";
import { SettleOnceDelivery } from "../settle-once.js";
import { firstAttemptOf, fromKafkaHeaders } from "./kafka-headers.js";
import type { KafkaRecord } from "./partition-state.js";

const EMPTY = Buffer.alloc(0);
const settled = Promise.resolve();

/** Settles through the consumer that handed it out, which owns the partition's offsets. */
export interface RecordSettler {
  ack(record: KafkaRecord): void;
  nack(record: KafkaRecord, delayMs: number): void;
  deadLetter(delivery: KafkaDelivery, reason: DeadLetterReason): Promise<void>;
}

/**
 * One handed-out Kafka record. `id` is "partition:offset", unique within the topic. `attempt`
 * starts at the record's x-wqueue-attempt header (1 without it) and counts every hand-out since,
 * by this consumer and by earlier owners of the partition (see ../delivery-counts.ts).
 */
export class KafkaDelivery extends SettleOnceDelivery {
  readonly attempt: number;
  #headers: Readonly<Headers> | undefined;
  /** null: not decoded yet (a record's key may be absent: undefined). */
  #key: string | undefined | null = null;

  constructor(
    readonly settler: RecordSettler,
    readonly record: KafkaRecord,
  ) {
    super();
    this.attempt = firstAttemptOf(record.message.headers) + record.deliveries - 1;
  }

  // The rest is read from the record when first asked: a delivery is made per message, so it
  // stays small, and what nobody reads is never decoded.
  get queue(): string {
    return this.record.state.topic;
  }

  get partition(): string {
    return this.record.state.partitionName;
  }

  get body(): Uint8Array {
    return this.record.message.value ?? EMPTY;
  }

  get id(): string {
    return `${this.partition}:${this.record.offset}`;
  }

  get key(): string | undefined {
    if (this.#key === null) this.#key = this.record.message.key?.toString("utf8");
    return this.#key;
  }

  get headers(): Readonly<Headers> {
    this.#headers ??= fromKafkaHeaders(this.record.message.headers);
    return this.#headers;
  }

  // Both only record the settle in memory (the commit follows in a batch): no promise of their own.
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
