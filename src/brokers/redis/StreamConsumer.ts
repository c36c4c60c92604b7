import type { Redis } from "ioredis";
import type { Consumer, Delivery } from "../contract.js";
import type { RedisClients } from "../shared/redis-clients.js";
import { HAND_BACK_DEADLINE_MS, within } from "./deadline.js";
import { StreamDelivery } from "./StreamDelivery.js";
import { RELEASED_IDLE_MS, type StreamEntry, type StreamReader, StreamRequest } from "./stream-reader.js";
import type { StreamClient } from "./stream-scripts.js";
import type { TickBatcher } from "./tick-batcher.js";

/** Ids per extension: bounds the arguments of one command. */
const ID_CHUNK = 1000;

/** What a consumer and its deliveries use of their broker (RedisStreamBroker says what each does), and no more. */
export interface StreamConsumerContext {
  /** Redacted. */
  readonly url: string;
  readonly clients: RedisClients;
  readonly options: { readonly group: string; readonly claimIdleMs: number };
  /** This worker's name in the consumer group. */
  readonly consumerName: string;
  /** The command connection; throws before the broker connected. */
  readonly commands: Redis;
  /** The acks of all the broker's consumers, one pipeline per turn (./stream-acks.ts). */
  readonly acks: TickBatcher<StreamDelivery>;
  reader(): Promise<StreamReader | undefined>;
  noteRetry(queue: string, delayMs: number): void;
  /** Called once, when the consumer has closed: the broker stops tracking it. */
  closed(consumer: StreamConsumer): void;
}

/**
 * One stream-mode consumer of one queue (see ./RedisStreamBroker.ts). Acks are one XACK per turn of
 * the event loop, sent with the other consumers' in one pipeline. A received entry stays this consumer's for `leaseMs` (claimIdle) after its last
 * delivery or extension; extend() renews that for many entries in one script call. close() ends a pending receive, sends pending acks, then releases its unsettled
 * entries (XCLAIM ... IDLE, keeping their delivery count) so the group's next claim, by any
 * consumer, takes them at once instead of after claimIdle.
 */
export class StreamConsumer implements Consumer {
  /** Handed out, not yet settled, by entry id. */
  readonly unsettled = new Map<string, StreamDelivery>();
  #request: StreamRequest | undefined;
  #receiving: Promise<unknown> | undefined;
  #closed: Promise<void> | undefined;
  readonly leaseMs: number;

  constructor(
    readonly context: StreamConsumerContext,
    readonly queue: string,
    readonly deadLetterQueue: string,
  ) {
    this.leaseMs = context.options.claimIdleMs;
  }

  get acks(): TickBatcher<StreamDelivery> {
    return this.context.acks;
  }

  get script(): StreamClient {
    return this.context.commands as StreamClient;
  }

  receive(max: number, signal: AbortSignal): Promise<Delivery[]> {
    if (this.#closed || signal.aborted) return Promise.resolve([]);
    return this.#track(this.#onReader(async (request) => this.#toDeliveries(await request.owner.read(request, max, signal)), []));
  }

  /** Claims and reads what the stream holds for the group now, in the reader's next round, without waiting. */
  take(max: number): Promise<Delivery[]> {
    if (this.#closed) return Promise.resolve([]);
    return this.#track(this.#onReader(async (request) => this.#toDeliveries(await request.owner.take(request, max)), []));
  }

  /** Resolves once the stream may hold something for the group (or on abort or close); reads nothing. */
  waitForMessages(signal: AbortSignal): Promise<void> {
    if (this.#closed || signal.aborted) return Promise.resolve();
    return this.#track(this.#onReader((request) => request.owner.watch(request, signal), undefined));
  }

  #track<T>(operation: Promise<T>): Promise<T> {
    this.#receiving = operation;
    return operation;
  }

  /** Runs `ask` on the reader: at once once joined (so a close right after cancels it), after joining the first time. */
  #onReader<T>(ask: (request: StreamRequest) => Promise<T>, closed: T): Promise<T> {
    if (this.#request !== undefined) return ask(this.#request);
    return this.context.reader().then((reader) => {
      if (reader === undefined || this.#closed) return closed;
      this.#request ??= new StreamRequest(this.queue, reader);
      return ask(this.#request);
    });
  }

  readonly #toDeliveries = (entries: StreamEntry[]): Delivery[] => {
    const deliveries: Delivery[] = [];
    for (const entry of entries) {
      const delivery = new StreamDelivery(this, entry);
      this.unsettled.set(entry.id, delivery);
      deliveries.push(delivery);
    }
    return deliveries;
  };

  /**
   * Resets the idle time of the entries still pending for this consumer (./stream-scripts.ts
   * EXTEND), so no claim takes them for another claimIdle. A delivery whose settle has begun is left
   * out here: its settle was sent first on the same connection, so no extension can overtake it.
   */
  async extend(deliveries: readonly Delivery[]): Promise<void> {
    const ids: string[] = [];
    for (const delivery of deliveries) {
      if (delivery instanceof StreamDelivery && !delivery.settled && this.unsettled.get(delivery.id) === delivery) ids.push(delivery.id);
    }
    const { group } = this.context.options;
    for (let start = 0; start < ids.length; start += ID_CHUNK) {
      await this.script.wqueueStreamExtend(1, this.queue, group, this.context.consumerName, ...ids.slice(start, start + ID_CHUNK));
    }
  }

  /** Idempotent. Releases unsettled entries to the group's next claim. */
  close(): Promise<void> {
    this.#closed ??= this.#shutdown();
    return this.#closed;
  }

  async #shutdown(): Promise<void> {
    if (this.#request) this.#request.reader.cancel(this.#request);
    await this.#receiving?.catch(() => {});
    const log = this.context.clients.log;
    const handBack = async () => {
      await this.acks.flush();
      const ids = [...this.unsettled.keys()];
      if (ids.length === 0) return;
      const { group } = this.context.options;
      await this.script.xclaim(this.queue, group, this.context.consumerName, 0, ...ids, "IDLE", RELEASED_IDLE_MS, "JUSTID");
    };
    const done = await within(handBack(), HAND_BACK_DEADLINE_MS, (error) => {
      log("warn", `redis ${this.context.url}: could not release the unsettled entries of ${this.queue} (${error.message}); they are claimed after claimIdle`);
    });
    if (!done) log("warn", `redis ${this.context.url}: no answer releasing the unsettled entries of ${this.queue} within ${HAND_BACK_DEADLINE_MS} ms; they are claimed after claimIdle`);
    this.context.closed(this);
  }
}
