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
import { deadLetterHeaders, defaultDeadLetterQueue } from "../dead-letter.js";
import { unwrap, wrap } from "../envelope.js";
import { SettleOnceDelivery } from "../settle-once.js";
import { addDelayed, defineDelayedScripts } from "./delayed-set.js";
import { ListReader, READER_SILENCE_MS, ReadRequest } from "./list-reader.js";
import type { RedisClients } from "./open-redis-broker.js";

/**
 * Redis lists (`redis://host:6379?mode=list`), the seed's behaviour: producers RPUSH, the worker
 * pops. AT MOST ONCE: a popped message is gone from Redis, so a worker that dies mid-message loses
 * it, and ack() does nothing. A plain `RPUSH queue payload` from any producer is a message; headers,
 * key and attempt travel in the envelope of ../envelope.ts. nack() pushes the message back (attempt
 * + 1), at the tail, or after a delay through the delayed set of ./delayed-set.ts.
 *
 * Connections: one for commands (publish, nack, dead letter, CLIENT UNBLOCK), opened by connect(),
 * and one blocking reader shared by every consumer of this instance, opened by the first receive.
 */
export class RedisListBroker implements Broker {
  readonly kind = "redis-list";
  readonly features: BrokerFeatures = {
    delivery: "at-most-once",
    headers: true,
    durableDelay: true,
    durable: false,
    ordered: true,
  };
  readonly url: string;
  #commands: Redis | undefined;
  #connecting: Promise<void> | undefined;
  #reader: ListReader | undefined;
  readonly #consumers = new Set<RedisListConsumer>();
  #closed: Promise<void> | undefined;

  constructor(readonly clients: RedisClients) {
    this.url = clients.url;
  }

  connect(): Promise<void> {
    if (this.#closed) return Promise.reject(new Error(`broker ${this.url} is closed`));
    this.#connecting ??= this.clients.connect("commands").then(
      (client) => {
        defineDelayedScripts(client);
        this.#commands = client;
      },
      (error: unknown) => {
        this.#connecting = undefined; // a later connect() tries again
        throw error;
      },
    );
    return this.#connecting;
  }

  consumer(queue: string, options: ConsumerOptions = {}): Consumer {
    const consumer = new RedisListConsumer(this, queue, options.deadLetterQueue ?? defaultDeadLetterQueue(queue));
    this.#consumers.add(consumer);
    return consumer;
  }

  async publish(queue: string, messages: OutgoingMessage[]): Promise<void> {
    if (messages.length === 0) return;
    const client = this.#commands ?? (await this.#connected());
    const now: Buffer[] = [];
    const later: [number, Buffer][] = [];
    for (const message of messages) {
      if (message.delayMs !== undefined && message.delayMs > 0) later.push([message.delayMs, wrap(message)]);
      else now.push(wrap(message));
    }
    if (now.length > 0 && now.length <= RPUSH_CHUNK) await client.rpush(queue, ...now);
    else if (now.length > 0) {
      // Chunked so no single command holds Redis for long; pipelined, so still one round trip.
      const pipeline = client.pipeline();
      for (let start = 0; start < now.length; start += RPUSH_CHUNK) {
        pipeline.rpush(queue, ...now.slice(start, start + RPUSH_CHUNK));
      }
      for (const [error] of (await pipeline.exec()) ?? []) if (error) throw error;
    }
    if (later.length > 0) {
      await addDelayed(client, queue, later);
      this.#reader?.noteDelayed(queue, later.reduce((soonest, [delayMs]) => Math.min(soonest, delayMs), Infinity));
    }
  }

  /** Messages ready in the list (delayed retries not counted), for metrics. */
  async backlog(queue: string): Promise<number> {
    return (this.#commands ?? (await this.#connected())).llen(queue);
  }

  /** The first `limit` messages of the list, left in place; a list has no ids, so `id` is the position. */
  async browse(queue: string, limit: number): Promise<BrowsedMessage[]> {
    const client = this.#commands ?? (await this.#connected());
    const items = await client.lrangeBuffer(queue, 0, Math.max(0, limit - 1));
    return items.map((raw, index) => {
      const { body, headers, key } = unwrap(raw);
      return { id: String(index), body, headers, key };
    });
  }

  /** The shared blocking reader, opened on first use; undefined once the broker is closed. */
  async reader(): Promise<ListReader | undefined> {
    const commands = this.#commands ?? (await this.#connected());
    if (this.#closed) return undefined;
    if (this.#reader === undefined) {
      const client = this.clients.background("reader", READER_SILENCE_MS);
      defineDelayedScripts(client);
      this.#reader = new ListReader(client, commands, this.clients);
    }
    return this.#reader;
  }

  forget(consumer: RedisListConsumer): void {
    this.#consumers.delete(consumer);
  }

  /** Idempotent: ends pending receives, interrupts the BLPOP, then quits both connections. */
  close(): Promise<void> {
    this.#closed ??= this.#shutdown();
    return this.#closed;
  }

  async #shutdown(): Promise<void> {
    await Promise.all([...this.#consumers].map((consumer) => consumer.close()));
    await this.#reader?.close();
    await this.#connecting?.catch(() => {});
    if (this.#commands) await this.clients.quit(this.#commands);
  }

  async #connected(): Promise<Redis> {
    await this.connect();
    return this.#commands as Redis;
  }
}

/** Values per RPUSH when a publish is split. */
const RPUSH_CHUNK = 1000;
const RESOLVED = Promise.resolve();
const NO_HEADERS: Readonly<Headers> = Object.freeze({});
/**
 * The first bytes every envelope starts with, taken from wrap() itself. A body that starts
 * otherwise (any non-envelope JSON included) is plain: this skips unwrap() and its per-message
 * allocation on the hot path, and is only a pre-filter, so unwrap() still has the last word.
 */
const ENVELOPE_HEAD = wrap({ body: new Uint8Array(0), attempt: 2 }).subarray(0, 4);
const [HEAD0, HEAD1, HEAD2, HEAD3] = ENVELOPE_HEAD;
const mayBeEnvelope = (raw: Buffer) =>
  raw.length > 4 && raw[0] === HEAD0 && raw[1] === HEAD1 && raw[2] === HEAD2 && raw[3] === HEAD3;
/** Delivery ids: unique per process (prefix) and per message (counter). */
const ID_PREFIX = `${randomUUID().slice(0, 8)}-`;
let lastId = 0;

class RedisListConsumer implements Consumer {
  #request: ReadRequest | undefined;
  #receiving: Promise<unknown> | undefined;
  #closed: Promise<void> | undefined;

  constructor(
    readonly broker: RedisListBroker,
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
    const reader = await this.broker.reader();
    if (reader === undefined || this.#closed) return [];
    this.#request ??= new ReadRequest(this.queue, reader);
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
    this.broker.forget(this);
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

  protected doNack(delayMs: number): Promise<void> {
    const { body, headers, key } = this;
    return this.#consumer.broker.publish(this.queue, [{ body, headers, key, attempt: this.attempt + 1, delayMs }]);
  }

  protected doDeadLetter(reason: DeadLetterReason): Promise<void> {
    const headers = deadLetterHeaders(this, reason);
    return this.#consumer.broker.publish(this.#consumer.deadLetterQueue, [{ body: this.body, headers, key: this.key }]);
  }
}
