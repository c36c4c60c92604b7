import type { Redis } from "ioredis";
import type { Broker, BrokerFeatures, BrowsedMessage, Consumer, ConsumerOptions, OutgoingMessage } from "../contract.js";
import { BrokerLifecycle } from "../BrokerLifecycle.js";
import { unwrap } from "../envelope.js";
import { defineDelayedScripts } from "./delayed-set.js";
import { publishToList } from "./list-publish.js";
import { priorityKey } from "./priority-lane.js";
import type { RedisClients } from "../shared/redis-clients.js";
import { ReliableConsumer, type ReliableConsumerContext } from "./ReliableConsumer.js";
import { untag } from "./reliable-item.js";
import { sendReliableAcks } from "./reliable-acks.js";
import type { ReliableDelivery } from "./ReliableDelivery.js";
import { ReliableHeartbeats } from "./reliable-heartbeats.js";
import { POLL_MS, ReliableReader } from "./reliable-reader.js";
import { defineReliableScripts } from "./reliable-scripts.js";
import { RedisBrokerBase } from "./redis-broker-base.js";
import { TickBatcher } from "./tick-batcher.js";

export interface ReliableOptions {
  /** Lifetime of a consumer's heartbeat key (`?heartbeatTtl=MS`, default 10000); refreshed every third of it. */
  heartbeatTtlMs: number;
  /** `?poll=MS` (default 100): how often idle queues are looked at while several wait (./reliable-reader.ts). */
  pollMs?: number;
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
 * keeps them, hence `durable: false`. Messages published with `priority` wait in a sorted set
 * beside the list and are claimed before it (./priority-lane.ts).
 *
 * Connections: two per broker however many queues it consumes: one for commands (publish, settle,
 * heartbeats), opened by connect(), and one reader (./reliable-reader.ts) shared by every consumer,
 * opened by the first receive. The reader claims from many queues in one script call and waits on
 * idle queues by polling them every `?poll=MS` (default 100: an idle queue's message is claimed
 * within that, plus a round trip), or with BLMOVE when a single receive is pending. The heartbeats of all
 * consumers go in one call per tick (./reliable-heartbeats.ts), the acks of a turn in one call
 * (./reliable-acks.ts).
 */
export class RedisReliableBroker extends RedisBrokerBase<ReliableConsumer> implements Broker {
  readonly kind = "redis-reliable";
  protected readonly queueKeyType = "list";
  readonly features: BrokerFeatures = {
    delivery: "at-least-once",
    headers: true,
    durableDelay: true,
    keepsAttempt: true,
    durable: false,
    ordered: true,
    priorities: true,
  };
  readonly #consumerContext: ReliableConsumerContext;
  readonly #heartbeats: ReliableHeartbeats;
  #reader: ReliableReader | undefined;

  constructor(
    clients: RedisClients,
    readonly options: ReliableOptions,
  ) {
    super(clients);
    const broker = this;
    this.#heartbeats = new ReliableHeartbeats(() => this.commands, clients, options.heartbeatTtlMs);
    this.#consumerContext = {
      url: this.url,
      clients,
      options,
      get commands() {
        return broker.commands;
      },
      reader: () => this.reader(),
      heartbeats: this.#heartbeats,
      acks: new TickBatcher<ReliableDelivery>((deliveries) =>
        sendReliableAcks(this.commands, deliveries).catch((error: unknown) => {
          // The items stay in their processing lists, no longer held by a delivery: resync hands them back.
          this.#reader?.requestResync();
          throw error;
        }),
      ),
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
    const client = await this.commandClient();
    const soonest = await publishToList(client, queue, messages, this.options.plain, true);
    await this.replicated(client, queue);
    if (Number.isFinite(soonest)) this.noteDelayed(queue, soonest);
    const now = messages.filter((message) => !(message.delayMs && message.delayMs > 0));
    if (now.length > 0) this.#reader?.notePushed(queue, now.some((message) => (message.priority ?? 0) > 0));
  }

  /** Tells the readers of `queue` that a delayed message is due in `delayMs`. */
  noteDelayed(queue: string, delayMs: number): void {
    this.#reader?.noteDelayed(queue, delayMs);
  }

  /** Messages waiting in the list and its priority set (taken, delayed and dead ones not counted), for metrics. */
  async backlog(queue: string): Promise<number> {
    const client = await this.commandClient();
    const [listed, ranked] = await Promise.all([client.llen(queue), client.zcard(priorityKey(queue))]);
    return listed + ranked;
  }

  /** The first `limit` messages in the order they are claimed (priority set, then list), left in place; `id` is the position. */
  async browse(queue: string, limit: number): Promise<BrowsedMessage[]> {
    const client = await this.commandClient();
    const ranked = await client.zrangeBuffer(priorityKey(queue), 0, Math.max(0, limit - 1));
    const listed = ranked.length >= limit ? [] : await client.lrangeBuffer(queue, 0, Math.max(0, limit - ranked.length - 1));
    return [...ranked, ...listed].map((raw, index) => {
      const { body, headers, key } = unwrap(untag(raw));
      return { id: String(index), body, headers, key };
    });
  }

  /** The shared reader, opened on first use; undefined once the broker is closed. */
  async reader(): Promise<ReliableReader | undefined> {
    const commands = await this.commandClient();
    if (this.closed) return undefined;
    this.#reader ??= new ReliableReader(this.openBlocking("reliable-reader"), commands, this.clients, {
      heartbeatTtlMs: this.options.heartbeatTtlMs,
      pollMs: this.options.pollMs ?? POLL_MS,
    });
    return this.#reader;
  }

  protected override async closeReaders(): Promise<void> {
    await this.#reader?.close();
  }
}
