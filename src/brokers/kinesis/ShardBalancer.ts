import type { Shard } from "@aws-sdk/client-kinesis";
import { describeAwsError } from "../aws/sdk-errors.js";
import type { BrokerLog } from "../contract.js";
import type { LeaseInfo, LeaseStore, ShardCheckpoint } from "./leases/LeaseStore.js";
import { SHARD_END } from "./leases/LeaseStore.js";

/** What the balancer asks of the consumer that owns the shard readers. */
export interface ShardOwner {
  /** Shards this worker reads now (handing records out), and those it is handing over. */
  held(): { active: string[]; draining: string[] };
  /** The lease is ours: start reading from the checkpoint. */
  start(shardId: string, checkpoint: ShardCheckpoint | undefined): void;
  /** The lease was lost (taken over, or not renewed in time): stop at once, settle nothing more. */
  lose(shardId: string): void;
  /** More than a fair share is held: finish what is out, checkpoint, and release this one. */
  handOver(shardId: string): void;
}

/**
 * Shares one stream's shards among the live workers of an app, as the KCL's lease coordinator does,
 * through the LeaseStore. Every tick (a third of the lease time) it:
 *
 * 1. says this worker is alive and learns how many are;
 * 2. renews its leases, and drops the shards whose lease it lost;
 * 3. finds the shards that may be read now: not finished (SHARD_END), and whose parents, after a
 *    reshard, are finished or gone from the stream, so a key's records are read parent first;
 * 4. takes free leases (never held, released, or expired with a dead worker) up to a fair share,
 *    ceil(shards / workers), and hands back any above it, so a new worker gets its part.
 *
 * Steps 1-2 (the store only) also run on a timer of their own: a slow Kinesis answer in 3-4 (a
 * loaded kinesis-local took seconds) must not hold up the renewal, or the lease runs out while
 * its records still run and another worker, or this one again, hands them out a second time.
 */
export class ShardBalancer {
  #timer: NodeJS.Timeout | undefined;
  #renewTimer: NodeJS.Timeout | undefined;
  #renewing: Promise<Renewal> | undefined;
  #ticking: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  /** Last time the store confirmed our leases; past leaseMs they may be anyone's. */
  #renewedAt = Date.now();
  #failing = false;
  /** Why the lease store failed in the last tick; undefined once a tick works, or when Kinesis failed instead. */
  #storeFailure: string | undefined;

  constructor(
    readonly store: LeaseStore,
    readonly stream: string,
    readonly worker: string,
    readonly leaseMs: number,
    readonly listShards: () => Promise<Shard[]>,
    readonly owner: ShardOwner,
    readonly log: BrokerLog,
  ) {}

  start(): void {
    this.tickNow();
    this.#renewTimer = setInterval(() => {
      if (this.#renewing === undefined) this.#renew().catch((error: unknown) => this.#storeFailed(error, false));
    }, this.#interval());
  }

  #interval(): number {
    return Math.max(100, Math.floor(this.leaseMs / 3));
  }

  /** Why the lease store fails right now (the consumer's receive reports it), else undefined. */
  get failure(): string | undefined {
    return this.#storeFailure;
  }

  /** Runs a tick now (after one in progress), e.g. when a shard ended and its children may start. */
  tickNow(): void {
    if (this.#stopped) return;
    if (this.#ticking) {
      this.#again = true;
      return;
    }
    clearTimeout(this.#timer);
    this.#ticking = this.#tick().finally(() => {
      this.#ticking = undefined;
      if (this.#stopped) return;
      if (this.#again) {
        this.#again = false;
        this.tickNow();
      } else {
        this.#timer = setTimeout(() => this.tickNow(), this.#interval());
      }
    });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    clearInterval(this.#renewTimer);
    await this.#ticking;
    await this.#renewing?.catch(() => {});
  }

  async #tick(): Promise<void> {
    let listing = false; // Kinesis, not the store, is being asked (its failures the readers report)
    try {
      const { live, active, kept } = await (this.#renewing ?? this.#renew());
      if (this.#stopped) return;

      listing = true;
      const shards = await this.listShards();
      listing = false;
      const infos = await this.store.read(this.stream, shards.map((shard) => shard.ShardId as string));
      const readable = readableShards(shards, infos);
      const target = Math.ceil(readable.length / Math.max(1, live.length));
      const mine = active.filter((shardId) => kept.has(shardId));
      for (const shardId of mine.slice(target)) this.owner.handOver(shardId);
      let count = Math.min(mine.length, target);
      const free = shuffle(readable.filter((shardId) => infos.get(shardId)?.owner === undefined && !kept.has(shardId)));
      for (const shardId of free) {
        if (count >= target || this.#stopped) break;
        if (!(await this.store.acquire(this.stream, shardId, this.worker, this.leaseMs))) continue;
        // Read again under the lease: the previous owner may have written since the read above.
        const checkpoint = (await this.store.read(this.stream, [shardId])).get(shardId)?.checkpoint;
        if (this.#stopped) {
          await this.store.release(this.stream, shardId, this.worker);
          break;
        }
        this.owner.start(shardId, checkpoint);
        count += 1;
      }
      if (this.#failing) this.log("info", `kinesis stream ${this.stream}: lease store answers again`);
      this.#failing = false;
      this.#storeFailure = undefined;
    } catch (error) {
      this.#storeFailed(error, listing);
    }
  }

  /** Steps 1-2: heartbeat and renewal, one at a time (a tick joins the one in flight). */
  #renew(): Promise<Renewal> {
    const renewing = (async () => {
      const live = await this.store.heartbeat(this.stream, this.worker, this.leaseMs);
      const { active, draining } = this.owner.held();
      const held = [...active, ...draining];
      const kept = new Set(held.length > 0 ? await this.store.renew(this.stream, held, this.worker, this.leaseMs) : []);
      this.#renewedAt = Date.now();
      for (const shardId of held) if (!kept.has(shardId)) this.owner.lose(shardId);
      return { live, active, kept };
    })().finally(() => {
      this.#renewing = undefined;
    });
    this.#renewing = renewing;
    return renewing;
  }

  /** `listing`: Kinesis failed, not the store (the readers report that). */
  #storeFailed(error: unknown, listing: boolean): void {
    const why = describeAwsError(error);
    if (!this.#failing) this.log("warn", `kinesis stream ${this.stream}: lease upkeep failed, retrying: ${why}`);
    this.#failing = true;
    this.#storeFailure = listing ? undefined : why;
    // Leases not renewed for a whole lease time may be held by others now: stop reading them.
    if (Date.now() - this.#renewedAt >= this.leaseMs) {
      const { active, draining } = this.owner.held();
      for (const shardId of [...active, ...draining]) this.owner.lose(shardId);
    }
  }
}

interface Renewal {
  /** Workers of the stream alive now. */
  live: string[];
  /** Shards this worker was reading (not draining) when the renewal began. */
  active: string[];
  /** Leases still ours. */
  kept: Set<string>;
}

/** Unfinished shards whose parents are finished or no longer in the stream (past retention). */
export function readableShards(shards: Shard[], infos: Map<string, LeaseInfo>): string[] {
  const present = new Set(shards.map((shard) => shard.ShardId as string));
  const finished = (shardId: string | undefined) => shardId === undefined || !present.has(shardId) || infos.get(shardId)?.checkpoint?.sequence === SHARD_END;
  return shards
    .filter((shard) => !finished(shard.ShardId) && finished(shard.ParentShardId) && finished(shard.AdjacentParentShardId))
    .map((shard) => shard.ShardId as string);
}

function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i -= 1) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j] as T, items[i] as T];
  }
  return items;
}
