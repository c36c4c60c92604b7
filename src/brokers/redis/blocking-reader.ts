import { setTimeout as delay } from "node:timers/promises";
import type { Redis } from "ioredis";
import type { RedisClients } from "../shared/redis-clients.js";

/** The longest blocking read: the loop comes round at least this often. */
export const BLOCK_MS = 2000;
/**
 * The watchdog: a reply (a blocking read included) this late means a dead link, so the connection
 * is dropped and reopened (ioredis `socketTimeout`, armed by RedisClients.background). A worker
 * never sits connected but not consuming.
 */
export const READER_SILENCE_MS = BLOCK_MS + 3000;
/**
 * On a Redis Cluster the loop never blocks: a blocking read waits on one node only, its keys in one
 * slot, and CLIENT UNBLOCK must reach the node holding it. It reads without blocking at least this
 * often instead (the longest an idle queue's new message waits there, plus a round trip).
 */
export const CLUSTER_POLL_MS = 100;
/** CLIENT UNBLOCK may reach Redis before the blocking read it targets; it is then retried this often. */
const UNBLOCK_RETRY_MS = 5;
/** close() waits this long for the loop to come back before dropping the blocking connection. */
const CLOSE_DEADLINE_MS = 2000;

/** One consumer's pending receive. A consumer has one receive at a time, so it reuses one request. */
export class ReadRequest<T> {
  max = 1;
  /** Aborted, or its consumer closed: it gets [] unless the read in flight brings it items. */
  cancelled = false;
  /** A read of it is in flight beside the loop's rounds (BlockingReader.beside): a cancel is noted for it. */
  beside = false;
  /** Its last read filled the batch it asked for: its queue likely holds more (a subclass may send its next read beside the rounds). */
  busy = false;
  /** The blocking read (its generation) that was started with this request pending, so waits for its queue. */
  blockedIn = -1;
  signal: AbortSignal | undefined;
  resolve: ((items: T[]) => void) | undefined;
  reject: ((error: Error) => void) | undefined;
  readonly onAbort = () => this.reader.cancel(this);

  constructor(
    readonly queue: string,
    readonly reader: BlockingReader<T>,
  ) {}
}

/**
 * The loop of one blocking connection, shared by the Redis modes; a mode fills in how to read. Each
 * round: resync() after a reconnect, housekeep() when dueAt() has come (delayed moves, reaping,
 * claiming), readReady() for every pending receive without blocking, and only when that brought
 * nothing, readBlocking() on the queues of all pending receives for at most BLOCK_MS (less when
 * dueAt() is sooner). A receive for a queue outside the blocking read, an abort, a close or an
 * earlier due time interrupts it with CLIENT UNBLOCK from the command connection. Whatever a read
 * brings is handed to its receive, aborted or not, so nothing taken from Redis is dropped. On a
 * Cluster the blocking read is a pause of at most CLUSTER_POLL_MS instead (see there).
 */
export abstract class BlockingReader<T> {
  protected readonly pending: ReadRequest<T>[] = [];
  /** Every queue read so far, in first-read order. */
  protected readonly queues: string[] = [];
  /** The same, for lookups: sets keep a round O(queues), not O(queues²), over 1,000 queues. */
  readonly #queueSet = new Set<string>();
  #clientId: number | undefined;
  #everReady = false;
  #resyncDue = false;
  /** A blocking read (or a pause) is in flight; the requests pending when it began have `blockedIn` = #generation. */
  #blocking = false;
  #blockUntil = 0;
  #generation = 0;
  #interruptFor = -1;
  #unblockedFor = -1;
  #unblocking = false;
  #wakeup: (() => void) | undefined;
  /** Ends a pause() in flight (the interrupt of a wait that is not a blocking command). */
  #pauseWake: (() => void) | undefined;
  #closing = false;
  #resyncing = false;
  /** Reads sent beside the rounds (see beside()) still in flight: a resync waits for their replies. */
  readonly #besides = new Set<Promise<unknown>>();
  /** A receive came in while a round was reading: the round did not look at it, so do not block. */
  #askedDuringRound = false;
  #closed: Promise<void> | undefined;
  #loop: Promise<void> | undefined;

  readonly name: string;

  constructor(
    /** The blocking connection (from clients.background(..., READER_SILENCE_MS)): only this loop sends on it. */
    readonly client: Redis,
    /** Sends CLIENT UNBLOCK; never blocks. */
    readonly commands: Redis,
    readonly clients: RedisClients,
    role = "reader",
  ) {
    this.name = `redis ${clients.url} (${role})`;
    client.on("ready", () => {
      this.#clientId = undefined;
      if (this.#everReady) this.#resyncDue = true;
      this.#everReady = true;
      if (!client.isCluster) {
        // A Cluster has no one id to CLIENT UNBLOCK (and nothing blocks there).
        client.client("ID").then(
          (id) => {
            this.#clientId = id;
          },
          () => {}, // the connection dropped again; the next "ready" retries
        );
      }
      this.#wake();
    });
    // A Cluster says "ready" once only: a failover (a node dropped from or added to its map) is when
    // writes the old master had not replicated (claims, acks) may be gone, so resync then.
    for (const change of ["+node", "-node"]) {
      client.on(change, () => {
        this.#resyncDue = true;
        this.#wake();
      });
    }
  }

  /** When housekeep() next wants to run (ms since the epoch); Infinity: never. */
  protected abstract dueAt(): number;
  protected abstract housekeep(): Promise<void>;
  /** Reads without blocking, finish()ing requests; true when the round made progress (do not block). */
  protected abstract readReady(batch: ReadRequest<T>[]): Promise<boolean>;
  /** One blocking read of at most `waitMs` on the pending requests' queues (pendingQueues()). */
  protected abstract readBlocking(waitMs: number): Promise<void>;
  /** After the blocking connection came back: recover what a lost reply may have taken. */
  protected async resync(): Promise<void> {}
  /** Runs resync() before the next read (a command whose reply was lost may have taken items, or an ack failed). */
  requestResync(): void {
    this.#resyncDue = true;
  }

  /** The longest blocking read this mode allows. */
  protected blockMs(): number {
    return BLOCK_MS;
  }

  /** Resolves with 1..max items of request.queue, or [] once cancelled. */
  read(request: ReadRequest<T>, max: number, signal: AbortSignal): Promise<T[]> {
    if (request.resolve !== undefined) {
      return Promise.reject(new Error(`queue ${request.queue}: a receive is already pending on this consumer`));
    }
    if (this.#closing || signal.aborted) return Promise.resolve([]);
    this.#loop ??= this.#run().catch((error: Error) =>
      this.clients.log("error", `${this.name}: reader stopped: ${error.message}`),
    );
    return new Promise<T[]>((resolve, reject) => {
      request.max = Math.max(1, Math.floor(max));
      request.cancelled = false;
      request.signal = signal;
      request.resolve = resolve;
      request.reject = reject;
      signal.addEventListener("abort", request.onAbort);
      this.pending.push(request);
      this.#askedDuringRound = true;
      if (!this.#queueSet.has(request.queue)) {
        this.#queueSet.add(request.queue);
        this.queues.push(request.queue);
        this.onNewQueue(request.queue);
      }
      if (!this.#blocking) this.#wake();
      else if (request.blockedIn !== this.#generation) this.#interrupt(); // not among what the read in flight waits for
    });
  }

  /**
   * Whether a read may be sent now beside the loop's rounds, on the loop's connection, instead of
   * waiting for the next round: a busy queue's next batch then costs one round trip of its own, as
   * a plain client's loop does, and does not wait for a round in flight nor ride in lockstep with
   * other queues. Only while the connection is ready, no blocking read holds it (a read sent behind
   * one would wait for it), no resync or housekeeping is due (the loop runs those first) and the
   * reader is open.
   */
  protected besideAllowed(): boolean {
    return (
      !this.#closing &&
      !this.#resyncDue &&
      !this.#resyncing &&
      !this.#blocking &&
      this.client.status === "ready" &&
      Date.now() < this.dueAt()
    );
  }

  /** Tracks a read sent beside the rounds: a resync first waits for it. */
  protected beside<R>(read: Promise<R>): Promise<R> {
    this.#besides.add(read);
    const untrack = () => this.#besides.delete(read);
    read.then(untrack, untrack);
    return read;
  }

  /** A queue is read for the first time (a subclass may want housekeeping at once). */
  protected onNewQueue(_queue: string): void {}

  /** Ends a pending receive promptly: with [] or with what the read in flight brought. */
  cancel(request: ReadRequest<T>): void {
    if (request.resolve === undefined && request.beside) request.cancelled = true; // its reader sees it when the read is back
    if (request.resolve === undefined || request.cancelled) return;
    request.cancelled = true;
    if (!this.#blocking) this.#wake();
    else this.#interrupt();
  }

  /** Housekeeping is now due at `at`: cut a blocking read that would outlast it. */
  protected wakeBy(at: number): void {
    if (this.#blocking && at < this.#blockUntil) this.#interrupt();
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
      if (this.pending.length === 0) {
        if (this.#closing) return;
        await this.#sleep(Number.POSITIVE_INFINITY);
        continue;
      }
      if (this.client.status !== "ready") {
        await this.#sleep(1000); // "ready" wakes it sooner
        continue;
      }
      try {
        if (this.#resyncDue) {
          this.#resyncDue = false;
          this.#resyncing = true;
          try {
            // A read beside the rounds may still bring entries: they must be held before resync
            // looks for the ones nothing holds, or it would release them while they are handled.
            await Promise.allSettled([...this.#besides]);
            await this.resync();
          } catch (error) {
            this.#resyncDue = true; // try again next round
            throw error;
          } finally {
            this.#resyncing = false;
          }
        }
        if (Date.now() >= this.dueAt()) await this.housekeep();
        this.#askedDuringRound = false;
        const progressed = await this.readReady(this.pending.slice());
        if (!progressed && !this.#askedDuringRound && !this.#closing && !this.pending.some((request) => request.cancelled)) await this.#block();
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

  async #block(): Promise<void> {
    const now = Date.now();
    const cluster = this.client.isCluster;
    const waitMs = Math.max(10, Math.min(cluster ? CLUSTER_POLL_MS : this.blockMs(), this.dueAt() - now));
    this.#generation += 1;
    // Marks, not a set of queues: a poller over 1,000 idle queues pauses ten times a second, and a
    // set (and key list) per pause was much of its idle allocation.
    for (const request of this.pending) request.blockedIn = this.#generation;
    this.#blocking = true;
    this.#blockUntil = now + waitMs;
    try {
      await (cluster ? this.pause(waitMs) : this.readBlocking(waitMs));
    } finally {
      this.#blocking = false;
    }
  }

  /** The distinct queues of the pending requests, in the order they asked: what a blocking read waits on. */
  protected pendingQueues(): string[] {
    return [...new Set(this.pending.map((request) => request.queue))];
  }

  /** Interrupts the blocking read in flight, retrying CLIENT UNBLOCK until it lands or the read ends. */
  #interrupt(): void {
    if (!this.#blocking) return;
    if (this.#pauseWake) {
      this.#pauseWake();
      return;
    }
    this.#interruptFor = this.#generation;
    if (!this.#unblocking) void this.#unblock();
  }

  async #unblock(): Promise<void> {
    this.#unblocking = true;
    try {
      while (
        this.#blocking &&
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
    for (let index = this.pending.length - 1; index >= 0; index -= 1) {
      const request = this.pending[index] as ReadRequest<T>;
      if (request.cancelled || this.#closing) this.finish(request, []);
    }
  }

  /**
   * A wait inside readBlocking() that sends nothing (a mode that polls): ends after `ms` or at the
   * first interrupt (a new queue, a cancel, a close, an earlier due time), as a blocking read would.
   */
  protected pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        if (this.#pauseWake === done) this.#pauseWake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#pauseWake = done;
    });
  }

  /** Answers a pending request with items (possibly []) or fails it. */
  protected finish(request: ReadRequest<T>, outcome: T[] | Error): void {
    request.busy = Array.isArray(outcome) && outcome.length > 0 && outcome.length >= request.max;
    const index = this.pending.indexOf(request);
    if (index >= 0) this.pending.splice(index, 1);
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
