import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import type {
  Broker,
  BrokerFeatures,
  BrowsedMessage,
  Consumer,
  ConsumerOptions,
  DeadLetterReason,
  Delivery,
  Headers,
  OutgoingMessage,
} from "../contract.js";
import { BrokerLifecycle } from "../BrokerLifecycle.js";
import { deadLetterHeaders } from "../dead-letter.js";
import { unwrap } from "../envelope.js";
import { SettleOnceDelivery } from "../settle-once.js";
import { ReadRequest } from "./blocking-reader.js";
import { defineDelayedScripts } from "./delayed-set.js";
import { ListReader } from "./list-reader.js";
import { publishToList } from "./list-publish.js";
import type { RedisClients } from "../shared/redis-clients.js";
import { mayBeEnvelope, NO_HEADERS } from "./read-envelope.js";
import { RedisBrokerBase } from "./redis-broker-base.js";

export interface ListOptions {
  /** `?plain=true`: publish drops headers and key, so a plain consumer reads every body as it is. */
  plain: boolean;
}

/**
 * Redis lists (`redis://host:6379?mode=list`), the seed's behaviour: producers RPUSH, the worker
 * pops. AT MOST ONCE: a popped message is gone from Redis, so a worker that dies mid-message loses
 * it, and ack() does nothing. A plain `RPUSH queue payload` from any producer is a message; headers,
 * key and attempt travel in the envelope of ../envelope.ts (unless `?plain=true`). nack() pushes the
 * message back (attempt + 1, in the envelope), at the tail, or after a delay through the delayed set
 * of ./delayed-set.ts.
 *
 * Connections: one for commands (publish, nack, dead letter, CLIENT UNBLOCK), opened by connect(),
 * and one blocking reader shared by every consumer of this instance, opened by the first receive.
 */
export class RedisListBroker extends RedisBrokerBase<RedisListConsumer> implements Broker {
  readonly kind = "redis-list";
  protected readonly queueKeyType = "list";
  readonly features: BrokerFeatures = {
    delivery: "at-most-once",
    headers: true,
    durableDelay: true,
    keepsAttempt: true,
    durable: false,
    ordered: true,
  };
  readonly #consumerContext: ListConsumerContext;
  #reader: ListReader | undefined;

  constructor(
    clients: RedisClients,
    readonly options: ListOptions = { plain: false },
  ) {
    super(clients);
    this.#consumerContext = {
      reader: () => this.reader(),
      publishAs: (queue, messages, plain) => this.publishAs(queue, messages, plain),
      closed: (consumer) => this.lifecycle.forget(consumer),
    };
  }

  protected prepare(client: Redis): void {
    defineDelayedScripts(client);
  }

  consumer(queue: string, options: ConsumerOptions = {}): Consumer {
    const deadLetterQueue = BrokerLifecycle.deadLetterQueue(queue, options);
    return this.lifecycle.track(new RedisListConsumer(this.#consumerContext, queue, deadLetterQueue));
  }

  publish(queue: string, messages: OutgoingMessage[]): Promise<void> {
    return this.publishAs(queue, messages, this.options.plain);
  }

  /** publish(), or with `plain` false for what wqueue itself writes: retries and dead letters keep their envelope. */
  async publishAs(queue: string, messages: OutgoingMessage[], plain: boolean): Promise<void> {
    if (messages.length === 0) return;
    const client = await this.commandClient();
    const soonest = await publishToList(client, queue, messages, plain);
    await this.replicated(client, queue);
    if (Number.isFinite(soonest)) this.#reader?.noteDelayed(queue, soonest);
  }

  /** Messages ready in the list (delayed retries not counted), for metrics. */
  async backlog(queue: string): Promise<number> {
    return (await this.commandClient()).llen(queue);
  }

  /** The first `limit` messages of the list, left in place; a list has no ids, so `id` is the position. */
  async browse(queue: string, limit: number): Promise<BrowsedMessage[]> {
    const items = await (await this.commandClient()).lrangeBuffer(queue, 0, Math.max(0, limit - 1));
    return items.map((raw, index) => {
      const { body, headers, key } = unwrap(raw);
      return { id: String(index), body, headers, key };
    });
  }

  /** The shared blocking reader, opened on first use; undefined once the broker is closed. */
  async reader(): Promise<ListReader | undefined> {
    const commands = await this.commandClient();
    if (this.closed) return undefined;
    this.#reader ??= new ListReader(this.openBlocking("reader"), commands, this.clients);
    return this.#reader;
  }

  protected override async closeReaders(): Promise<void> {
    await this.#reader?.close();
  }
}

const RESOLVED = Promise.resolve();
/** Delivery ids: unique per process (prefix) and per message (counter). */
const ID_PREFIX = `${randomUUID().slice(0, 8)}-`;
let lastId = 0;

/** What a consumer and its deliveries use of their broker, and no more. */
interface ListConsumerContext {
  reader(): Promise<ListReader | undefined>;
  /** The broker's publishAs: retries and dead letters keep their envelope. */
  publishAs(queue: string, messages: OutgoingMessage[], plain: boolean): Promise<void>;
  /** Called once, when the consumer has closed: the broker stops tracking it. */
  closed(consumer: RedisListConsumer): void;
}

class RedisListConsumer implements Consumer {
  #request: ReadRequest<Buffer> | undefined;
  #receiving: Promise<unknown> | undefined;
  #closed: Promise<void> | undefined;

  constructor(
    readonly context: ListConsumerContext,
    readonly queue: string,
    readonly deadLetterQueue: string,
  ) {}

  receive(max: number, signal: AbortSignal): Promise<Delivery[]> {
    if (this.#closed || signal.aborted) return Promise.resolve([]);
    const request = this.#request;
    const receiving = request
      ? request.reader.read(request, max, signal).then(this.#toDeliveries)
      : this.#firstReceive(max, signal);
    this.#receiving = receiving;
    return receiving;
  }

  async #firstReceive(max: number, signal: AbortSignal): Promise<Delivery[]> {
    const reader = await this.context.reader();
    if (reader === undefined || this.#closed) return [];
    this.#request ??= new ReadRequest<Buffer>(this.queue, reader);
    return this.#toDeliveries(await reader.read(this.#request, max, signal));
  }

  readonly #toDeliveries = (items: Buffer[]): Delivery[] => {
    const deliveries: Delivery[] = [];
    for (const item of items) deliveries.push(new RedisListDelivery(this, item));
    return deliveries;
  };

  /** Idempotent. Nothing to give back: what was popped is the caller's (at most once). */
  close(): Promise<void> {
    this.#closed ??= this.#shutdown();
    return this.#closed;
  }

  async #shutdown(): Promise<void> {
    if (this.#request) this.#request.reader.cancel(this.#request);
    await this.#receiving?.catch(() => {});
    this.context.closed(this);
  }
}

/** One popped message. Built per message on the hot path: id, queue and partition are getters. */
class RedisListDelivery extends SettleOnceDelivery {
  readonly #consumer: RedisListConsumer;
  readonly #number: number;
  readonly body: Uint8Array;
  readonly headers: Readonly<Headers>;
  readonly key: string | undefined;
  readonly attempt: number;

  constructor(consumer: RedisListConsumer, raw: Buffer) {
    super();
    this.#consumer = consumer;
    this.#number = ++lastId;
    if (!mayBeEnvelope(raw)) {
      this.body = raw;
      this.headers = NO_HEADERS;
      this.key = undefined;
      this.attempt = 1;
    } else {
      const message = unwrap(raw);
      this.body = message.body;
      this.headers = message.headers;
      this.key = message.key;
      this.attempt = message.attempt;
    }
  }

  /** Built on demand: most deliveries never have their id read. */
  get id(): string {
    return ID_PREFIX + this.#number;
  }

  get queue(): string {
    return this.#consumer.queue;
  }

  get partition(): undefined {
    return undefined;
  }

  /** The message left Redis when it was popped. */
  protected doAck(): Promise<void> {
    return RESOLVED;
  }

  protected doNack(delayMs: number, keepAttempt: boolean): Promise<void> {
    const { body, headers, key } = this;
    const attempt = keepAttempt ? this.attempt : this.attempt + 1;
    return this.#consumer.context.publishAs(this.queue, [{ body, headers, key, attempt, delayMs }], false);
  }

  protected doDeadLetter(reason: DeadLetterReason): Promise<void> {
    const headers = deadLetterHeaders(this, reason);
    return this.#consumer.context.publishAs(this.#consumer.deadLetterQueue, [{ body: this.body, headers, key: this.key }], false);
  }
}
