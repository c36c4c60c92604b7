import type { KafkaMessage } from "kafkajs";
import { CommitWindow } from "../commit-window.js";
import { encodeDeliveriesCounted } from "../delivery-counts.js";
import { NOT_BEFORE_HEADER, notBeforeOf } from "./kafka-headers.js";

/** One fetched record, until finished (acked or dead-lettered): kafkajs's message as it came. */
export interface KafkaRecord {
  readonly state: PartitionState;
  /** Kafka offsets are int64; a Number is exact below 2^53, which no partition reaches. */
  readonly offset: number;
  readonly message: KafkaMessage;
  /** Estimated key + value bytes, for flow control (the batch's average, see addBatch). */
  readonly size: number;
  /** Times handed out, counting deliveries by earlier owners (commit metadata). */
  deliveries: number;
  /** The count the latest confirmed commit lists for it, valid while `claimEpoch` is the state's. */
  claimed: number;
  claimEpoch: number;
  done: boolean;
  /** Handed out and not settled yet (a nacked record waiting for its retry is not out). */
  out: boolean;
}

/** How many unfinished records a commit's metadata looks at (it holds fewer anyway). */
const METADATA_SCAN = 4096;

/**
 * What this consumer holds of one assigned partition: every unfinished record in offset order, in
 * a CommitWindow (shared with Kinesis's ShardState): its head, the lowest unfinished record, is the
 * only safe commit point, so a crash never skips a message, whatever finished out of order above it.
 *
 * One instance lives for one assignment. When the partition is revoked it is emptied and marked,
 * and settles of its records that arrive later do nothing (the new owner redelivers them).
 */
export class PartitionState {
  revoked = false;
  /** Waiting in the OffsetCommitter's next commit. */
  marked = false;
  /** Tombstones skipped by take() since the owner last looked (it commits past them and resets this). */
  tombstones = 0;
  /**
   * Write-ahead of delivery counts (0: off). Each commit's metadata claims one more delivery for
   * the next `claimAhead` records not yet handed out, and take() hands out only records whose next
   * delivery a confirmed commit already counts: a record that kills the worker is seen with its
   * count by the next owner, without a round trip per hand-out. A crash over-counts by one the
   * claimed records that never ran (harmless: see DESIGN, suspects). close() sets it to 0.
   */
  claimAhead = 0;
  /**
   * A rebalance is under way: nothing is handed out and commits claim nothing ahead, so a new
   * owner of the partition does not inherit counts for records that never ran here.
   */
  rebalancing = false;
  /** take() stopped at a ready record whose delivery no confirmed commit counts yet. */
  blocked = false;
  /** Fewer than half the window is still claimed ahead: time for the next commit. */
  refill = false;
  /** The partition number as Delivery.partition shows it. */
  readonly partitionName: string;
  readonly #window: CommitWindow<KafkaRecord>;
  /** Delivery counts of earlier owners, by offset; undefined until read from the group. */
  #prior: Map<number, number> | undefined;
  #nextOffset = -1;
  /** Bumped by each confirmed commit: older claims are void (the commit replaced their metadata). */
  #claimEpoch = 0;
  /** The claims of the commit being sent, confirmed when it succeeds. */
  #pendingClaims: [KafkaRecord, number][] = [];
  /** Records never handed out below this offset have their next delivery counted (one range). */
  #freshClaimEnd = -1;
  #pendingFreshEnd = -1;
  #bufferedBytes = 0;

  constructor(
    readonly topic: string,
    readonly partition: number,
    /** Called when a delayed record becomes ready. */
    readonly onDue: () => void,
  ) {
    this.partitionName = String(partition);
    this.#window = new CommitWindow((record) => {
      if (this.revoked) return;
      this.#ready(record);
      onDue();
    });
  }

  /** Records are handed out only once earlier owners' delivery counts are known. */
  get loaded(): boolean {
    return this.#prior !== undefined;
  }

  setPrior(counts: Map<number, number>): void {
    if (this.#prior !== undefined) return;
    this.#prior = counts;
    for (const record of this.#window.records) record.deliveries += takeCount(counts, record.offset);
  }

  /** Records fetched and waiting to be handed out (nacked ones waiting for their delay not counted). */
  get buffered(): number {
    const w = this.#window;
    return w.records.length - w.next + w.due.length;
  }

  /** Records out with handlers now. */
  get outstanding(): number {
    return this.#window.outstanding;
  }

  /** Their keys' and values' bytes. */
  get bufferedBytes(): number {
    return this.#bufferedBytes;
  }

  /**
   * Takes a fetched batch. A rejoin makes kafkajs fetch again from the committed offset: records
   * below what this assignment already holds are those, and are dropped. Nothing but the offset is
   * read here: the records are read again only when handed out, often after the CPU cache has
   * moved on, so each is touched as few times as possible. Sizes are estimated from the batch's
   * first and last records (a topic's records are mostly alike); they only steer flow control.
   */
  addBatch(messages: KafkaMessage[]): void {
    if (this.revoked || messages.length === 0) return;
    const prior = this.#prior;
    const size = (sizeOf(messages[0] as KafkaMessage) + sizeOf(messages[messages.length - 1] as KafkaMessage)) >> 1;
    for (const message of messages) {
      const offset = Number(message.offset);
      if (offset < this.#nextOffset) continue;
      this.#nextOffset = offset + 1;
      this.#window.records.push({ state: this, offset, message, size, deliveries: prior === undefined ? 0 : takeCount(prior, offset), claimed: 0, claimEpoch: 0, done: false, out: false });
      this.#bufferedBytes += size;
    }
  }

  /**
   * Moves up to `max` ready records to `out`, due retries first, each counted as delivered.
   * A record published with a delay (x-wqueue-not-before) is held back here until its time;
   * a tombstone is finished without being handed out. With `onePerPartition`, none while one is
   * out, and then only one (the caller runs them in order): the records behind a crashing one are
   * then not counted as delivered.
   */
  take(max: number, out: KafkaRecord[], onePerPartition = false, force = false, now = Date.now()): void {
    this.blocked = false;
    if (this.#prior === undefined || this.revoked || this.rebalancing) return;
    const w = this.#window;
    if (onePerPartition) {
      if (w.outstanding > 0) return;
      max = Math.min(max, out.length + 1);
    }
    const guarded = this.claimAhead > 0 && !force;
    while (out.length < max) {
      let record: KafkaRecord;
      const retried = w.due.peek();
      if (retried !== undefined) {
        if (guarded && !this.#covered(retried)) {
          this.blocked = true;
          break;
        }
        w.due.shift();
        record = retried;
        this.#bufferedBytes -= record.size;
      } else if (w.next < w.records.length) {
        record = w.records[w.next] as KafkaRecord;
        if (record.message.value === null) {
          // A tombstone (null value: "key deleted", for compaction) is no job: finished unseen.
          w.next += 1;
          this.#bufferedBytes -= record.size;
          this.finish(record);
          this.tombstones += 1;
          continue;
        }
        const headers = record.message.headers;
        if (headers?.[NOT_BEFORE_HEADER] !== undefined && notBeforeOf(headers) > now) {
          w.next += 1;
          this.#bufferedBytes -= record.size;
          w.later(record, notBeforeOf(headers) - now);
          continue;
        }
        if (guarded && record.offset >= this.#freshClaimEnd) {
          this.blocked = true;
          break;
        }
        w.next += 1;
        this.#bufferedBytes -= record.size;
      } else {
        break;
      }
      record.deliveries += 1;
      w.handOut(record);
      out.push(record);
    }
    if (this.claimAhead > 0) {
      const halfway = w.records[w.next + (this.claimAhead >> 1)];
      this.refill = halfway !== undefined && halfway.offset >= this.#freshClaimEnd;
    }
  }

  #covered(record: KafkaRecord): boolean {
    return record.claimEpoch === this.#claimEpoch && record.claimed > record.deliveries;
  }

  /** The record is finished: the commit point may move past it. */
  finish(record: KafkaRecord): void {
    this.#window.finish(record);
  }

  /** Hands the record out again after `delayMs`; its offset stays uncommitted meanwhile. */
  retry(record: KafkaRecord, delayMs: number): void {
    if (this.revoked || record.done) return;
    this.#window.back(record);
    if (delayMs > 0) this.#window.later(record, delayMs);
    else {
      this.#ready(record);
      this.onDue();
    }
  }

  /** The offset to commit (the lowest unfinished, else the next to fetch); undefined before any fetch. */
  commitPoint(): number | undefined {
    const w = this.#window;
    return w.records[w.head]?.offset ?? (this.#nextOffset >= 0 ? this.#nextOffset : undefined);
  }

  /**
   * Commit metadata for `commitPoint()`: the delivery counts of the unfinished records handed out,
   * and (with claimAhead) one more for the next records not out, so they may go out before the
   * following commit. Earlier owners' counts of records not fetched yet are kept. The claims take
   * effect for take() when the commit succeeds (confirmClaims).
   */
  metadata(base: number): string | null {
    const entries: (readonly [number, number, number?])[] = [];
    const claims: [KafkaRecord, number][] = [];
    const ahead = this.rebalancing ? 0 : this.claimAhead;
    const w = this.#window;
    const records = w.records;
    const scanEnd = Math.min(records.length, w.head + METADATA_SCAN);
    // Handed out at least once (or held back for a delay): one by one, with their claims.
    for (let i = w.head, end = Math.min(w.next, scanEnd); i < end; i += 1) {
      const record = records[i] as KafkaRecord;
      if (record.done) continue;
      const count = ahead === 0 ? record.deliveries : record.out ? Math.max(record.deliveries, this.#claimOf(record)) : record.deliveries + 1;
      if (count === 0) continue;
      entries.push([record.offset, count]);
      claims.push([record, count]);
    }
    // Never handed out: earlier owners' counts, plus (write-ahead) one more for the next `ahead`, as runs.
    const listed = entries.length;
    let freshEnd = -1;
    let run: [number, number, number] | undefined;
    for (let i = w.next, end = ahead > 0 ? Math.min(scanEnd, w.next + ahead) : scanEnd; i < end; i += 1) {
      const record = records[i] as KafkaRecord;
      const count = ahead > 0 ? record.deliveries + 1 : record.deliveries;
      freshEnd = record.offset + 1;
      if (count === 0) continue;
      if (run !== undefined && record.offset === run[2] + 1 && count === run[1]) run[2] = record.offset;
      else {
        run = [record.offset, count, record.offset];
        entries.push(run);
      }
    }
    const fresh = entries.length - listed;
    for (const [offset, count] of this.#prior ?? []) if (offset >= this.#nextOffset) entries.push([offset, count]);
    const { text, written } = encodeDeliveriesCounted(base, entries);
    this.#pendingClaims = written >= claims.length ? claims : claims.slice(0, written);
    this.#pendingFreshEnd = ahead > 0 && written >= listed + fresh ? freshEnd : -1;
    return text;
  }

  /** The commit carrying the last metadata() succeeded: its claims replace every earlier one. */
  confirmClaims(): void {
    this.#claimEpoch += 1;
    this.#freshClaimEnd = this.#pendingFreshEnd;
    for (const [record, count] of this.#pendingClaims) {
      record.claimed = count;
      record.claimEpoch = this.#claimEpoch;
    }
    this.#pendingClaims = [];
  }

  #claimOf(record: KafkaRecord): number {
    return record.claimEpoch === this.#claimEpoch ? record.claimed : 0;
  }

  revoke(): void {
    this.revoked = true;
    this.#window.clear();
    this.#bufferedBytes = 0;
  }

  /** Back among the records to hand out (before fresh ones). */
  #ready(record: KafkaRecord): void {
    this.#bufferedBytes += record.size;
    this.#window.due.push(record);
  }
}

/** An earlier owner's count of a record now fetched: it moves onto the record. */
function takeCount(prior: Map<number, number>, offset: number): number {
  if (prior.size === 0) return 0;
  const count = prior.get(offset) ?? 0;
  if (count > 0) prior.delete(offset);
  return count;
}

function sizeOf(message: KafkaMessage): number {
  return (message.value?.length ?? 0) + (message.key?.length ?? 0);
}
