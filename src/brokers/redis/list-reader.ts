import { setTimeout as delay } from "node:timers/promises";
import type { Redis } from "ioredis";
import { moveDueDelayed } from "./delayed-set.js";
import type { RedisClients } from "./open-redis-broker.js";

/** The longest BLPOP: the loop comes round at least this often. */
const BLOCK_MS = 2000;
/** How often delayed sets are checked for retries that other processes scheduled (and may have died with). */
const DISCOVER_MS = 1000;
/**
 * The watchdog: a reply (BLPOP included) this late means a dead link, so the connection is dropped
 * and reopened (ioredis `socketTimeout`, armed by RedisClients.background). A worker never sits
 * connected but not consuming.
 */
export const READER_SILENCE_MS = BLOCK_MS + 3000;
/** CLIENT UNBLOCK may reach Redis before the BLPOP it targets; it is then retried this often. */
const UNBLOCK_RETRY_MS = 5;
/** close() waits this long for the loop to come back before dropping the blocking connection. */
const CLOSE_DEADLINE_MS = 2000;

/** One consumer's pending receive. A consumer has one receive at a time, so it reuses one request. */
export class ReadRequest {
  max = 1;
  /** Aborted, or its consumer closed: it gets [] unless the read in flight brings it items. */
  cancelled = false;
  signal: AbortSignal | undefined;
  resolve: ((items: Buffer[]) => void) | undefined;
  reject: ((error: Error) => void) | undefined;
  readonly onAbort = () => this.reader.cancel(this);

  constructor(
    readonly queue: string,
    readonly reader: ListReader,
  ) {}
}

/**
 * The one blocking connection of a broker instance, multiplexing the receives of all its consumers.
 * Each round it moves due delayed messages (when some may be due), then LPOPs up to `max` for every
 * pending receive in one round trip; only when nothing came does it BLPOP all their queues, with a
 * timeout of at most BLOCK_MS. A receive for a queue outside that BLPOP, an abort, a close or an
 * earlier due time interrupts it with CLIENT UNBLOCK from the command connection. Whatever a read
 * brings is handed to its receive, aborted or not, so nothing popped is dropped.
 */
export class ListReader {
  readonly #pending: ReadRequest[] = [];
  /** Every queue read so far: the delayed mover covers them all. */
  readonly #queues: string[] = [];
  #clientId: number | undefined;
  /** Keys of the BLPOP in flight, if one is. */
  #blocking: string[] | undefined;
  #blockUntil = 0;
  #generation = 0;
  #interruptFor = -1;
  #unblockedFor = -1;
  #unblocking = false;
  #nextMoveAt = 0;
  #wakeup: (() => void) | undefined;
  #closing = false;
  #closed: Promise<void> | undefined;
  readonly #loop: Promise<void>;

  readonly name: string;

  constructor(
    /** The blocking connection (from clients.background(..., READER_SILENCE_MS)): only this loop sends on it. */
    readonly client: Redis,
    /** Sends CLIENT UNBLOCK; never blocks. */
    readonly commands: Redis,
    readonly clients: RedisClients,
  ) {
    this.name = `redis ${clients.url} (reader)`;
    client.on("ready", () => {
      this.#clientId = undefined;
      client.client("ID").then(
        (id) => {
          this.#clientId = id;
        },
        () => {}, // the connection dropped again; the next "ready" retries
      );
      this.#wake();
    });
    this.#loop = this.#run().catch((error: Error) => clients.log("error", `${this.name}: reader stopped: ${error.message}`));
  }

  /** Resolves with 1..max raw items of request.queue, or [] once cancelled. */
  read(request: ReadRequest, max: number, signal: AbortSignal): Promise<Buffer[]> {
    if (request.resolve !== undefined) {
      return Promise.reject(new Error(`queue ${request.queue}: a receive is already pending on this consumer`));
    }
    if (this.#closing || signal.aborted) return Promise.resolve([]);
    return new Promise<Buffer[]>((resolve, reject) => {
      request.max = Math.max(1, Math.floor(max));
      request.cancelled = false;
      request.signal = signal;
      request.resolve = resolve;
      request.reject = reject;
      signal.addEventListener("abort", request.onAbort);
      this.#pending.push(request);
      if (!this.#queues.includes(request.queue)) {
        this.#queues.push(request.queue);
        this.#nextMoveAt = 0; // a queue new to this reader may have delayed messages due already
      }
      if (this.#blocking === undefined) this.#wake();
      else if (!this.#blocking.includes(request.queue)) this.#interrupt();
    });
  }

  /** Ends a pending receive promptly: with [] or with what the read in flight brought. */
  cancel(request: ReadRequest): void {
    if (request.resolve === undefined || request.cancelled) return;
    request.cancelled = true;
    if (this.#blocking === undefined) this.#wake();
    else this.#interrupt();
  }

  /** A delayed message of `queue` is due in `delayMs`: wake up in time to move it. */
  noteDelayed(queue: string, delayMs: number): void {
    const due = Date.now() + delayMs;
    if (!this.#queues.includes(queue) || due >= this.#nextMoveAt) return;
    this.#nextMoveAt = due;
    if (this.#blocking !== undefined && due < this.#blockUntil) this.#interrupt();
  }

  /** Idempotent: ends every pending receive, then quits the blocking connection. */
  close(): Promise<void> {
    this.#closed ??= this.#shutdown();
    return this.#closed;
  }

  async #shutdown(): Promise<void> {
    this.#closing = true;
    this.#interrupt();
    this.#wake();
    const deadline = setTimeout(() => {
      this.clients.log("warn", `${this.name}: the reader did not stop within ${CLOSE_DEADLINE_MS} ms; dropping its connection`);
      this.client.disconnect();
    }, CLOSE_DEADLINE_MS);
    await this.#loop;
    clearTimeout(deadline);
    await this.clients.quit(this.client);
  }

  async #run(): Promise<void> {
    let failures = 0;
    for (;;) {
      this.#settleCancelled();
      if (this.#pending.length === 0) {
        if (this.#closing) return;
        await this.#sleep(Number.POSITIVE_INFINITY);
        continue;
      }
      if (this.client.status !== "ready") {
        await this.#sleep(1000); // "ready" wakes it sooner
        continue;
      }
      try {
        if (Date.now() >= this.#nextMoveAt) await this.#moveDelayed();
        const answered = await this.#popReady();
        if (!answered && !this.#closing && !this.#pending.some((request) => request.cancelled)) await this.#popBlocking();
        failures = 0;
      } catch (error) {
        failures += 1;
        // A lost connection was already reported by the client; anything else is news.
        const level = this.client.status === "ready" ? "warn" : "debug";
        this.clients.log(level, `${this.name}: read failed (${(error as Error).message}); retrying`);
        await this.#sleep(Math.min(50 * 2 ** failures, 2000));
      }
    }
  }

  async #moveDelayed(): Promise<void> {
    const now = Date.now();
    this.#nextMoveAt = now + DISCOVER_MS;
    const waits = await moveDueDelayed(this.client, this.#queues);
    this.#nextMoveAt = Math.min(this.#nextMoveAt, now + Math.min(...waits));
  }

  /**
   * LPOP for every pending receive in one round trip; true when any receive was answered. A reply
   * error (a key of the wrong type) fails that receive only; a connection error fails the round.
   */
  async #popReady(): Promise<boolean> {
    const batch = this.#pending.slice();
    let replies: [Error | null, unknown][];
    if (batch.length === 1) {
      const { queue, max } = batch[0] as ReadRequest;
      replies = [await this.client.lpopBuffer(queue, max).then((items) => [null, items], (error: Error) => [error, null])];
    } else {
      const pipeline = this.client.pipeline();
      for (const request of batch) pipeline.lpopBuffer(request.queue, request.max);
      replies = (await pipeline.exec()) ?? [];
    }
    let answered = false;
    for (const [index, request] of batch.entries()) {
      const [error, items] = replies[index] ?? [new Error("no reply"), null];
      if (error && error.name !== "ReplyError") throw error;
      if (error) this.#finish(request, new Error(`queue ${request.queue}: ${error.message}`));
      else if (Array.isArray(items) && items.length > 0) this.#finish(request, items as Buffer[]);
      else continue;
      answered = true;
    }
    return answered;
  }

  async #popBlocking(): Promise<void> {
    const keys: string[] = [];
    for (const request of this.#pending) if (!keys.includes(request.queue)) keys.push(request.queue);
    const now = Date.now();
    const waitMs = Math.max(10, Math.min(BLOCK_MS, this.#nextMoveAt - now));
    this.#blocking = keys;
    this.#blockUntil = now + waitMs;
    this.#generation += 1;
    let reply: [Buffer, Buffer] | null;
    try {
      reply = await this.client.blpopBuffer(keys, (waitMs / 1000).toFixed(3));
    } finally {
      this.#blocking = undefined;
    }
    if (reply === null) return;
    const [key, item] = reply;
    const queue = key.toString();
    const request = this.#pending.find((candidate) => candidate.queue === queue);
    if (request) this.#finish(request, [item]);
    else await this.commands.lpush(queue, item); // unreachable: only this loop removes requests
  }

  /** Interrupts the BLPOP in flight, retrying CLIENT UNBLOCK until it lands or the BLPOP ends. */
  #interrupt(): void {
    if (this.#blocking === undefined) return;
    this.#interruptFor = this.#generation;
    if (!this.#unblocking) void this.#unblock();
  }

  async #unblock(): Promise<void> {
    this.#unblocking = true;
    try {
      while (
        this.#blocking !== undefined &&
        this.#generation === this.#interruptFor &&
        this.#unblockedFor !== this.#interruptFor
      ) {
        const target = this.#interruptFor;
        const id = this.#clientId;
        const unblocked = id === undefined ? 0 : await this.commands.client("UNBLOCK", id);
        if (unblocked === 1) this.#unblockedFor = target;
        else await delay(UNBLOCK_RETRY_MS);
      }
    } catch (error) {
      this.clients.log("warn", `${this.name}: CLIENT UNBLOCK failed (${(error as Error).message})`);
    } finally {
      this.#unblocking = false;
    }
  }

  #settleCancelled(): void {
    for (let index = this.#pending.length - 1; index >= 0; index -= 1) {
      const request = this.#pending[index] as ReadRequest;
      if (request.cancelled || this.#closing) this.#finish(request, []);
    }
  }

  #finish(request: ReadRequest, outcome: Buffer[] | Error): void {
    const index = this.#pending.indexOf(request);
    if (index >= 0) this.#pending.splice(index, 1);
    const { resolve, reject, signal } = request;
    signal?.removeEventListener("abort", request.onAbort);
    request.resolve = request.reject = request.signal = undefined;
    if (outcome instanceof Error) reject?.(outcome);
    else resolve?.(outcome);
  }

  /** Waits `ms` or until #wake(): new work, a cancel, a close, or the connection becoming ready. */
  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const wake = () => {
        clearTimeout(timer);
        if (this.#wakeup === wake) this.#wakeup = undefined;
        resolve();
      };
      if (Number.isFinite(ms)) timer = setTimeout(wake, ms);
      this.#wakeup = wake;
    });
  }

  #wake(): void {
    this.#wakeup?.();
  }
}
