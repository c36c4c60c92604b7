import { randomUUID } from "node:crypto";
import type { Consumer, DeadLetterReason, Delivery, Headers } from "../contract.js";
import { anyAbort } from "../any-abort.js";
import { deadLetterHeaders } from "../dead-letter.js";
import { SettleOnceDelivery } from "../settle-once.js";
import type { Listener } from "./Listener.js";
import type { ClaimedRow, Held, MessageTable } from "./MessageTable.js";
import type { PostgresUrl } from "./postgres-url.js";

/** What a consumer and its deliveries use of their broker (PostgresBroker says what each does), and no more. */
export interface PostgresConsumerContext {
  readonly config: PostgresUrl;
  /** The consuming side's table (claims, nacks, extensions, dead letters). */
  table(): MessageTable;
  /** Connected, schema up to date. */
  ready(): Promise<void>;
  listener(): Listener;
  /** Acks of one event-loop turn become one statement. */
  ack(held: Held): Promise<void>;
  /** Called once, when the consumer has closed: the broker stops tracking it. */
  closed(consumer: PostgresConsumer): void;
}

/**
 * The receiving side of a PostgresBroker. While a queue is empty a receive sends no query: it
 * sleeps until a NOTIFY for its queue, until the queue's next row is due (a delayed row, or one
 * whose lease runs out), or at the latest `poll` ms (default 30 s) as a fallback for a missed
 * notification. Received rows are remembered until settled, so close() gives them back at once.
 */
export class PostgresConsumer implements Consumer {
  readonly #inFlight = new Set<PostgresDelivery>();
  readonly #closing = new AbortController();
  #closed: Promise<void> | undefined;

  constructor(
    readonly context: PostgresConsumerContext,
    readonly queue: string,
    readonly deadLetterQueue: string,
  ) {}

  /** A claimed row stays hidden for the lease (`?lease=`) unless extended. */
  get leaseMs(): number {
    return this.context.config.leaseMs;
  }

  /** One UPDATE renews every delivery still in flight here; settled ones have no receipt left. */
  async extend(deliveries: readonly Delivery[]): Promise<void> {
    const held: Held[] = [];
    for (const delivery of deliveries) {
      if (delivery instanceof PostgresDelivery && this.#inFlight.has(delivery)) held.push(delivery.held);
    }
    if (held.length > 0) await this.context.table().extend(held, this.leaseMs);
  }

  async receive(max: number, signal: AbortSignal): Promise<Delivery[]> {
    const stop = anyAbort(signal, this.#closing.signal);
    try {
      await this.context.ready();
      const listener = this.context.listener();
      const waker = listener.signal(this.queue);
      // LISTEN before the first look: a row committed after the look then always wakes us.
      await listener.ready();
      let seen = Number.NaN;
      let dueAt = 0;
      while (!stop.signal.aborted) {
        if (waker.generation !== seen || Date.now() >= dueAt) {
          seen = waker.generation;
          const taken = await this.#claim(max);
          if (taken.length > 0) return taken;
          if (stop.signal.aborted) break;
          const next = await this.context.table().msUntilNextReady(this.queue);
          dueAt = Date.now() + Math.min(this.context.config.pollMs, next ?? Number.POSITIVE_INFINITY);
        }
        await waker.wakeup.wait(stop.signal, Math.max(0, dueAt - Date.now()));
      }
      return [];
    } finally {
      stop.dispose();
    }
  }

  async #claim(max: number): Promise<PostgresDelivery[]> {
    const receipt = randomUUID();
    const rows = await this.context.table().claim(this.queue, Math.max(1, Math.floor(max)), this.leaseMs, receipt);
    return rows.map((row) => {
      const delivery = new PostgresDelivery(this, row, { id: row.id, receipt });
      this.#inFlight.add(delivery);
      return delivery;
    });
  }

  settling(delivery: PostgresDelivery): void {
    this.#inFlight.delete(delivery);
  }

  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#closing.abort();
      this.context.closed(this);
      const unsettled = [...this.#inFlight].map((delivery) => delivery.held);
      this.#inFlight.clear();
      if (unsettled.length > 0) await this.context.table().release(this.queue, unsettled, 0);
    })();
    return this.#closed;
  }
}

class PostgresDelivery extends SettleOnceDelivery {
  readonly id: string;
  readonly queue: string;
  readonly body: Uint8Array;
  readonly headers: Readonly<Headers>;
  readonly key: string | undefined;
  readonly partition = undefined;
  readonly attempt: number;

  constructor(
    readonly consumer: PostgresConsumer,
    row: ClaimedRow,
    readonly held: Held,
  ) {
    super();
    this.id = row.id;
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

  protected doNack(delayMs: number): Promise<void> {
    this.consumer.settling(this);
    return this.consumer.context.table().release(this.queue, [this.held], delayMs);
  }

  protected doDeadLetter(reason: DeadLetterReason): Promise<void> {
    this.consumer.settling(this);
    const message = { body: this.body, headers: deadLetterHeaders(this, reason), key: this.key };
    return this.consumer.context.table().deadLetter(this.held, this.consumer.deadLetterQueue, message);
  }
}
