import type { Redis } from "ioredis";
import { BlockingReader, type ReadRequest } from "./blocking-reader.js";
import { DISCOVER_MS, moveDueDelayed } from "./delayed-set.js";
import { pipelined } from "./pipelined.js";
import type { RedisClients } from "../shared/redis-clients.js";
import { type RawEntry, retryKey, type StreamClient } from "./stream-scripts.js";

/** One entry taken for a receive, with how often the group has delivered it (this time included). */
export interface StreamEntry {
  id: string;
  fields: Buffer[];
  deliveries: number;
}

export interface StreamReaderOptions {
  group: string;
  /** This broker instance's name in the group. */
  consumer: string;
  claimIdleMs: number;
  maxlen: number;
  /** Entry ids of `queue` this broker's consumers hold unsettled: what resync() must leave alone. */
  held(queue: string): ReadonlySet<string>;
}

/** An idle time that makes an entry claimable by anyone at once (XCLAIM ... IDLE; below "now" in ms). */
export const RELEASED_IDLE_MS = 1e12;

/**
 * The stream mode's blocking connection, shared by all consumers of a broker instance. Each round:
 * move due delayed publishes; create missing groups (XGROUP CREATE ... 0 MKSTREAM); every claim
 * period (and when a retry this process nacked is due), claim for each pending receive the due
 * retries and the entries idle past claimIdle (a dead consumer's, or ones a closing consumer
 * released), with their delivery counts (./stream-scripts.ts CLAIM); then XREADGROUP `>` COUNT max for
 * each, in one pipeline (on a Cluster, one per slot); when nothing came, one XREADGROUP BLOCK on
 * all their streams (on a Cluster, a pause: ./blocking-reader.ts CLUSTER_POLL_MS). After a
 * reconnect, entries pending for this consumer that no delivery holds (their reply was lost) are
 * released for the next claim, which this reader runs at once.
 */
export class StreamReader extends BlockingReader<StreamEntry> {
  readonly #groups = new Set<string>();
  readonly #cursors = new Map<string, string>();
  #nextMoveAt = 0;
  #nextClaimAt = 0;

  constructor(
    client: Redis,
    commands: Redis,
    clients: RedisClients,
    readonly options: StreamReaderOptions,
  ) {
    super(client, commands, clients, "stream reader");
  }

  /** A delayed copy of `queue` is due in `delayMs`: wake up in time to move it. */
  noteDelayed(queue: string, delayMs: number): void {
    const due = Date.now() + delayMs;
    if (!this.queues.includes(queue) || due >= this.#nextMoveAt) return;
    this.#nextMoveAt = due;
    this.wakeBy(due);
  }

  /** An entry of `queue` was nacked, due again in `delayMs`: claim it back in time. */
  noteRetry(queue: string, delayMs: number): void {
    const due = Date.now() + delayMs;
    if (!this.queues.includes(queue) || due >= this.#nextClaimAt) return;
    this.#nextClaimAt = due;
    this.wakeBy(due);
  }

  protected override onNewQueue(): void {
    this.#nextMoveAt = 0;
    this.#nextClaimAt = 0; // a new consumer first picks up what dead or closed ones left
  }

  #claimEveryMs(): number {
    return Math.min(5000, Math.max(50, Math.floor(this.options.claimIdleMs / 2)));
  }

  protected dueAt(): number {
    return Math.min(this.#nextMoveAt, this.#nextClaimAt);
  }

  protected async housekeep(): Promise<void> {
    const now = Date.now();
    if (now < this.#nextMoveAt) return;
    this.#nextMoveAt = now + DISCOVER_MS;
    const soonest = await moveDueDelayed(this.client, this.queues, { kind: "stream", maxlen: this.options.maxlen });
    this.#nextMoveAt = Math.min(this.#nextMoveAt, now + soonest);
  }

  protected async readReady(batch: ReadRequest<StreamEntry>[]): Promise<boolean> {
    let progressed = await this.#ensureGroups(batch);
    let open = batch.filter((request) => request.resolve !== undefined);
    if (open.length === 0) return progressed;
    if (Date.now() >= this.#nextClaimAt) {
      this.#nextClaimAt = Date.now() + this.#claimEveryMs();
      const { group, consumer, claimIdleMs } = this.options;
      const forgetAfter = Math.max(2 * claimIdleMs, 60_000);
      const cluster = this.client.isCluster;
      const replies = await pipelined(this.client, open, (pipeline, { queue, max }) => {
        const cursor = this.#cursors.get(queue) ?? "0-0";
        (pipeline as unknown as StreamClient).wqueueStreamClaimBuffer(2, queue, retryKey(queue, group, cluster), group, consumer, claimIdleMs, cursor, max, forgetAfter);
      });
      for (const [index, request] of open.entries()) {
        const [error, reply] = replies[index] ?? [new Error("no reply"), null];
        if (error) progressed = this.#failed(request, error) || progressed;
        else {
          const [cursor, entries, counts, nextDueMs] = reply as [Buffer, RawEntry[], number[], number];
          const next = cursor.toString();
          this.#cursors.set(request.queue, next);
          if (next !== "0-0") this.#nextClaimAt = 0; // the scan of the pending entries goes on next round
          if (nextDueMs >= 0) this.#nextClaimAt = Math.min(this.#nextClaimAt, Date.now() + nextDueMs);
          if (entries.length === 0) continue;
          this.finish(request, entries.map(([id, fields], at) => ({ id: id.toString(), fields, deliveries: counts[at] ?? 1 })));
          progressed = true;
        }
      }
      open = open.filter((request) => request.resolve !== undefined);
    }
    if (open.length === 0) return progressed;
    const replies = await pipelined(this.client, open, (pipeline, { queue, max }) =>
      pipeline.callBuffer("XREADGROUP", "GROUP", this.options.group, this.options.consumer, "COUNT", max, "STREAMS", queue, ">"),
    );
    for (const [index, request] of open.entries()) {
      const [error, reply] = replies[index] ?? [new Error("no reply"), null];
      if (error) progressed = this.#failed(request, error) || progressed;
      else if (this.#deliver(reply)) progressed = true;
    }
    return progressed;
  }

  protected async readBlocking(keys: string[], waitMs: number): Promise<void> {
    const count = Math.min(...this.pending.map((request) => request.max));
    const { group, consumer } = this.options;
    const args = ["GROUP", group, consumer, "COUNT", count, "BLOCK", Math.ceil(waitMs), "STREAMS", ...keys, ...keys.map(() => ">")];
    let reply: unknown;
    try {
      reply = await this.client.callBuffer("XREADGROUP", ...args);
    } catch (error) {
      if (!String((error as Error).message).startsWith("NOGROUP")) throw error;
      for (const key of keys) this.#groups.delete(key); // the stream or group went away (a restart without persistence)
      return;
    }
    this.#deliver(reply);
  }

  /** Hands an XREADGROUP reply's entries to the receives of their streams; true when there were any. */
  #deliver(reply: unknown): boolean {
    if (!Array.isArray(reply)) return false;
    let delivered = false;
    // One lookup table per reply: a find() per stream was O(streams x pending) over 1,000 queues.
    const byQueue = new Map<string, ReadRequest<StreamEntry>>();
    for (let index = this.pending.length - 1; index >= 0; index -= 1) {
      const request = this.pending[index] as ReadRequest<StreamEntry>;
      byQueue.set(request.queue, request); // the first pending one of a queue wins, as find() did
    }
    for (const [key, entries] of reply as [Buffer, RawEntry[]][]) {
      const queue = key.toString();
      const request = byQueue.get(queue);
      const taken = entries.map(([id, fields]) => ({ id: id.toString(), fields, deliveries: 1 }));
      if (taken.length === 0) continue;
      if (request) this.finish(request, taken);
      else void this.#release(queue, taken.map((entry) => entry.id)).catch(() => {}); // unreachable: only this loop removes requests
      delivered = true;
    }
    return delivered;
  }

  /** A missing group is created next round (progress: do not block); another reply error fails that receive. */
  #failed(request: ReadRequest<StreamEntry>, error: Error): boolean {
    if (error.name !== "ReplyError") throw error;
    if (error.message.startsWith("NOGROUP")) {
      this.#groups.delete(request.queue);
      return true;
    }
    this.finish(request, new Error(`queue ${request.queue}: ${error.message}`));
    return true;
  }

  /** Creates the group of every stream not known to have one, reading from the start ("0"). */
  async #ensureGroups(batch: ReadRequest<StreamEntry>[]): Promise<boolean> {
    let failed = false;
    for (const request of batch) {
      if (this.#groups.has(request.queue)) continue;
      try {
        await this.client.xgroup("CREATE", request.queue, this.options.group, "0", "MKSTREAM");
      } catch (error) {
        const message = (error as Error).message;
        if ((error as Error).name !== "ReplyError") throw error;
        if (!message.startsWith("BUSYGROUP")) {
          this.finish(request, new Error(`queue ${request.queue}: ${message}`));
          failed = true;
          continue;
        }
      }
      this.#groups.add(request.queue);
    }
    return failed;
  }

  /**
   * Makes entries claimable at once by any consumer (this one included), keeping their delivery
   * count. On this loop's own connection: after a reconnect it is the one known to work.
   */
  #release(queue: string, ids: string[]): Promise<unknown> {
    const { group, consumer } = this.options;
    return this.client.xclaim(queue, group, consumer, 0, ...ids, "IDLE", RELEASED_IDLE_MS, "JUSTID");
  }

  protected override async resync(): Promise<void> {
    this.#groups.clear();
    for (const queue of this.queues) {
      const pending = (await this.client.xpending(queue, this.options.group, "-", "+", 1000, this.options.consumer).catch(
        (error: Error) => {
          if (error.name === "ReplyError") return []; // no stream or group any more: nothing was kept
          throw error;
        },
      )) as [string, string, number, number][];
      const held = this.options.held(queue);
      const orphans = pending.map(([id]) => id).filter((id) => !held.has(id));
      if (orphans.length > 0) await this.#release(queue, orphans);
    }
    this.#nextClaimAt = 0;
  }
}
