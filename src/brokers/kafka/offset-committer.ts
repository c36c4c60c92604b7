import type { TopicPartitionOffsetAndMetadata } from "kafkajs";
import { isRebalance, type KafkaEventLog } from "./kafka-client.js";
import type { PartitionState } from "./partition-state.js";

/** Commits of one consumer go out at most this often while messages flow. */
export const COMMIT_INTERVAL_MS = 200;

/**
 * Batches a consumer's offset commits. A partition is marked when its commit point or its
 * delivery counts change; marked partitions are committed together, one request at a time,
 * at most every COMMIT_INTERVAL_MS, and at once (next macrotask) after a quiet spell, so an
 * idle consumer's ack is committed within a round trip; but as soon as the one in flight is done
 * once `eagerAfter` acks wait, so a busy consumer commits about every round trip. flush() sends
 * what is pending now: when a hand-out waits for its delivery count (write-ahead), on close and
 * on a rebalance.
 *
 * So ack() resolves before its offset is committed; a crash redelivers what was out with handlers
 * at the last commit (at most the caller's concurrency), the acks since (fewer than `eagerAfter`,
 * plus those of one round trip), and what finished above the lowest of them: never a skipped
 * message (at-least-once).
 */
export class OffsetCommitter {
  readonly #marked = new Set<PartitionState>();
  /** What was last committed per partition, "offset|metadata", to skip repeats. */
  readonly #committed = new WeakMap<PartitionState, string>();
  #timer: NodeJS.Timeout | undefined;
  #inFlight: Promise<boolean> | undefined;
  #lastCommitAt = 0;
  #stopped = false;
  /** Acks since the last commit was sent. */
  #acks = 0;
  /** The scheduled commit goes at once (not at the interval). */
  #soon = false;
  /** hurry() was called: the next commit goes at once. */
  #urgent = false;

  constructor(
    readonly send: (offsets: TopicPartitionOffsetAndMetadata[]) => Promise<void>,
    readonly log: KafkaEventLog,
    /** Acks that make the next commit go without waiting for the interval. */
    readonly eagerAfter = Number.POSITIVE_INFINITY,
  ) {}

  /** The next commit should go as soon as the one in flight (if any) is done: marked partitions only. */
  hurry(): void {
    if (this.#stopped || this.#soon) return;
    this.#urgent = true;
    if (this.#inFlight !== undefined) return; // its end schedules the next one, at once
    clearTimeout(this.#timer);
    this.#schedule();
  }

  /** A record of the partition finished: its commit point may have moved. */
  acked(state: PartitionState): void {
    this.#acks += 1;
    this.mark(state);
    if (this.#acks >= this.eagerAfter && !this.#soon && this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#schedule(); // now, no longer at the interval
    }
  }

  mark(state: PartitionState): void {
    // Called on every ack: the flag spares a Set lookup for a partition marked already.
    if (state.marked || this.#stopped) return;
    state.marked = true;
    this.#marked.add(state);
    if (this.#timer === undefined && this.#inFlight === undefined && !this.#stopped) this.#schedule();
  }

  /** Commits everything marked, after any commit in flight; never rejects: false if that commit failed. */
  async flush(): Promise<boolean> {
    while (this.#inFlight) await this.#inFlight;
    return this.#commit();
  }

  /** Stops timers; what is marked and not flushed stays uncommitted (and is redelivered). */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const state of this.#marked) state.marked = false;
    this.#marked.clear();
  }

  #schedule(): void {
    const wait = this.#urgent || this.#acks >= this.eagerAfter ? 0 : Math.max(0, this.#lastCommitAt + COMMIT_INTERVAL_MS - Date.now());
    this.#soon = wait === 0;
    this.#timer = setTimeout(() => void this.#commit(), wait);
  }

  #commit(): Promise<boolean> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#soon = false;
    this.#urgent = false;
    const offsets: TopicPartitionOffsetAndMetadata[] = [];
    const sent: [PartitionState, string][] = [];
    for (const state of this.#marked) {
      state.marked = false;
      const offset = state.commitPoint();
      if (state.revoked || offset === undefined) continue;
      const metadata = state.metadata(offset);
      const key = `${offset}|${metadata ?? ""}`;
      if (this.#committed.get(state) === key) {
        state.confirmClaims(); // the same metadata is committed already
        continue;
      }
      offsets.push({ topic: state.topic, partition: state.partition, offset: String(offset), metadata });
      sent.push([state, key]);
    }
    this.#marked.clear();
    if (offsets.length === 0) return Promise.resolve(true);
    this.#lastCommitAt = Date.now();
    this.#acks = 0;
    const inFlight = this.send(offsets).then(
      () => {
        for (const [state, key] of sent) {
          this.#committed.set(state, key);
          state.confirmClaims();
        }
        return true;
      },
      (error: unknown) => {
        // Tried again with the next commit; if the partition was revoked meanwhile, its new
        // owner starts from the older offset: redeliveries, never a skipped message.
        for (const [state] of sent) if (!state.revoked) this.mark(state);
        const reason = error instanceof Error ? error.message : String(error);
        this.log(isRebalance(reason) ? "info" : "warn", `offset commit failed, retrying: ${reason}`);
        return false;
      },
    );
    this.#inFlight = inFlight.finally(() => {
      this.#inFlight = undefined;
      if (this.#marked.size > 0 && this.#timer === undefined) this.#schedule();
    });
    return this.#inFlight;
  }
}
