import type { Redis } from "ioredis";
import { BlockingReader, ReadRequest } from "./blocking-reader.js";
import { bySlot } from "./cluster-keys.js";
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

/**
 * A consumer's receive, take or watch (one at a time):
 * - receive: waits until it gets 1..max entries (the plain contract);
 * - take: claims (due retries, idle entries) and reads (`>`) what is there in the next round, [] if nothing;
 * - watch: reads nothing for the group, answered [] once its stream has an entry past the group's
 *   last delivered one, or when a claim is due (a retry or a dead consumer's entry may wait; the
 *   take that follows claims it).
 */
export class StreamRequest extends ReadRequest<StreamEntry> {
  mode: "receive" | "take" | "watch" = "receive";
  /** Asked since its stream was last looked at: looked at in the next round, not at the next sweep. */
  fresh = true;
  /** Woken because a claim would find something: its next take or receive runs the claim at once. */
  claimNext = false;
  /** A take's signal: a take never waits, so nothing but a close ends it early. */
  readonly never: AbortSignal = new AbortController().signal;

  constructor(
    queue: string,
    readonly owner: StreamReader,
  ) {
    super(queue, owner);
  }
}

/** Streams per claimable probe call: bounds the arguments of one call. */
const CLAIMABLE_CHUNK = 250;

/** While other streams keep the reader busy (it never blocks), watches are looked at this often. */
export const WATCH_SWEEP_MS = 100;

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
 * released for the next claim, which this reader runs at once. A busy stream's next read goes out
 * at once, beside the rounds (#readBeside).
 */
export class StreamReader extends BlockingReader<StreamEntry> {
  readonly #groups = new Set<string>();
  readonly #cursors = new Map<string, string>();
  /**
   * Per stream, an id no later than the group's last delivered entry: a watch waits for entries
   * after it (XREAD). Set from what `>` reads deliver; dropped when a take finds nothing (another
   * consumer of the group may have read further), then read again with XINFO GROUPS.
   */
  readonly #delivered = new Map<string, string>();
  #nextSweepAt = 0;
  /** When a round last answered a request (readBlocking polls instead of blocking soon after). */
  #progressAt = 0;
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

  /** Claims and reads what the request's stream holds now in the next round: [] if nothing. */
  take(request: StreamRequest, max: number): Promise<StreamEntry[]> {
    return this.#ask(request, "take", max, request.never);
  }

  /** Resolves once the request's stream may hold something for the group, or on abort or close; takes nothing. */
  async watch(request: StreamRequest, signal: AbortSignal): Promise<void> {
    await this.#ask(request, "watch", 1, signal);
  }

  override read(request: ReadRequest<StreamEntry>, max: number, signal: AbortSignal): Promise<StreamEntry[]> {
    if (request instanceof StreamRequest) return this.#ask(request, "receive", max, signal);
    return super.read(request, max, signal);
  }

  #ask(request: StreamRequest, mode: StreamRequest["mode"], max: number, signal: AbortSignal): Promise<StreamEntry[]> {
    if (mode !== "watch" && request.busy && !request.claimNext && !request.beside && this.#groups.has(request.queue) && !signal.aborted && this.besideAllowed()) {
      return this.#readBeside(request, mode, max, signal);
    }
    return this.#askRound(request, mode, max, signal);
  }

  /**
   * A busy stream's receive or take: its XREADGROUP `>` goes out at once, beside the rounds (see
   * BlockingReader.besideAllowed; claims stay the rounds' work, which come first when due). Found
   * nothing: a take gets [], a receive waits in the rounds as any other. A failed read is left to
   * the rounds too, which retry it and report what persists.
   */
  async #readBeside(request: StreamRequest, mode: StreamRequest["mode"], max: number, signal: AbortSignal): Promise<StreamEntry[]> {
    const { group, consumer } = this.options;
    const { queue } = request;
    request.beside = true;
    request.cancelled = false;
    let entries: StreamEntry[] | undefined;
    try {
      const reply = await this.beside(this.client.callBuffer("XREADGROUP", "GROUP", group, consumer, "COUNT", Math.max(1, Math.floor(max)), "STREAMS", queue, ">"));
      entries = Array.isArray(reply) ? this.#taken(queue, (reply as [Buffer, RawEntry[]][])[0]?.[1] ?? []) : [];
    } catch (error) {
      if (String((error as Error).message).startsWith("NOGROUP")) this.#groups.delete(queue);
    } finally {
      request.beside = false;
    }
    request.busy = entries !== undefined && entries.length >= max;
    if (entries !== undefined && entries.length > 0) return entries;
    if (entries !== undefined && mode === "take") {
      this.#delivered.delete(queue); // as a take in a round that found nothing
      return [];
    }
    if (request.cancelled) return []; // cancelled while the read was out: nothing to wait for
    return this.#askRound(request, mode, max, signal);
  }

  #askRound(request: StreamRequest, mode: StreamRequest["mode"], max: number, signal: AbortSignal): Promise<StreamEntry[]> {
    request.mode = mode;
    request.fresh = true;
    const entries = super.read(request, max, signal);
    if (this.pending.length > 1) this.wakeBy(Date.now()); // a blocking read on other streams: look now
    return entries;
  }

  protected async readReady(batch: ReadRequest<StreamEntry>[]): Promise<boolean> {
    const progressed = await this.#readReady(batch);
    if (progressed) this.#progressAt = Date.now();
    return progressed;
  }

  /** Watches and reads (receives, takes) go out side by side: a round costs one round trip, not two. */
  async #readReady(batch: ReadRequest<StreamEntry>[]): Promise<boolean> {
    const grouped = await this.#ensureGroups(batch);
    const open = batch.filter((request) => request.resolve !== undefined);
    if (open.length === 0) return grouped;
    const claimDue = Date.now() >= this.#nextClaimAt;
    if (claimDue) this.#nextClaimAt = Date.now() + this.#claimEveryMs();
    const watches: StreamRequest[] = [];
    const reads: ReadRequest<StreamEntry>[] = [];
    for (const request of open) (isWatch(request) ? watches : reads).push(request);
    const [watched, read] = await Promise.all([
      watches.length > 0 ? this.#watchRound(watches, claimDue) : false,
      reads.length > 0 ? this.#readRound(reads, claimDue) : false,
    ]);
    return grouped || watched || read;
  }

  /** A claim is due: wakes the watches whose stream has something to claim (their takes claim it); then looks at the others. */
  async #watchRound(watches: StreamRequest[], claimDue: boolean): Promise<boolean> {
    const woken = claimDue ? await this.#wakeClaimable(watches) : false;
    return (await this.#lookAt(watches.filter((request) => request.resolve !== undefined))) || woken;
  }

  /** Claims (when due, or asked for) then XREADGROUP `>` for each request, pipelined; a take that found nothing gets []. */
  async #readRound(reads: ReadRequest<StreamEntry>[], claimDue: boolean): Promise<boolean> {
    let progressed = false;
    let open = reads;
    const claiming = claimDue ? open : open.filter((request) => request instanceof StreamRequest && request.claimNext);
    if (claiming.length > 0) {
      const { group, consumer, claimIdleMs } = this.options;
      const forgetAfter = Math.max(2 * claimIdleMs, 60_000);
      const cluster = this.client.isCluster;
      for (const request of claiming) if (request instanceof StreamRequest) request.claimNext = false;
      const replies = await pipelined(this.client, claiming, (pipeline, { queue, max }) => {
        const cursor = this.#cursors.get(queue) ?? "0-0";
        return (pipeline as unknown as StreamClient).wqueueStreamClaimBuffer(2, queue, retryKey(queue, group, cluster), group, consumer, claimIdleMs, cursor, max, forgetAfter);
      });
      for (const [index, request] of claiming.entries()) {
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
      else if (this.#deliver(reply, request)) progressed = true;
    }
    for (const request of open) {
      if (request.resolve === undefined || !(request instanceof StreamRequest) || request.mode !== "take") continue;
      this.#delivered.delete(request.queue); // found nothing: the group may have read past what this reader saw
      this.finish(request, []);
      progressed = true;
    }
    return progressed;
  }

  /** One read-only script call per chunk (per slot on a Cluster): wakes the watches whose stream has a retry due or an idle entry to claim. */
  async #wakeClaimable(watches: StreamRequest[]): Promise<boolean> {
    const { group, claimIdleMs } = this.options;
    const cluster = this.client.isCluster;
    let answered = false;
    for (const slot of bySlot(watches, (request) => request.queue, cluster)) {
      for (let start = 0; start < slot.length; start += CLAIMABLE_CHUNK) {
        const chunk = slot.slice(start, start + CLAIMABLE_CHUNK);
        const keys = chunk.flatMap((request) => [request.queue, retryKey(request.queue, group, cluster)]);
        const found = await (this.client as unknown as StreamClient).wqueueStreamClaimable(keys.length, ...keys, group, claimIdleMs);
        for (const position of found) {
          const request = chunk[position - 1];
          if (request === undefined || request.resolve === undefined) continue;
          request.claimNext = true;
          this.finish(request, []);
          answered = true;
        }
      }
    }
    return answered;
  }

  /**
   * The watches worth a look (asked since their last look, or all of them every WATCH_SWEEP_MS):
   * one XREAD over their streams from the group's last delivered entry (per slot on a Cluster),
   * without blocking; a watch whose stream has an entry past it is answered.
   */
  async #lookAt(watches: StreamRequest[]): Promise<boolean> {
    const now = Date.now();
    const sweep = now >= this.#nextSweepAt;
    if (sweep) this.#nextSweepAt = now + WATCH_SWEEP_MS;
    const looking = watches.filter((request) => sweep || request.fresh);
    if (looking.length === 0) return false;
    await this.#learnDelivered(looking);
    let answered = false;
    for (const group of bySlot(looking, (request) => request.queue, this.client.isCluster)) {
      const queues = group.map((request) => request.queue);
      const reply = await this.client.call("XREAD", "COUNT", 1, "STREAMS", ...queues, ...queues.map((queue) => this.#delivered.get(queue) ?? "0-0"));
      answered = this.#wakeWatches(reply) || answered;
    }
    for (const request of looking) request.fresh = false;
    return answered;
  }

  /** Reads the group's last delivered id (XINFO GROUPS) of the watched streams this reader has none for. */
  async #learnDelivered(watches: StreamRequest[]): Promise<void> {
    const unknown = watches.filter((request) => !this.#delivered.has(request.queue));
    if (unknown.length === 0) return;
    const replies = await pipelined(this.client, unknown, (pipeline, { queue }) => pipeline.call("XINFO", "GROUPS", queue));
    for (const [index, request] of unknown.entries()) {
      const [error, reply] = replies[index] ?? [new Error("no reply"), null];
      if (error) continue; // the stream went away: "0-0" wakes the watch, whose take finds out
      const id = lastDeliveredOf(reply, this.options.group);
      if (id !== undefined) this.#delivered.set(request.queue, id);
    }
  }

  /** Answers the watches of the streams an XREAD reply has entries for; true if any. */
  #wakeWatches(reply: unknown): boolean {
    if (!Array.isArray(reply)) return false;
    const streams = new Set((reply as [string | Buffer, unknown[]][]).filter(([, entries]) => entries.length > 0).map(([key]) => key.toString()));
    let answered = false;
    for (const request of this.pending.slice()) {
      if (isWatch(request) && streams.has(request.queue)) {
        this.finish(request, []);
        answered = true;
      }
    }
    return answered;
  }

  protected async readBlocking(waitMs: number): Promise<void> {
    const watching = this.pending.filter(isWatch).length;
    if (watching > 0 && watching < this.pending.length) return this.pause(Math.min(waitMs, WATCH_SWEEP_MS)); // both kinds wait: poll
    // Only watches wait, but a round made progress within the sweep interval: the queues are busy
    // and a take will come soon. Poll as above: a pause ends at once when a request comes, where
    // a blocking XREAD over every watched stream (a command of 2 x streams arguments) would need
    // a CLIENT UNBLOCK round trip; over 1,000 streams that churn was a fifth of the worker's CPU.
    if (watching > 0 && Date.now() - this.#progressAt < WATCH_SWEEP_MS) return this.pause(Math.min(waitMs, WATCH_SWEEP_MS));
    const keys = this.pendingQueues();
    if (watching > 0) {
      // Only watches wait: one blocking XREAD over all their streams, from the group's last delivered
      // entries (a stream whose XINFO failed, e.g. deleted: from now; the next sweep looks from the start).
      const reply = await this.client.call("XREAD", "BLOCK", Math.ceil(waitMs), "STREAMS", ...keys, ...keys.map((queue) => this.#delivered.get(queue) ?? "$"));
      this.#wakeWatches(reply);
      return;
    }
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

  /** A read's entries of `queue`, from an XREADGROUP `>` (delivered for the first time); notes the group's last delivered id. */
  #taken(queue: string, entries: RawEntry[]): StreamEntry[] {
    const taken = entries.map(([id, fields]) => ({ id: id.toString(), fields, deliveries: 1 }));
    if (taken.length > 0) this.#delivered.set(queue, (taken[taken.length - 1] as StreamEntry).id); // read with `>`: the group's last delivered
    return taken;
  }

  /**
   * Hands an XREADGROUP reply's entries to the receives of their streams; true when there were any.
   * `to`: the request the reply answers (a read of its stream alone), else each stream's first pending request.
   */
  #deliver(reply: unknown, to?: ReadRequest<StreamEntry>): boolean {
    if (!Array.isArray(reply)) return false;
    let delivered = false;
    // Without `to`, one lookup table per reply: a find() per stream was O(streams x pending) over 1,000 queues.
    let byQueue: Map<string, ReadRequest<StreamEntry>> | undefined;
    if (to === undefined) {
      byQueue = new Map();
      for (let index = this.pending.length - 1; index >= 0; index -= 1) {
        const request = this.pending[index] as ReadRequest<StreamEntry>;
        byQueue.set(request.queue, request); // the first pending one of a queue wins, as find() did
      }
    }
    for (const [key, entries] of reply as [Buffer, RawEntry[]][]) {
      if (entries.length === 0) continue;
      const queue = key.toString();
      const request = to ?? byQueue?.get(queue);
      const taken = this.#taken(queue, entries);
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

  /** Creates the group of every stream not known to have one, reading from the start ("0"): one pipeline. */
  async #ensureGroups(batch: ReadRequest<StreamEntry>[]): Promise<boolean> {
    const missing = [...new Map(batch.filter((request) => !this.#groups.has(request.queue)).map((request) => [request.queue, request])).values()];
    if (missing.length === 0) return false;
    const replies = await pipelined(this.client, missing, (pipeline, { queue }) => pipeline.xgroup("CREATE", queue, this.options.group, "0", "MKSTREAM"));
    let failed = false;
    for (const [index, request] of missing.entries()) {
      const [error] = replies[index] ?? [new Error("no reply"), null];
      if (error !== null && !error.message.startsWith("BUSYGROUP")) {
        if (error.name !== "ReplyError") throw error;
        for (const asking of batch) if (asking.queue === request.queue) this.finish(asking, new Error(`queue ${request.queue}: ${error.message}`));
        failed = true;
        continue;
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

function isWatch(request: ReadRequest<StreamEntry>): request is StreamRequest {
  return request instanceof StreamRequest && request.mode === "watch";
}

/** The `last-delivered-id` of `group` in an XINFO GROUPS reply (a list of flat field/value lists). */
function lastDeliveredOf(reply: unknown, group: string): string | undefined {
  if (!Array.isArray(reply)) return undefined;
  for (const entry of reply as unknown[][]) {
    const fields = new Map<string, unknown>();
    for (let index = 0; index + 1 < entry.length; index += 2) fields.set(String(entry[index]), entry[index + 1]);
    if (String(fields.get("name")) === group) return String(fields.get("last-delivered-id"));
  }
  return undefined;
}
