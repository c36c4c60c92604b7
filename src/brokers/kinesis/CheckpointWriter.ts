import type { BrokerLog } from "../contract.js";
import type { LeaseStore } from "./leases/LeaseStore.js";
import type { ShardState } from "./ShardState.js";

/** How often finished progress is written; at most this much work is redone after a crash. */
export const CHECKPOINT_INTERVAL_MS = 1000;

/**
 * Writes each held shard's checkpoint (the record below its first unfinished one, and the delivery
 * counts of unfinished ones) to the lease store, on a timer and on demand, only when it changed.
 * A write the store refuses means the lease was taken over: `onLost` drops the shard.
 */
export class CheckpointWriter {
  #timer: NodeJS.Timeout | undefined;
  #writing: Promise<void> | undefined;
  /** The last write of each shard, which the next one waits for. */
  readonly #queue = new WeakMap<ShardState, Promise<boolean>>();

  constructor(
    readonly store: LeaseStore,
    readonly worker: string,
    readonly states: () => Iterable<ShardState>,
    readonly onLost: (state: ShardState) => void,
    readonly log: BrokerLog,
  ) {}

  start(): void {
    this.#timer = setInterval(() => {
      this.#writing ??= this.flushAll().finally(() => {
        this.#writing = undefined;
      });
    }, CHECKPOINT_INTERVAL_MS);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  async flushAll(): Promise<void> {
    await Promise.all([...this.states()].filter((state) => state.dirty).map((state) => this.flush(state)));
  }

  /**
   * Writes the shard's checkpoint if it changed; false when the lease is no longer ours. Writes of
   * one shard go one after another, so an older checkpoint never lands after a newer one.
   */
  flush(state: ShardState): Promise<boolean> {
    const write = (this.#queue.get(state) ?? Promise.resolve(true)).then(() => this.#write(state));
    this.#queue.set(state, write);
    return write;
  }

  async #write(state: ShardState): Promise<boolean> {
    if (state.revoked) return false;
    state.dirty = false;
    const checkpoint = state.checkpoint();
    if (checkpoint === undefined) return true;
    try {
      if (await this.store.checkpoint(state.stream, state.shardId, this.worker, checkpoint)) {
        state.written(checkpoint);
        return true;
      }
      this.log("warn", `kinesis stream ${state.stream} shard ${state.shardId}: lease taken over by another worker; leaving it`);
      this.onLost(state);
      return false;
    } catch (error) {
      state.dirty = true; // try again next time
      this.log("warn", `kinesis stream ${state.stream} shard ${state.shardId}: checkpoint not written: ${(error as Error).message}`);
      return true;
    }
  }
}
