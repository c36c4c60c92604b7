import type { Consumer, DeadLetterReason, Delivery, Headers, OutgoingMessage } from "../contract.js";
import { anyAbort } from "../any-abort.js";
import { deadLetterHeaders } from "../dead-letter.js";
import { SettleOnceDelivery } from "../settle-once.js";
import type { SqliteUrl } from "../shared/sqlite-url.js";
import type { Held, MessageStore, TakenMessage } from "./MessageStore.js";
import type { QueueWatch } from "./queue-watch.js";
import type { TakeBatcher } from "./take-batcher.js";

/**
 * The receiving side of a SqliteBroker: a consumer hands out rows it took under a fresh receipt and
 * remembers them until settled, so close() can make the unsettled ones visible again at once.
 * A delivery settles through the broker, which owns the connection and batches acks.
 */

/** What a consumer and its deliveries use of their broker (SqliteBroker says what each does), and no more. */
export interface SqliteConsumerContext {
  readonly config: SqliteUrl;
  store(): MessageStore;
  /** The broker's one waiter for all its idle consumers. */
  readonly watch: QueueWatch;
  /** Runs the takes of one turn in one transaction. */
  readonly takes: TakeBatcher;
  ack(held: Held): Promise<void>;
  /** `keepAttempt`: undo the count this delivery added (the next delivery has the same attempt). */
  makeVisible(queue: string, held: Held[], visibleAt: number, keepAttempt?: boolean): void;
  deadLetter(held: Held, deadQueue: string, message: OutgoingMessage): void;
  /** Called once, when the consumer has closed: the broker stops tracking it. */
  closed(consumer: SqliteConsumer): void;
}

export class SqliteConsumer implements Consumer {
  readonly #inFlight = new Set<SqliteDelivery>();
  readonly #closing = new AbortController();
  #closed: Promise<void> | undefined;

  constructor(
    readonly context: SqliteConsumerContext,
    readonly queue: string,
    readonly deadLetterQueue: string,
  ) {}

  /** A received row stays hidden for the visibility timeout (`?visibility=`) unless extended. */
  get leaseMs(): number {
    return this.context.config.visibilityMs;
  }

  /**
   * One UPDATE hides every delivery still in flight here until `leaseMs` from now, matching each
   * row by its receipt: a row acked, nacked, dead-lettered or closed here is not in flight (so
   * skipped), and one re-taken by another consumer holds a new receipt (so untouched).
   *
   * Not overtaken by a later settle: the SQLite driver runs the UPDATE synchronously, committed
   * before this returns, and a settle (nack, dead letter, ack batch) runs its own statement later
   * on the same single-threaded connection. A settle begun earlier took the delivery out of
   * flight, so the extension skips it rather than pushing back a nack's visible_at.
   */
  async extend(deliveries: readonly Delivery[]): Promise<void> {
    const held: Held[] = [];
    for (const delivery of deliveries) {
      if (delivery instanceof SqliteDelivery && this.#inFlight.has(delivery)) held.push(delivery.held);
    }
    if (held.length > 0) this.context.store().extendHeld(held, Date.now() + this.leaseMs);
  }

  /** Takes at once if it can; otherwise waits for the broker's watch to say the queue may hold a visible row. */
  async receive(max: number, signal: AbortSignal): Promise<Delivery[]> {
    const stop = anyAbort(signal, this.#closing.signal);
    try {
      while (!stop.signal.aborted) {
        const taken = await this.#take(this.context.store(), max, Date.now());
        if (taken.length > 0) return taken;
        await this.context.watch.until(this.queue, stop.signal);
      }
      return [];
    } finally {
      stop.dispose();
    }
  }

  /** Resolves once the queue may hold a visible row (the broker's one watch for all idle consumers), or on abort or close. */
  async waitForMessages(signal: AbortSignal): Promise<void> {
    const stop = anyAbort(signal, this.#closing.signal);
    try {
      if (!stop.signal.aborted && !this.context.store().hasVisible(this.queue, Date.now())) {
        await this.context.watch.until(this.queue, stop.signal);
      }
    } catch {
      // The store is closed or failed: the take that follows reports it.
    } finally {
      stop.dispose();
    }
  }

  /** Takes what is visible now, without waiting; [] once closed. */
  take(max: number): Promise<Delivery[]> {
    if (this.#closing.signal.aborted) return Promise.resolve([]);
    return this.#take(this.context.store(), max, Date.now());
  }

  /** The peek is a plain read, so idle consumers never take the write lock; the take is batched. */
  async #take(store: MessageStore, max: number, now: number): Promise<SqliteDelivery[]> {
    if (!store.hasVisible(this.queue, now)) return [];
    const { rows, receipt } = await this.context.takes.take(this.queue, Math.max(1, Math.floor(max)));
    const held = rows.map((row) => ({ id: row.id, receipt }));
    if (this.#closed && held.length > 0) {
      this.context.makeVisible(this.queue, held, Date.now()); // taken while closing: nobody will run them
      return [];
    }
    return rows.map((row, index) => {
      const delivery = new SqliteDelivery(this, row, held[index] as Held);
      this.#inFlight.add(delivery);
      return delivery;
    });
  }

  settling(delivery: SqliteDelivery): void {
    this.#inFlight.delete(delivery);
  }

  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#closing.abort();
      this.context.closed(this);
      const unsettled = [...this.#inFlight].map((delivery) => delivery.held);
      this.#inFlight.clear();
      if (unsettled.length > 0) this.context.makeVisible(this.queue, unsettled, Date.now());
    })();
    return this.#closed;
  }
}

class SqliteDelivery extends SettleOnceDelivery {
  readonly id: string;
  readonly queue: string;
  readonly body: Uint8Array;
  readonly headers: Readonly<Headers>;
  readonly key: string | undefined;
  readonly partition = undefined;
  readonly attempt: number;

  constructor(
    readonly consumer: SqliteConsumer,
    row: TakenMessage,
    readonly held: Held,
  ) {
    super();
    this.id = String(row.id);
    this.queue = consumer.queue;
    this.body = row.body;
    this.headers = row.headers;
    this.key = row.key;
    this.attempt = row.attempt;
  }

  protected doAck(): Promise<void> {
    this.consumer.settling(this);
    return this.consumer.context.ack(this.held);
  }

  protected async doNack(delayMs: number, keepAttempt: boolean): Promise<void> {
    this.consumer.settling(this);
    this.consumer.context.makeVisible(this.queue, [this.held], Date.now() + delayMs, keepAttempt);
  }

  protected async doDeadLetter(reason: DeadLetterReason): Promise<void> {
    this.consumer.settling(this);
    const headers = deadLetterHeaders(this, reason);
    const message = { body: this.body, headers, key: this.key };
    this.consumer.context.deadLetter(this.held, this.consumer.deadLetterQueue, message);
  }
}
