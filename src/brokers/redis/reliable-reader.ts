import type { Redis } from "ioredis";
import { BLOCK_MS, BlockingReader, type ReadRequest } from "./blocking-reader.js";
import { DISCOVER_MS, moveDueDelayed } from "./delayed-set.js";
import type { RedisClients } from "../shared/redis-clients.js";
import type { ReliableKeys } from "./reliable-item.js";
import type { ReliableClient } from "./reliable-scripts.js";

export interface ReliableReaderOptions {
  keys: ReliableKeys;
  consumerId: string;
  heartbeatTtlMs: number;
  /** The items this consumer has handed out and not yet settled (their stored, tagged form). */
  unsettled(): Iterable<Buffer>;
}

/**
 * One reliable-mode consumer's blocking connection (BLMOVE names a single source, so readers of
 * this mode are not shared between queues). Each round: move due delayed messages, reap consumers
 * whose heartbeat expired (every heartbeat TTL / 2), then the claim script moves up to `max` items
 * from the queue into this consumer's processing list in one call while a backlog lasts; on an
 * empty queue, BLMOVE waits for one item (interruptible by CLIENT UNBLOCK) and the claim script
 * adopts it, with whatever arrived meanwhile. Blocking never outlasts half the heartbeat TTL, and
 * every claim refreshes the heartbeat, so the consumer cannot lapse while it waits.
 *
 * A reply lost with its connection (Redis restarted, the watchdog cut a silent link) can leave
 * items in the processing list that this process never saw: after every reconnect, resync() hands
 * back to the head of the queue whatever is there that no delivery of ours holds.
 */
export class ReliableReader extends BlockingReader<Buffer> {
  #nextMoveAt = 0;
  #nextReapAt = 0;
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

  /** A delayed message of this queue is due in `delayMs`: wake up in time to move it. */
  noteDelayed(delayMs: number): void {
    const due = Date.now() + delayMs;
    if (due >= this.#nextMoveAt) return;
    this.#nextMoveAt = due;
    this.wakeBy(due);
  }

  protected override blockMs(): number {
    return Math.min(BLOCK_MS, Math.max(10, Math.floor(this.options.heartbeatTtlMs / 2)));
  }

  protected dueAt(): number {
    return Math.min(this.#nextMoveAt, this.#nextReapAt);
  }

  protected async housekeep(): Promise<void> {
    const now = Date.now();
    const { keys, heartbeatTtlMs } = this.options;
    if (now >= this.#nextMoveAt) {
      this.#nextMoveAt = now + DISCOVER_MS;
      const [wait = Number.POSITIVE_INFINITY] = await moveDueDelayed(this.client, [keys.source]);
      this.#nextMoveAt = Math.min(this.#nextMoveAt, now + wait);
    }
    if (now >= this.#nextReapAt) {
      this.#nextReapAt = now + Math.max(50, Math.floor(heartbeatTtlMs / 2));
      const returned = await this.#script.wqueueReliableReap(2, keys.consumers, keys.source, keys.heartbeatPrefix, keys.processingPrefix);
      if (returned > 0) this.clients.log("warn", `${this.name}: handed ${returned} message(s) of dead consumers of ${keys.source} back to the queue`);
    }
  }

  protected async readReady(batch: ReadRequest<Buffer>[]): Promise<boolean> {
    const request = batch[0];
    if (request === undefined) return false;
    const items = await this.#claim(request.max);
    if (items instanceof Error) this.finish(request, items);
    else if (items.length > 0) this.finish(request, items);
    else return false;
    return true;
  }

  protected async readBlocking(_keys: string[], waitMs: number): Promise<void> {
    const { source, processing } = this.options.keys;
    const moved = await this.client.blmoveBuffer(source, processing, "LEFT", "RIGHT", (waitMs / 1000).toFixed(3));
    if (moved === null) return;
    const request = this.pending[0];
    const items = await this.#claim(request?.max ?? 1, moved);
    if (items instanceof Error) {
      this.requestResync(); // the moved item may still sit untagged in the processing list
      if (request) this.finish(request, items);
    } else if (items.length === 0) {
      // The reaper took the item back before the claim (this consumer had missed its heartbeat): read again.
    } else if (request) this.finish(request, items);
    else await this.#script.wqueueReliableReturn(2, processing, source, ...items); // unreachable: only this loop removes requests
  }

  /** The claim script; a reply error (a key of the wrong type) comes back as an Error for that receive. */
  async #claim(max: number, adopt?: Buffer): Promise<Buffer[] | Error> {
    const { keys, consumerId, heartbeatTtlMs } = this.options;
    const args: (string | number | Buffer)[] = [max, consumerId, heartbeatTtlMs];
    if (adopt) args.push(adopt);
    try {
      return await this.#script.wqueueReliableClaimBuffer(5, keys.source, keys.processing, keys.ids, keys.consumers, keys.heartbeat, ...args);
    } catch (error) {
      if ((error as Error).name !== "ReplyError") {
        this.requestResync(); // the script may have run, its reply lost
        throw error;
      }
      return new Error(`queue ${keys.source}: ${(error as Error).message}`);
    }
  }

  /** Hands back what sits in the processing list without a delivery of ours to settle it. */
  protected override async resync(): Promise<void> {
    const { source, processing } = this.options.keys;
    const stored = await this.client.lrangeBuffer(processing, 0, -1);
    if (stored.length === 0) return;
    const held = new Map<string, number>();
    for (const item of this.options.unsettled()) {
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
