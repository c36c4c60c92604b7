import type { Redis } from "ioredis";
import type { Broker, BrokerFeatures, BrowsedMessage, Consumer, ConsumerOptions, OutgoingMessage } from "../contract.js";
import { BrokerLifecycle } from "../BrokerLifecycle.js";
import { unwrap } from "../envelope.js";
import { defineDelayedScripts } from "./delayed-set.js";
import { publishToList } from "./list-publish.js";
import type { RedisClients } from "../shared/redis-clients.js";
import { ReliableConsumer, type ReliableConsumerContext } from "./ReliableConsumer.js";
import { untag } from "./reliable-item.js";
import { defineReliableScripts } from "./reliable-scripts.js";
import { RedisBrokerBase } from "./redis-broker-base.js";

export interface ReliableOptions {
  /** Lifetime of a consumer's heartbeat key (`?heartbeatTtl=MS`, default 10000); refreshed every third of it. */
  heartbeatTtlMs: number;
  /** `?plain=true`: publish drops headers and key, so a plain consumer reads every body as it is. */
  plain?: boolean;
}

/**
 * Reliable Redis lists (`redis://host:6379`, or `?mode=reliable`): AT LEAST ONCE. Producers RPUSH
 * to the plain list `<queue>` as in mode=list, and WQueue publishes the same way. Each consumer has
 * an id (./consumer-id.ts) and atomically moves what it takes into its own processing list
 * `<queue>:wqueue:processing:<id>` (./reliable-reader.ts); ack removes it from there, nack puts it
 * back at the tail (or into the delayed set), deadLetter moves it to the dead-letter list: each one
 * Lua script (./reliable-scripts.ts). A consumer that dies (its heartbeat key expires) has its
 * processing list handed back to the head of the queue by the reaper every consumer runs; one that
 * closes hands its own back. Attempts count every delivery, a dead consumer's included (see
 * ./reliable-item.ts). Messages survive a Redis restart only as far as its persistence (AOF, RDB)
 * keeps them, hence `durable: false`.
 *
 * Connections: one for commands, opened by connect(); one blocking connection per consumer, opened
 * by its first receive (BLMOVE blocks on one list only).
 */
export class RedisReliableBroker extends RedisBrokerBase<ReliableConsumer> implements Broker {
  readonly kind = "redis-reliable";
  readonly features: BrokerFeatures = {
    delivery: "at-least-once",
    headers: true,
    durableDelay: true,
    keepsAttempt: true,
    durable: false,
    ordered: true,
  };
  readonly #consumerContext: ReliableConsumerContext;

  constructor(
    clients: RedisClients,
    readonly options: ReliableOptions,
  ) {
    super(clients);
    const broker = this;
    this.#consumerContext = {
      url: this.url,
      clients,
      options,
      get commands() {
        return broker.commands;
      },
      readerConnection: () => this.readerConnection(),
      noteDelayed: (queue, delayMs) => this.noteDelayed(queue, delayMs),
      closed: (consumer) => this.lifecycle.forget(consumer),
    };
  }

  protected prepare(client: Redis): void {
    defineDelayedScripts(client);
    defineReliableScripts(client);
  }

  consumer(queue: string, options: ConsumerOptions = {}): Consumer {
    const deadLetterQueue = BrokerLifecycle.deadLetterQueue(queue, options);
    return this.lifecycle.track(new ReliableConsumer(this.#consumerContext, queue, deadLetterQueue));
  }

  async publish(queue: string, messages: OutgoingMessage[]): Promise<void> {
    if (messages.length === 0) return;
    const soonest = await publishToList(await this.commandClient(), queue, messages, this.options.plain);
    if (Number.isFinite(soonest)) this.noteDelayed(queue, soonest);
  }

  /** Tells the readers of `queue` that a delayed message is due in `delayMs`. */
  noteDelayed(queue: string, delayMs: number): void {
    for (const consumer of this.lifecycle.consumers) if (consumer.queue === queue) consumer.noteDelayed(delayMs);
  }

  /** Messages waiting in the list (taken, delayed and dead ones not counted), for metrics. */
  async backlog(queue: string): Promise<number> {
    return (await this.commandClient()).llen(queue);
  }

  /** The first `limit` messages of the list, left in place; `id` is the position. */
  async browse(queue: string, limit: number): Promise<BrowsedMessage[]> {
    const items = await (await this.commandClient()).lrangeBuffer(queue, 0, Math.max(0, limit - 1));
    return items.map((raw, index) => {
      const { body, headers, key } = unwrap(untag(raw));
      return { id: String(index), body, headers, key };
    });
  }

  /** A blocking connection for one consumer's reader; undefined once the broker is closed. */
  async readerConnection(): Promise<{ client: Redis; commands: Redis } | undefined> {
    const commands = await this.commandClient();
    if (this.closed) return undefined;
    return { client: this.openBlocking("reliable-reader"), commands };
  }
}
