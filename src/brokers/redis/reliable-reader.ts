import type { Redis } from "ioredis";
import { BLOCK_MS, BlockingReader, ReadRequest } from "./blocking-reader.js";
import { bySlot } from "./cluster-keys.js";
import { DISCOVER_MS, moveDueDelayed } from "./delayed-set.js";
import type { RedisClients } from "../shared/redis-clients.js";
import { type ReliableKeys, reliableKeys } from "./reliable-item.js";
import type { ReliableClient } from "./reliable-scripts.js";

/**
 * The default of `?poll=MS`: while the reader waits on two or more receives, it looks at every
 * waiting queue this often: the longest an idle queue's message waits to be claimed (plus a round
 * trip). With one receive pending, it blocks in BLMOVE instead and a message is claimed as soon as
 * it is pushed.
 */
export const POLL_MS = 100;
/** Receives per claim script call (5 keys each): bounds the arguments of one call. */
const CLAIM_CHUNK = 100;
/** Above this many receives to look at, one read-only probe finds the non-empty queues first. */
const PROBE_OVER = 16;
/** Queues per probe, reap or delayed-move call. */
const QUEUE_CHUNK = 500;

/** One consumer as the reader sees it. */
export interface ReliableMember {
  readonly keys: ReliableKeys;
  readonly id: string;
  /** The items this consumer has handed out and not yet settled (their stored, tagged form). */
  unsettled(): Iterable<Buffer>;
}

/**
 * A member's receive, take or watch (one at a time):
 * - receive: waits until it claims 1..max items (the plain contract);
 * - take: claims what is there in the next round, [] if nothing;
 * - watch: claims nothing, answered [] once its queue is found non-empty (idling without credit).
 */
export class ReliableRequest extends ReadRequest<Buffer> {
  /** Asked again since its queue was last found empty: claimed from at once, not at the next sweep. */
  fresh = true;
  mode: "receive" | "take" | "watch" = "receive";
  /** A take's signal: a take never waits, so nothing but a close ends it early (one per request: no listeners pile up on a shared one). */
  readonly never: AbortSignal = new AbortController().signal;

  constructor(
    readonly member: ReliableMember,
    readonly owner: ReliableReader,
  ) {
    super(member.keys.source, owner);
  }
}


export interface ReliableReaderOptions {
  heartbeatTtlMs: number;
  /** The sweep interval over idle queues (POLL_MS by default). */
  pollMs: number;
}

/**
 * The reliable mode's one reading connection per broker, shared by all its consumers (one
 * consumer per queue as a worker opens them). Each round: move due delayed messages of every queue
 * read so far (one call per QUEUE_CHUNK queues), reap consumers whose heartbeat expired (every
 * heartbeat TTL / 2, all queues in one call per chunk), then claim for the receives worth trying:
 * those asked again since their queue was last found empty, and every POLL_MS all of them (the
 * sweep; `?poll=`). One claim script call moves up to `max` items for each of CLAIM_CHUNK receives into their
 * consumers' processing lists; above PROBE_OVER receives a read-only probe first finds which
 * queues hold anything. When nothing came: with a single receive pending, BLMOVE waits for its
 * queue (interruptible by CLIENT UNBLOCK) and the claim script adopts the item, as before; with
 * more, the reader pauses until the next sweep. So an idle queue's message is claimed within
 * POLL_MS, at the price of one probe over the idle queues per POLL_MS, and a worker over any number
 * of queues holds two connections to this Redis (this one and the broker's command connection).
 *
 * Idling without credit (the consumer's waitForMessages and take): a watch is answered by the
 * probe once its queue holds anything (alone, by a BLMOVE of the list onto its own tail: atomic,
 * order kept, nothing taken); a take is claimed for in the next round, pipelined with the probe,
 * and answered [] when its queue held nothing.
 *
 * A reply lost with its connection (Redis restarted, the watchdog cut a silent link) can leave
 * items in a processing list that this process never saw: after every reconnect, resync() hands
 * back to the head of its queue whatever sits in a member's processing list that no delivery of
 * that member holds.
 *
 * On a Redis Cluster the reader always polls (no BLMOVE: see CLUSTER_POLL_MS in
 * ./blocking-reader.ts), and every call over several queues (claim, probe, reap, delayed moves) is
 * made once per slot, so each script touches the keys of one slot.
 *
 * A busy queue's next claim goes out at once, beside the rounds (#claimBeside).
 */
export class ReliableReader extends BlockingReader<Buffer> {
  #nextMoveAt = 0;
  #nextReapAt = 0;
  #nextSweepAt = 0;
  readonly #members = new Set<ReliableMember>();
  readonly #script: ReliableClient;

  constructor(
    client: Redis,
    commands: Redis,
    clients: RedisClients,
    readonly options: ReliableReaderOptions,
  ) {
    super(client, commands, clients, "reliable reader");
    this.#script = client as ReliableClient;
  }

  /** A consumer starts reading: its processing list is checked after a reconnect. */
  join(member: ReliableMember): ReliableRequest {
    this.#members.add(member);
    return new ReliableRequest(member, this);
  }

  /** A consumer has closed (its receive ended first). */
  leave(member: ReliableMember): void {
    this.#members.delete(member);
  }

  override read(request: ReadRequest<Buffer>, max: number, signal: AbortSignal): Promise<Buffer[]> {
    return this.#ask(request as ReliableRequest, "receive", max, signal);
  }

  /** Claims up to `max` items of the request's queue in the next round: [] if it holds none. */
  take(request: ReliableRequest, max: number): Promise<Buffer[]> {
    return this.#ask(request, "take", max, request.never);
  }

  /** Resolves once the request's queue is found non-empty, or on abort or close; claims nothing. */
  async watch(request: ReliableRequest, signal: AbortSignal): Promise<void> {
    await this.#ask(request, "watch", 1, signal);
  }

  #ask(request: ReliableRequest, mode: ReliableRequest["mode"], max: number, signal: AbortSignal): Promise<Buffer[]> {
    if (mode !== "watch" && request.busy && !request.beside && !signal.aborted && this.besideAllowed()) return this.#claimBeside(request, mode, max, signal);
    return this.#askRound(request, mode, max, signal);
  }

  /**
   * A busy queue's receive or take: its claim goes out at once, beside the rounds (see
   * BlockingReader.besideAllowed; reaping, delayed moves and sweeps stay the rounds' work, which
   * come first when due). Found nothing: a take gets [], a receive waits in the rounds as any
   * other. A failed claim is left to the rounds too (after the resync it asks for).
   */
  async #claimBeside(request: ReliableRequest, mode: ReliableRequest["mode"], max: number, signal: AbortSignal): Promise<Buffer[]> {
    request.beside = true;
    request.cancelled = false;
    request.max = Math.max(1, Math.floor(max));
    let items: Buffer[] | Error | undefined;
    try {
      [items] = await this.beside(this.#claimMany([request]));
    } catch {
      // the rounds retry it, and report what persists
    } finally {
      request.beside = false;
    }
    request.busy = Array.isArray(items) && items.length >= request.max;
    if (items instanceof Error) throw items;
    if (items !== undefined && (items.length > 0 || mode === "take")) return items;
    if (request.cancelled) return []; // cancelled while the claim was out: nothing to wait for
    return this.#askRound(request, mode, max, signal);
  }

  #askRound(request: ReliableRequest, mode: ReliableRequest["mode"], max: number, signal: AbortSignal): Promise<Buffer[]> {
    request.mode = mode;
    request.fresh = true;
    const items = super.read(request, max, signal);
    if (this.pending.length > 1) this.wakeBy(Date.now()); // leave a BLMOVE on one queue for polling
    return items;
  }

  /**
   * This process pushed to `queue`: a receive waiting on it is tried now, not at the next sweep.
   * `ranked`: into its priority set, which a BLMOVE on the list does not see, so that is cut short too.
   */
  notePushed(queue: string, ranked = false): void {
    if (!this.#polling() && !ranked) return; // a lone receive waits in BLMOVE, which sees the push
    let waiting = false;
    for (const request of this.pending as ReliableRequest[]) {
      if (request.queue !== queue) continue;
      request.fresh = true;
      waiting = true;
    }
    if (waiting) this.wakeBy(Date.now());
  }

  /** A delayed message of `queue` is due in `delayMs`: wake up in time to move it. */
  noteDelayed(queue: string, delayMs: number): void {
    const due = Date.now() + delayMs;
    if (!this.queues.includes(queue) || due >= this.#nextMoveAt) return;
    this.#nextMoveAt = due;
    this.wakeBy(due);
  }

  protected override onNewQueue(): void {
    this.#nextMoveAt = 0; // a queue new to this reader may have delayed messages due already
  }

  protected override blockMs(): number {
    return Math.min(BLOCK_MS, Math.max(10, Math.floor(this.options.heartbeatTtlMs / 2)));
  }

  /** More than one receive waits (or any on a Cluster): the reader polls, so the next sweep is due like housekeeping. */
  #polling(): boolean {
    return this.pending.length > 1 || this.client.isCluster;
  }

  protected dueAt(): number {
    const sweep = this.#polling() ? this.#nextSweepAt : Number.POSITIVE_INFINITY;
    return Math.min(this.#nextMoveAt, this.#nextReapAt, sweep);
  }

  protected async housekeep(): Promise<void> {
    const now = Date.now();
    if (now >= this.#nextMoveAt) {
      this.#nextMoveAt = now + DISCOVER_MS;
      for (const queues of chunks(this.queues, QUEUE_CHUNK)) {
        this.#nextMoveAt = Math.min(this.#nextMoveAt, now + (await moveDueDelayed(this.client, queues)));
      }
      // What came due may have gone to a priority set, which a lone BLMOVE on the list would not see.
      for (const request of this.pending as ReliableRequest[]) request.fresh = true;
    }
    if (now >= this.#nextReapAt) {
      this.#nextReapAt = now + Math.max(50, Math.floor(this.options.heartbeatTtlMs / 2));
      await Promise.all(this.#groups(this.queues, (queue) => queue, QUEUE_CHUNK).map((queues) => this.#reapMany(queues)));
    }
  }

  /** Every reaped consumer's processing list goes back to its queue: one call for these queues (of one slot on a Cluster). */
  async #reapMany(queues: string[]): Promise<void> {
    const keys = queues.map((queue) => reliableKeys(queue, "", this.client.isCluster));
    const args: string[] = [];
    for (const { consumers, source } of keys) args.push(consumers, source);
    for (const { heartbeatPrefix, processingPrefix } of keys) args.push(heartbeatPrefix, processingPrefix);
    const counts = await this.#script.wqueueReliableReapMany(queues.length * 2, ...args);
    for (const [index, returned] of counts.entries()) {
      if (returned > 0) this.clients.log("warn", `${this.name}: handed ${returned} message(s) of dead consumers of ${queues[index]} back to the queue`);
    }
  }

  /** Groups of at most `size` for one script call each; on a Cluster, each of one slot. */
  #groups<T>(items: readonly T[], queueOf: (item: T) => string, size: number): T[][] {
    return bySlot(items, queueOf, this.client.isCluster).flatMap((group) => chunks(group, size));
  }

  protected async readReady(batch: ReadRequest<Buffer>[]): Promise<boolean> {
    const now = Date.now();
    const sweep = now >= this.#nextSweepAt;
    if (sweep) this.#nextSweepAt = now + this.options.pollMs;
    const candidates = (batch as ReliableRequest[]).filter((request) => request.mode === "take" || sweep || request.fresh);
    if (candidates.length === 0) return false;
    // Takes claim at once (a take on an empty queue is answered [] by its claim). Watches, and
    // receives past PROBE_OVER, go through one read-only probe, sent with the takes' claims
    // (pipelined, one round trip): a watch on a queue found non-empty is answered, a receive on
    // one found empty waits for the next sweep.
    const takes: ReliableRequest[] = [];
    const watches: ReliableRequest[] = [];
    const receives: ReliableRequest[] = [];
    for (const request of candidates) (request.mode === "take" ? takes : request.mode === "watch" ? watches : receives).push(request);
    const probing = receives.length > PROBE_OVER ? [...watches, ...receives] : watches;
    const claimingFirst = probing === watches ? [...takes, ...receives] : takes;
    const [found, claimedFirst] = await Promise.all([probing.length > 0 ? this.#probe(probing) : [], this.#claimAndFinish(claimingFirst)]);
    let answered = claimedFirst;
    const claiming: ReliableRequest[] = [];
    for (const request of found) {
      if (request.mode !== "watch") claiming.push(request);
      else {
        this.finish(request, []);
        answered = true;
      }
    }
    return (await this.#claimAndFinish(claiming)) || answered;
  }

  /** Claims for these requests in one script call per chunk (per slot on a Cluster) and answers them; true if any was answered. */
  async #claimAndFinish(claiming: ReliableRequest[]): Promise<boolean> {
    if (claiming.length === 0) return false;
    let answered = false;
    const groups = this.#groups(claiming, (request) => request.queue, CLAIM_CHUNK);
    const claims = await Promise.all(groups.map((group) => this.#claimMany(group)));
    for (const [chunk, group] of groups.entries()) {
      const results = claims[chunk] ?? [];
      for (const [index, request] of group.entries()) {
        const result = results[index];
        if (result instanceof Error || (result !== undefined && result.length > 0) || request.mode === "take") {
          this.finish(request, result ?? []);
          answered = true;
        } else request.fresh = false;
      }
    }
    return answered;
  }

  /** The requests whose queue holds something; the others are marked as found empty. */
  async #probe(requests: ReliableRequest[]): Promise<ReliableRequest[]> {
    const found: ReliableRequest[] = [];
    const groups = this.#groups(requests, (request) => request.queue, QUEUE_CHUNK);
    const replies = await Promise.all(groups.map((group) => this.#script.wqueueReliableProbe(group.length, ...group.map((request) => request.queue))));
    for (const [chunk, group] of groups.entries()) {
      const hits = new Set(replies[chunk]);
      for (const [index, request] of group.entries()) {
        if (hits.has(index + 1)) found.push(request);
        else request.fresh = false;
      }
    }
    return found;
  }

  /** One claim script call for these requests: per request its items, or an Error for its receive alone. */
  async #claimMany(requests: ReliableRequest[]): Promise<(Buffer[] | Error)[]> {
    const keys: string[] = [];
    const args: (string | number)[] = [this.options.heartbeatTtlMs];
    for (const { member, max } of requests) {
      const { source, processing, ids, consumers, heartbeat } = member.keys;
      keys.push(source, processing, ids, consumers, heartbeat);
      args.push(max, member.id);
    }
    let replies: [0 | 1, ...Buffer[]][];
    try {
      replies = await this.#script.wqueueReliableClaimManyBuffer(keys.length, ...keys, ...args);
    } catch (error) {
      this.requestResync(); // the script may have run (or half run), its reply lost
      throw error;
    }
    return requests.map((request, index) => {
      const [ok, ...items] = replies[index] ?? [1];
      return ok === 1 ? items : new Error(`queue ${request.queue}: ${String(items[0])}`);
    });
  }

  protected async readBlocking(waitMs: number): Promise<void> {
    const request = this.pending[0] as ReliableRequest | undefined;
    if (request === undefined || this.#polling()) return this.pause(waitMs);
    if (request.mode === "take") return; // answered by the next round, never waits
    const { source, processing } = request.member.keys;
    if (request.mode === "watch") {
      // Waits for the list without taking: the item found goes back to the tail it came from
      // (one atomic LMOVE onto the same list), so the order is kept for every consumer.
      const seen = await this.client.blmoveBuffer(source, source, "RIGHT", "RIGHT", (waitMs / 1000).toFixed(3));
      if (seen !== null && this.pending.includes(request)) this.finish(request, []);
      return;
    }
    const moved = await this.client.blmoveBuffer(source, processing, "LEFT", "RIGHT", (waitMs / 1000).toFixed(3));
    if (moved === null) return;
    const items = await this.#claim(request, moved);
    if (items instanceof Error) {
      this.requestResync(); // the moved item may still sit untagged in the processing list
      this.finish(request, items);
    } else if (items.length === 0) {
      // The reaper took the item back before the claim (this consumer had missed its heartbeat): read again.
    } else if (this.pending.includes(request)) this.finish(request, items);
    else await this.#script.wqueueReliableReturn(2, processing, source, ...items); // unreachable: only this loop removes requests
  }

  /** The single claim script, adopting the BLMOVEd item; a reply error comes back as an Error for that receive. */
  async #claim(request: ReliableRequest, adopt: Buffer): Promise<Buffer[] | Error> {
    const { keys, id } = request.member;
    try {
      return await this.#script.wqueueReliableClaimBuffer(5, keys.source, keys.processing, keys.ids, keys.consumers, keys.heartbeat, request.max, id, this.options.heartbeatTtlMs, adopt);
    } catch (error) {
      if ((error as Error).name !== "ReplyError") {
        this.requestResync(); // the script may have run, its reply lost
        throw error;
      }
      return new Error(`queue ${keys.source}: ${(error as Error).message}`);
    }
  }

  /** Hands back what sits in each member's processing list without a delivery of that member to settle it. */
  protected override async resync(): Promise<void> {
    for (const member of [...this.#members]) await this.#resyncMember(member);
  }

  async #resyncMember(member: ReliableMember): Promise<void> {
    const { source, processing } = member.keys;
    const stored = await this.client.lrangeBuffer(processing, 0, -1);
    if (stored.length === 0) return;
    const held = new Map<string, number>();
    for (const item of member.unsettled()) {
      const key = item.toString("latin1");
      held.set(key, (held.get(key) ?? 0) + 1);
    }
    const orphans: Buffer[] = [];
    for (const item of stored) {
      const key = item.toString("latin1");
      const count = held.get(key) ?? 0;
      if (count > 0) held.set(key, count - 1);
      else orphans.push(item);
    }
    if (orphans.length === 0) return;
    const returned = await this.#script.wqueueReliableReturn(2, processing, source, ...orphans);
    this.clients.log("info", `${this.name}: handed ${returned} message(s) whose reply was lost back to ${source}`);
  }
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let start = 0; start < items.length; start += size) out.push(items.slice(start, start + size));
  return out;
}

