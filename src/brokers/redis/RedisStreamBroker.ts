import type { Redis } from "ioredis";
import type { Broker, BrokerFeatures, BrowsedMessage, Consumer, ConsumerOptions, OutgoingMessage } from "../contract.js";
import { BrokerLifecycle } from "../BrokerLifecycle.js";
import { consumerId } from "./consumer-id.js";
import { addDelayed, defineDelayedScripts } from "./delayed-set.js";
import type { RedisClients } from "../shared/redis-clients.js";
import { RedisBrokerBase } from "./redis-broker-base.js";
import { StreamConsumer, type StreamConsumerContext } from "./StreamConsumer.js";
import { unackedEntries, unreadCount } from "./stream-group-view.js";
import { frameFields, fromFields, toFields } from "./stream-fields.js";
import { StreamReader } from "./stream-reader.js";
import { defineStreamScripts } from "./stream-scripts.js";
import { sendStreamAcks } from "./stream-acks.js";
import type { StreamDelivery } from "./StreamDelivery.js";
import { TickBatcher } from "./tick-batcher.js";

export interface StreamOptions {
  /** The consumer group every worker of a queue joins (`?group=`, default "wqueue"). */
  group: string;
  /** An entry pending this long with no settle is claimed by another consumer (`?claimIdle=MS`, default 30000). */
  claimIdleMs: number;
  /** Each XADD trims the stream to about this many entries (`?maxlen=N`, MAXLEN ~); 0: no trimming. */
  maxlen: number;
}

/**
 * Redis Streams (`redis://host:6379?mode=stream`): AT LEAST ONCE, through one consumer group per
 * queue. The group is created on demand at "0" (MKSTREAM), so entries added before the first worker
 * started are delivered too; a group created later over a long stream starts at its beginning.
 * Producers XADD the fields of ./stream-fields.ts (`body` is enough). Acks are XACKs, batched per
 * turn of the event loop over all consumers (./stream-acks.ts); nack leaves the entry pending and puts its id in the group's retry set
 * (`<queue>:wqueue:retry:<group>`, scored by when it is due), from which a claim takes it back, so
 * a retry never adds a copy that other groups of the stream would see; deadLetter XACKs and adds the
 * dead letter to the stream `<queue>.dead`: each atomic (./stream-scripts.ts). A received entry is
 * the consumer's for claimIdle ms (`leaseMs`), renewed by `extend` while its handler runs; one left
 * idle that long (its consumer died) is claimed by another consumer, its attempt taken from the
 * group's delivery count; a closing consumer releases its unsettled entries so the next claim takes
 * them at once. Acked entries stay in the stream (other groups may read it) until `?maxlen=` trims
 * them (a pending entry trimmed away is lost with it). Not durable beyond Redis's own persistence.
 *
 * Connections: one for commands and one blocking reader shared by every consumer of this instance,
 * which is one member of the group (`<hostname>:<pid>:<random>`).
 */
export class RedisStreamBroker extends RedisBrokerBase<StreamConsumer> implements Broker {
  readonly kind = "redis-stream";
  protected readonly queueKeyType = "stream";
  readonly features: BrokerFeatures = {
    delivery: "at-least-once",
    headers: true,
    durableDelay: true,
    durable: false,
    ordered: true,
  };
  readonly consumerName = consumerId();
  readonly #consumerContext: StreamConsumerContext;
  #reader: StreamReader | undefined;

  constructor(
    clients: RedisClients,
    readonly options: StreamOptions,
  ) {
    super(clients);
    const broker = this;
    this.#consumerContext = {
      url: this.url,
      clients,
      options,
      consumerName: this.consumerName,
      get commands() {
        return broker.commands;
      },
      reader: () => this.reader(),
      acks: new TickBatcher<StreamDelivery>((deliveries) => sendStreamAcks(this.commands, options.group, deliveries)),
      noteRetry: (queue, delayMs) => this.noteRetry(queue, delayMs),
      closed: (consumer) => this.lifecycle.forget(consumer),
    };
  }

  protected prepare(client: Redis): void {
    defineDelayedScripts(client);
    defineStreamScripts(client);
  }

  consumer(queue: string, options: ConsumerOptions = {}): Consumer {
    const deadLetterQueue = BrokerLifecycle.deadLetterQueue(queue, options);
    return this.lifecycle.track(new StreamConsumer(this.#consumerContext, queue, deadLetterQueue));
  }

  /** XADD each message (MAXLEN ~ maxlen when set), pipelined: one round trip; delayed ones via the delayed set. */
  async publish(queue: string, messages: OutgoingMessage[]): Promise<void> {
    if (messages.length === 0) return;
    const client = await this.commandClient();
    const later: [number, Buffer][] = [];
    const pipeline = client.pipeline();
    let now = 0;
    for (const message of messages) {
      const fields = toFields(message);
      if (message.delayMs !== undefined && message.delayMs > 0) later.push([message.delayMs, frameFields(fields)]);
      else {
        if (this.options.maxlen > 0) pipeline.xadd(queue, "MAXLEN", "~", this.options.maxlen, "*", ...fields);
        else pipeline.xadd(queue, "*", ...fields);
        now += 1;
      }
    }
    if (now > 0) for (const [error] of (await pipeline.exec()) ?? []) if (error) throw error;
    if (later.length > 0) await addDelayed(client, queue, later);
    await this.replicated(client, queue);
    if (later.length > 0) this.noteDelayed(queue, Math.min(...later.map(([delayMs]) => delayMs)));
  }

  noteDelayed(queue: string, delayMs: number): void {
    this.#reader?.noteDelayed(queue, delayMs);
  }

  noteRetry(queue: string, delayMs: number): void {
    this.#reader?.noteRetry(queue, delayMs);
  }

  /** Entries the group has not read yet, for metrics (see ./stream-group-view.ts). */
  async backlog(queue: string): Promise<number> {
    return unreadCount(await this.commandClient(), queue, this.options.group);
  }

  /** Up to `limit` entries the group has not acked, oldest first, left in place; `id` is the entry id. */
  async browse(queue: string, limit: number): Promise<BrowsedMessage[]> {
    const entries = await unackedEntries(await this.commandClient(), queue, this.options.group, Math.max(1, limit));
    return entries.map(([id, fields]) => {
      const { body, headers, key } = fromFields(fields);
      return { id: id.toString(), body, headers, key };
    });
  }

  /** The shared blocking reader, opened on first use; undefined once the broker is closed. */
  async reader(): Promise<StreamReader | undefined> {
    const commands = await this.commandClient();
    if (this.closed) return undefined;
    this.#reader ??= new StreamReader(this.openBlocking("stream-reader"), commands, this.clients, {
      ...this.options,
      consumer: this.consumerName,
      held: (queue) => this.#held(queue),
    });
    return this.#reader;
  }

  #held(queue: string): ReadonlySet<string> {
    const ids = new Set<string>();
    for (const consumer of this.lifecycle.consumers) if (consumer.queue === queue) for (const id of consumer.unsettled.keys()) ids.add(id);
    return ids;
  }

  protected override async closeReaders(): Promise<void> {
    await this.#reader?.close();
  }
}
