import { decodeDeliveries, encodeDeliveries } from "../delivery-counts.js";
import { Fifo } from "../fifo.js";
import { type ShardCheckpoint, SHARD_END } from "./leases/LeaseStore.js";
import { type DecodedRecord, fromKinesisRecord } from "./record-codec.js";

/** The checkpoint sequence of a shard whose first record is not finished yet: read from the start. */
export const FROM_START = "TRIM_HORIZON";

/** One record read from a leased shard, until finished (acked or dead-lettered). */
export interface ShardRecord {
  readonly shard: ShardState;
  /** Position after the resume point (0: the first record read after the checkpoint). */
  readonly index: number;
  readonly sequence: string;
  readonly data: Uint8Array;
  readonly partitionKey: string;
  /** Decoded when first handed out. */
  decoded: DecodedRecord | undefined;
  /** Times handed out, counting earlier owners' (from the checkpoint's metadata). */
  deliveries: number;
  done: boolean;
  /** With a handler now (handed out, not settled yet). */
  out: boolean;
}

/** How many unfinished records a checkpoint's metadata looks at. */
const METADATA_SCAN = 4096;

/**
 * What this worker holds of one leased shard: every unfinished record in sequence order, in one
 * array with two cursors (as Kafka's partition-state.ts). `#head` is the lowest unfinished record:
 * the checkpoint is the record before it, so a crash never skips a record, whatever finished out of
 * order above it. `#next` is the next record never handed out; nacked records come back via `#due`.
 *
 * One instance lives for one lease. When the lease is lost or released it is revoked: settles of
 * its records arriving later do nothing (the next owner reads them again from the checkpoint).
 */
export class ShardState {
  revoked = false;
  /** The reader saw the end of this (closed, resharded) shard: nothing more will be added. */
  ended = false;
  /** Being handed to another worker: nothing more is handed out. */
  draining = false;
  /** Settled or handed out since the last checkpoint write. */
  dirty = false;
  #records: ShardRecord[] = [];
  #head = 0;
  #next = 0;
  /** Index of #records[0]. */
  #base = 0;
  readonly #due = new Fifo<ShardRecord>();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #prior: Map<number, number>;
  /** Index past the last record an earlier owner counted. */
  readonly #priorEnd: number;
  /** Sequence of the last record finished with none unfinished before it (the checkpoint). */
  #finishedThrough: string;
  #lastRead: string | undefined;
  #outstanding = 0;
  #lastWritten: string | undefined;
  /**
   * Records an earlier lease of this worker handed out that still run (the lease was lost, then
   * taken again), by sequence: not handed out again until that run settles (settleEarlier). The
   * value is the record here once read (held back), null before.
   */
  readonly #earlier = new Map<string, ShardRecord | null>();
  /** Earlier runs that finished before their record was read here: finished unseen when read. */
  readonly #finishedEarlier = new Set<string>();

  constructor(
    readonly stream: string,
    readonly shardId: string,
    resume: ShardCheckpoint | undefined,
    /** Called when a delayed record becomes ready. */
    readonly onDue: () => void,
    /** Sequences of this shard still running in this worker under an earlier lease. */
    runningEarlier: Iterable<string> = [],
  ) {
    for (const sequence of runningEarlier) this.#earlier.set(sequence, null);
    this.#finishedThrough = resume?.sequence ?? FROM_START;
    this.#prior = decodeDeliveries(0, resume?.metadata);
    this.#priorEnd = Math.max(0, ...this.#prior.keys()) + 1;
    this.#lastWritten = `${this.#finishedThrough} ${resume?.metadata ?? null}`;
  }

  /** Where reading resumes: after this sequence number, or from the start (undefined). */
  get resumeAfter(): string | undefined {
    const after = this.#lastRead ?? this.#finishedThrough;
    return after === FROM_START ? undefined : after;
  }

  /** Records read and waiting to be handed out (delayed ones not counted). */
  get buffered(): number {
    return this.#records.length - this.#next + this.#due.length;
  }

  /** Every record read is finished, and the shard was read to its end. */
  get complete(): boolean {
    return this.ended && this.#head >= this.#records.length && this.#timers.size === 0 && this.#due.length === 0;
  }

  /** No record is with a handler: the lease can be handed over (nacked ones are redone by the next owner). */
  get drained(): boolean {
    return this.#outstanding === 0 && this.#earlier.size === 0;
  }

  /** Records out with handlers now (for an earlier lease's successor: see settleEarlier). */
  running(): ShardRecord[] {
    return this.#records.slice(this.#head, this.#next).filter((record) => record.out);
  }

  /**
   * A run under an earlier lease settled: its record is finished here too, or (`retry`) may be
   * handed out again. Returns false when this state was not waiting for it.
   */
  settleEarlier(sequence: string, how: "finished" | "retry"): boolean {
    if (this.revoked || !this.#earlier.has(sequence)) return false;
    const record = this.#earlier.get(sequence);
    this.#earlier.delete(sequence);
    if (record === null || record === undefined) {
      if (how === "finished") this.#finishedEarlier.add(sequence);
    } else if (how === "finished") this.finish(record);
    else {
      this.#due.push(record);
      this.onDue();
    }
    return true;
  }

  add(records: readonly { SequenceNumber?: string; Data?: Uint8Array; PartitionKey?: string }[]): void {
    if (this.revoked) return;
    for (const record of records) {
      const sequence = record.SequenceNumber as string;
      const index = this.#base + this.#records.length;
      this.#records.push({
        shard: this,
        index,
        sequence,
        data: record.Data ?? new Uint8Array(0),
        partitionKey: record.PartitionKey ?? "",
        decoded: undefined,
        deliveries: this.#prior.get(index) ?? 0,
        done: false,
        out: false,
      });
      this.#lastRead = sequence;
    }
  }

  /**
   * Moves up to `max` ready records to `out`, due retries first, each counted as delivered; with
   * `onePerShard`, none while one is out, and then only one (the caller runs them in order).
   */
  take(max: number, out: ShardRecord[], onePerShard = false, now = Date.now()): void {
    if (this.revoked || this.draining) return;
    if (onePerShard) {
      if (this.#outstanding > 0) return;
      max = Math.min(max, out.length + 1);
    }
    while (out.length < max) {
      let record: ShardRecord;
      if (this.#due.length > 0) record = this.#due.shift() as ShardRecord;
      else if (this.#next < this.#records.length) {
        record = this.#records[this.#next] as ShardRecord;
        this.#next += 1;
        if (this.#earlier.get(record.sequence) === null) {
          this.#earlier.set(record.sequence, record); // still running under the earlier lease: held back
          continue;
        }
        if (this.#finishedEarlier.delete(record.sequence)) {
          this.finish(record);
          continue;
        }
        record.decoded = fromKinesisRecord(record.data, record.partitionKey);
        if (record.decoded.notBefore > now) {
          this.#later(record, record.decoded.notBefore - now);
          continue;
        }
      } else return;
      record.deliveries += 1;
      record.out = true;
      this.#outstanding += 1;
      this.dirty = true;
      out.push(record);
    }
  }

  /** The record is finished: the checkpoint may move past it. */
  finish(record: ShardRecord): void {
    if (this.revoked || record.done) return;
    this.#back(record);
    record.done = true;
    this.dirty = true;
    const records = this.#records;
    let head = this.#head;
    while (head < records.length && (records[head] as ShardRecord).done) head += 1;
    if (head > this.#head) this.#finishedThrough = (records[head - 1] as ShardRecord).sequence;
    if (head >= 1024 && head * 2 >= records.length) {
      this.#records = records.slice(head);
      this.#next -= head;
      this.#base += head;
      head = 0;
    }
    this.#head = head;
  }

  /** Hands the record out again after `delayMs`; the checkpoint stays below it meanwhile. */
  retry(record: ShardRecord, delayMs: number): void {
    if (this.revoked || record.done) return;
    this.#back(record);
    if (delayMs > 0) this.#later(record, delayMs);
    else {
      this.#due.push(record);
      this.onDue();
    }
  }

  /** What to store now, or undefined when nothing changed since the last write. */
  checkpoint(): ShardCheckpoint | undefined {
    const sequence = this.complete ? SHARD_END : this.#finishedThrough;
    const counts: [number, number][] = [];
    // Only records handed out, or counted by an earlier owner, can have deliveries: not the read-ahead.
    const end = Math.min(this.#records.length, this.#head + METADATA_SCAN, Math.max(this.#next, this.#priorEnd - this.#base));
    for (let i = this.#head; i < end; i += 1) {
      const record = this.#records[i] as ShardRecord;
      if (!record.done && record.deliveries > 0) counts.push([record.index, record.deliveries]);
    }
    const metadata = sequence === SHARD_END ? null : encodeDeliveries(this.#base + this.#head, counts);
    const text = `${sequence} ${metadata}`;
    if (text === this.#lastWritten) return undefined;
    return { sequence, metadata };
  }

  /** The checkpoint was stored: checkpoint() returns undefined until something changes again. */
  written(checkpoint: ShardCheckpoint): void {
    this.#lastWritten = `${checkpoint.sequence} ${checkpoint.metadata}`;
  }

  revoke(): void {
    this.revoked = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    this.#records = [];
    this.#head = 0;
    this.#next = 0;
    this.#due.clear();
    this.#outstanding = 0;
    this.#earlier.clear();
    this.#finishedEarlier.clear();
  }

  #back(record: ShardRecord): void {
    if (!record.out) return;
    record.out = false;
    this.#outstanding -= 1;
  }

  #later(record: ShardRecord, delayMs: number): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      if (this.revoked || record.done) return;
      this.#due.push(record);
      this.onDue();
    }, delayMs);
    this.#timers.add(timer);
  }
}
