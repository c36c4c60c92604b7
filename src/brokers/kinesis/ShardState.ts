import { decodeDeliveries, encodeDeliveries } from "../delivery-counts.js";
import { CommitWindow } from "../commit-window.js";
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
 * What this worker holds of one leased shard: every unfinished record in sequence order, in a
 * CommitWindow (shared with Kafka's partition-state.ts): the checkpoint is the record before the
 * lowest unfinished one, so a crash never skips a record, whatever finished out of order above it.
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
  readonly #window: CommitWindow<ShardRecord>;
  readonly #prior: Map<number, number>;
  /** Index past the last record an earlier owner counted. */
  readonly #priorEnd: number;
  /** Sequence of the last record finished with none unfinished before it (the checkpoint). */
  #finishedThrough: string;
  #lastRead: string | undefined;
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
    this.#window = new CommitWindow((record) => {
      if (this.revoked) return;
      this.#window.due.push(record);
      onDue();
    });
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
    const w = this.#window;
    return w.records.length - w.next + w.due.length;
  }

  /** Every record read is finished, and the shard was read to its end. */
  get complete(): boolean {
    const w = this.#window;
    return this.ended && w.head >= w.records.length && w.delayed === 0 && w.due.length === 0;
  }

  /** No record is with a handler: the lease can be handed over (nacked ones are redone by the next owner). */
  get drained(): boolean {
    return this.#window.outstanding === 0 && this.#earlier.size === 0;
  }

  /** Records out with handlers now (for an earlier lease's successor: see settleEarlier). */
  running(): ShardRecord[] {
    const w = this.#window;
    return w.records.slice(w.head, w.next).filter((record) => record.out);
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
      this.#window.due.push(record);
      this.onDue();
    }
    return true;
  }

  add(records: readonly { SequenceNumber?: string; Data?: Uint8Array; PartitionKey?: string }[]): void {
    if (this.revoked) return;
    const w = this.#window;
    for (const record of records) {
      const sequence = record.SequenceNumber as string;
      const index = w.dropped + w.records.length;
      w.records.push({
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
    const w = this.#window;
    if (onePerShard) {
      if (w.outstanding > 0) return;
      max = Math.min(max, out.length + 1);
    }
    while (out.length < max) {
      let record: ShardRecord;
      if (w.due.length > 0) record = w.due.shift() as ShardRecord;
      else if (w.next < w.records.length) {
        record = w.records[w.next] as ShardRecord;
        w.next += 1;
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
          w.later(record, record.decoded.notBefore - now);
          continue;
        }
      } else return;
      record.deliveries += 1;
      w.handOut(record);
      this.dirty = true;
      out.push(record);
    }
  }

  /** The record is finished: the checkpoint may move past it. */
  finish(record: ShardRecord): void {
    if (this.revoked || record.done) return;
    this.dirty = true;
    const passed = this.#window.finish(record);
    if (passed !== undefined) this.#finishedThrough = passed.sequence;
  }

  /** Hands the record out again after `delayMs`; the checkpoint stays below it meanwhile. */
  retry(record: ShardRecord, delayMs: number): void {
    if (this.revoked || record.done) return;
    this.#window.back(record);
    if (delayMs > 0) this.#window.later(record, delayMs);
    else {
      this.#window.due.push(record);
      this.onDue();
    }
  }

  /** What to store now, or undefined when nothing changed since the last write. */
  checkpoint(): ShardCheckpoint | undefined {
    const sequence = this.complete ? SHARD_END : this.#finishedThrough;
    const counts: [number, number][] = [];
    // Only records handed out, or counted by an earlier owner, can have deliveries: not the read-ahead.
    const w = this.#window;
    const end = Math.min(w.records.length, w.head + METADATA_SCAN, Math.max(w.next, this.#priorEnd - w.dropped));
    for (let i = w.head; i < end; i += 1) {
      const record = w.records[i] as ShardRecord;
      if (!record.done && record.deliveries > 0) counts.push([record.index, record.deliveries]);
    }
    const metadata = sequence === SHARD_END ? null : encodeDeliveries(w.dropped + w.head, counts);
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
    this.#window.clear();
    this.#earlier.clear();
    this.#finishedEarlier.clear();
  }
}
