import type { TopicPartitionOffsetAndMetadata } from "kafkajs";
import type { KafkaEventLog } from "./kafka-client.js";
import type { PartitionState } from "./partition-state.js";

/** Commits of one consumer go out at most this often while messages flow. */
export const COMMIT_INTERVAL_MS = 200;

/**
 * Batches a consumer's offset commits. A partition is marked when its commit point or its
 * delivery counts change; marked partitions are committed together, one request at a time,
 * at most every COMMIT_INTERVAL_MS, and at once (next macrotask) after a quiet spell, so an
 * idle consumer's ack is committed within a round trip. flush() sends what is pending now: the
 * consumer calls it before every hand-out (write-ahead of the delivery counts, which carries the
 * acks so far too), on close and on a rebalance.
 *
 * So ack() resolves before its offset is committed; a crash redelivers what was out with handlers
 * at the last commit (at most the caller's concurrency) and what finished above the lowest of
 * them, never a skipped message (at-least-once).
 */
export class OffsetCommitter {
  readonly #marked = new Set<PartitionState>();
  /** What was last committed per partition, "offset|metadata", to skip repeats. */
  readonly #committed = new WeakMap<PartitionState, string>();
  #timer: NodeJS.Timeout | undefined;
  #inFlight: Promise<void> | undefined;
  #lastCommitAt = 0;
  #stopped = false;

  constructor(
    readonly send: (offsets: TopicPartitionOffsetAndMetadata[]) => Promise<void>,
    readonly log: KafkaEventLog,
  ) {}

  mark(state: PartitionState): void {
    // Called on every ack: the flag spares a Set lookup for a partition marked already.
    if (state.marked || this.#stopped) return;
    state.marked = true;
    this.#marked.add(state);
    if (this.#timer === undefined && this.#inFlight === undefined) this.#schedule();
  }

  /** Commits everything marked, after any commit in flight; never rejects. */
  async flush(): Promise<void> {
    while (this.#inFlight) await this.#inFlight;
    await this.#commit();
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
    const wait = Math.max(0, this.#lastCommitAt + COMMIT_INTERVAL_MS - Date.now());
    this.#timer = setTimeout(() => void this.#commit(), wait);
  }

  #commit(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const offsets: TopicPartitionOffsetAndMetadata[] = [];
    const sent: [PartitionState, string][] = [];
    for (const state of this.#marked) {
      state.marked = false;
      const offset = state.commitPoint();
      if (state.revoked || offset === undefined) continue;
      const metadata = state.metadata(offset);
      const key = `${offset}|${metadata ?? ""}`;
      if (this.#committed.get(state) === key) continue;
      offsets.push({ topic: state.topic, partition: state.partition, offset: String(offset), metadata });
      sent.push([state, key]);
    }
    this.#marked.clear();
    if (offsets.length === 0) return Promise.resolve();
    this.#lastCommitAt = Date.now();
    const inFlight = this.send(offsets).then(
      () => {
        for (const [state, key] of sent) this.#committed.set(state, key);
      },
      (error: unknown) => {
        // Tried again with the next commit; if the partition was revoked meanwhile, its new
        // owner starts from the older offset: redeliveries, never a skipped message.
        for (const [state] of sent) if (!state.revoked) this.mark(state);
        this.log("warn", `offset commit failed, retrying: ${error instanceof Error ? error.message : String(error)}`);
      },
    );
    this.#inFlight = inFlight.finally(() => {
      this.#inFlight = undefined;
      if (this.#marked.size > 0 && this.#timer === undefined) this.#schedule();
    });
    return this.#inFlight;
  }
}
