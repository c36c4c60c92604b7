import { randomUUID } from "node:crypto";
import type { Consumer, DeadLetterReason, Delivery, Headers, OutgoingMessage } from "../contract.js";
import { anyAbort } from "../any-abort.js";
import { deadLetterHeaders } from "../dead-letter.js";
import { SettleOnceDelivery } from "../settle-once.js";
import type { SqliteUrl } from "../shared/sqlite-url.js";
import { Wakeup } from "../wakeup.js";
import type { Held, MessageStore, TakenMessage } from "./MessageStore.js";

/**
 * The receiving side of a SqliteBroker: a consumer hands out rows it took under a fresh receipt and
 * remembers them until settled, so close() can make the unsettled ones visible again at once.
 * A delivery settles through the broker, which owns the connection and batches acks.
 */

/** Per (file, queue) wake-up shared by all brokers in this process; `generation` counts notifies. */
class QueueSignal {
  readonly wakeup = new Wakeup();
  generation = 0;

  notify(): void {
    this.generation += 1;
    this.wakeup.notify();
  }
}

const queueSignals = new Map<string, QueueSignal>();
const signalKey = (path: string, queue: string) => `${path}\n${queue}`;

/** What a consumer and its deliveries use of their broker (SqliteBroker says what each does), and no more. */
export interface SqliteConsumerContext {
  readonly config: SqliteUrl;
  store(): MessageStore;
  ack(held: Held): Promise<void>;
  /** `keepAttempt`: undo the count this delivery added (the next delivery has the same attempt). */
  makeVisible(queue: string, held: Held[], visibleAt: number, keepAttempt?: boolean): void;
  deadLetter(held: Held, deadQueue: string, message: OutgoingMessage): void;
  /** Called once, when the consumer has closed: the broker stops tracking it. */
  closed(consumer: SqliteConsumer): void;
}

/** Wakes this process's consumers of `queue` on every SqliteBroker of the file at `path`. */
export function notifyQueue(path: string, queue: string): void {
  queueSignals.get(signalKey(path, queue))?.notify();
}

function queueSignal(path: string, queue: string): QueueSignal {
  const key = signalKey(path, queue);
  let signal = queueSignals.get(key);
  if (!signal) {
    signal = new QueueSignal();
    queueSignals.set(key, signal);
  }
  return signal;
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

  async receive(max: number, signal: AbortSignal): Promise<Delivery[]> {
    const stop = anyAbort(signal, this.#closing.signal);
    const waker = queueSignal(this.context.config.path, this.queue);
    const { pollMs } = this.context.config;
    let seenVersion = Number.NaN;
    let seenGeneration = Number.NaN;
    let dueAt = 0;
    try {
      while (!stop.signal.aborted) {
        const store = this.context.store();
        const now = Date.now();
        const version = store.dataVersion();
        // Look only when something may have changed: another process committed, this process
        // published or nacked, or a hidden row's visible_at has come.
        if (version !== seenVersion || waker.generation !== seenGeneration || now >= dueAt) {
          seenVersion = version;
          seenGeneration = waker.generation;
          const taken = this.#take(store, max, now);
          if (taken.length > 0) return taken;
          dueAt = store.nextVisibleAt(this.queue) ?? Number.POSITIVE_INFINITY;
        }
        await waker.wakeup.wait(stop.signal, Math.max(0, Math.min(pollMs, dueAt - Date.now())));
      }
      return [];
    } finally {
      stop.dispose();
    }
  }

  /** The peek is a plain read, so idle consumers never take the write lock. */
  #take(store: MessageStore, max: number, now: number): SqliteDelivery[] {
    if (!store.hasVisible(this.queue, now)) return [];
    const receipt = randomUUID();
    const until = now + this.context.config.visibilityMs;
    const rows = store.take(this.queue, Math.max(1, Math.floor(max)), now, until, receipt);
    return rows.map((row) => {
      const delivery = new SqliteDelivery(this, row, { id: row.id, receipt });
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
