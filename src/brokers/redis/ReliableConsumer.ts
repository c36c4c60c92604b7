import type { Redis } from "ioredis";
import type { Consumer, Delivery } from "../contract.js";
import type { RedisClients } from "../shared/redis-clients.js";
import { consumerId } from "./consumer-id.js";
import { HAND_BACK_DEADLINE_MS, within } from "./deadline.js";
import { ReliableDelivery } from "./ReliableDelivery.js";
import { type ReliableKeys, reliableKeys } from "./reliable-item.js";
import type { ReliableHeartbeats } from "./reliable-heartbeats.js";
import type { ReliableReader, ReliableRequest } from "./reliable-reader.js";
import type { ReliableClient } from "./reliable-scripts.js";
import type { TickBatcher } from "./tick-batcher.js";

/** What a consumer and its deliveries use of their broker (RedisReliableBroker says what each does), and no more. */
export interface ReliableConsumerContext {
  /** Redacted. */
  readonly url: string;
  readonly clients: RedisClients;
  readonly options: { readonly heartbeatTtlMs: number };
  /** The command connection; throws before the broker connected. */
  readonly commands: Redis;
  /** The broker's one reliable reader, opened on first use; undefined once the broker is closed. */
  reader(): Promise<ReliableReader | undefined>;
  readonly heartbeats: ReliableHeartbeats;
  noteDelayed(queue: string, delayMs: number): void;
  /** The acks of all the broker's consumers, one script call per turn (./reliable-acks.ts). */
  readonly acks: TickBatcher<ReliableDelivery>;
  /** Called once, when the consumer has closed: the broker stops tracking it. */
  closed(consumer: ReliableConsumer): void;
}

/**
 * One reliable-mode consumer of one queue (see ./RedisReliableBroker.ts). Its first receive joins
 * the broker's shared reader and heartbeats (the key `<queue>:wqueue:consumer:<id>`, TTL
 * heartbeatTtl, refreshed every third of it, plus registration in `<queue>:wqueue:consumers`), so a
 * consumer that never received leaves nothing in Redis. Acks of all the broker's consumers are batched per turn of the event loop into one
 * script call. close() stops the reader and the heartbeat, sends pending acks, then hands every
 * unsettled message back to the head of the queue in its original order and unregisters.
 */
export class ReliableConsumer implements Consumer {
  readonly id = consumerId();
  readonly keys: ReliableKeys;
  /** Handed out, not yet settled: what resync() must not hand back. */
  readonly unsettled = new Set<ReliableDelivery>();
  get acks(): TickBatcher<ReliableDelivery> {
    return this.context.acks;
  }
  #reader: ReliableReader | undefined;
  #request: ReliableRequest | undefined;
  #receiving: Promise<unknown> | undefined;
  #closed: Promise<void> | undefined;

  constructor(
    readonly context: ReliableConsumerContext,
    readonly queue: string,
    readonly deadLetterQueue: string,
  ) {
    this.keys = reliableKeys(queue, this.id, context.clients.cluster);
  }

  get script(): ReliableClient {
    return this.context.commands as ReliableClient;
  }

  receive(max: number, signal: AbortSignal): Promise<Delivery[]> {
    if (this.#closed || signal.aborted) return Promise.resolve([]);
    return this.#track(this.#onReader(async (request) => this.#toDeliveries(await request.owner.read(request, max, signal)), []));
  }

  /** Claims what the queue holds now, in the reader's next round, without waiting for more. */
  take(max: number): Promise<Delivery[]> {
    if (this.#closed) return Promise.resolve([]);
    return this.#track(this.#onReader(async (request) => this.#toDeliveries(await request.owner.take(request, max)), []));
  }

  /** Resolves once the reader finds the queue non-empty (or on abort or close); claims nothing. */
  waitForMessages(signal: AbortSignal): Promise<void> {
    if (this.#closed || signal.aborted) return Promise.resolve();
    return this.#track(this.#onReader((request) => request.owner.watch(request, signal), undefined));
  }

  /**
   * Runs `ask` with this consumer's request on the reader: at once once joined (so a close right
   * after finds it pending and cancels it), after joining the first time; `closed` if closed first.
   */
  #onReader<T>(ask: (request: ReliableRequest) => Promise<T>, closed: T): Promise<T> {
    if (this.#request !== undefined) return ask(this.#request);
    return this.#joined().then((request) => (request === undefined || this.#closed ? closed : ask(request)));
  }

  #track<T>(operation: Promise<T>): Promise<T> {
    this.#receiving = operation;
    return operation;
  }

  get closing(): boolean {
    return this.#closed !== undefined;
  }

  /** The reader's view of this consumer: what resync() must leave in its processing list. */
  unsettledItems(): Buffer[] {
    return [...this.unsettled].map((delivery) => delivery.stored);
  }

  /** This consumer's request on the broker's reader: the first call joins it and the heartbeats. */
  async #joined(): Promise<ReliableRequest | undefined> {
    if (this.#request !== undefined) return this.#request;
    const reader = await this.context.reader();
    if (reader === undefined || this.#closed) return undefined;
    if (this.#request === undefined) {
      this.#reader = reader;
      this.#request = reader.join({ keys: this.keys, id: this.id, unsettled: () => this.unsettledItems() });
      this.context.heartbeats.join(this);
    }
    return this.#request;
  }

  readonly #toDeliveries = (items: Buffer[]): Delivery[] => {
    const deliveries: Delivery[] = [];
    for (const item of items) {
      const delivery = new ReliableDelivery(this, item);
      this.unsettled.add(delivery);
      deliveries.push(delivery);
    }
    return deliveries;
  };

  /** Idempotent. Hands unsettled messages back to the head of the queue, in their original order. */
  close(): Promise<void> {
    this.#closed ??= this.#shutdown();
    return this.#closed;
  }

  async #shutdown(): Promise<void> {
    if (this.#request) this.#request.reader.cancel(this.#request);
    await this.#receiving?.catch(() => {});
    if (this.#reader && this.#request) {
      this.#reader.leave(this.#request.member);
      this.context.heartbeats.leave(this);
      const { processing, source, consumers, heartbeat } = this.keys;
      const log = this.context.clients.log;
      const handBack = async () => {
        await this.context.heartbeats.settled();
        await this.acks.flush();
        await this.script.wqueueReliableRelease(4, processing, source, consumers, heartbeat, this.id);
      };
      const done = await within(handBack(), HAND_BACK_DEADLINE_MS, (error) => {
        log("warn", `redis ${this.context.url}: consumer ${this.id} could not hand its messages back (${error.message}); the reaper will once its heartbeat expires`);
      });
      if (!done) log("warn", `redis ${this.context.url}: consumer ${this.id} got no answer handing its messages back within ${HAND_BACK_DEADLINE_MS} ms; the reaper will once its heartbeat expires`);
    }
    this.context.closed(this);
  }
}
