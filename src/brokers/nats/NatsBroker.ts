import type { MsgRequest, NextMsgRequest } from "@nats-io/jetstream";
import type { Broker, BrokerFeatures, BrokerLog, BrowsedMessage, Consumer, ConsumerOptions, OutgoingMessage } from "../contract.js";
import { BrokerLifecycle } from "../BrokerLifecycle.js";
import { decode } from "./message-codec.js";
import { NatsConnection } from "./NatsConnection.js";
import { NatsConsumer, type NatsConsumerContext } from "./NatsConsumer.js";
import type { NatsUrl } from "./nats-url.js";
import { publishAll } from "./publisher.js";
import { listNatsQueues } from "./list-queues.js";
import { StreamResolver } from "./StreamResolver.js";
import { queueSubject } from "./subjects.js";

/** Credit of a consumer whose caller states no maxInFlight (scripts, tests). */
export const DEFAULT_MAX_IN_FLIGHT = 1000;

/**
 * NATS JetStream (`nats://`; options in ./nats-url.ts, queue-to-stream mapping in ./subjects.ts).
 * At least once: each queue is a stream (work-queue retention by default) read through one durable
 * pull consumer that all workers share; a message is removed once acked, and one left unacked (a
 * dead worker, a lost connection) comes back after ack_wait, its delivery counted as an attempt.
 * Retries are naks with a delay that JetStream keeps; dead letters are copies in `<queue>.dead`,
 * a queue (stream) of its own. Streams survive a server restart (file storage).
 *
 * Publishing is JetStream publish: resolved once the server stored every message (./publisher.ts).
 */
export class NatsBroker implements Broker {
  readonly kind = "nats";
  readonly features: BrokerFeatures = {
    delivery: "at-least-once",
    headers: true,
    durableDelay: true,
    durable: true,
    ordered: true,
  };
  readonly url: string;
  readonly connection: NatsConnection;
  readonly resolver: StreamResolver;
  readonly #lifecycle: BrokerLifecycle<NatsConsumer>;
  readonly #consumerContext: NatsConsumerContext;

  constructor(
    readonly config: NatsUrl,
    readonly log: BrokerLog,
  ) {
    this.url = config.url;
    this.connection = new NatsConnection(config, log);
    this.resolver = new StreamResolver(this.connection);
    this.#lifecycle = new BrokerLifecycle(this.kind, this.url);
    const { url, connection, resolver } = this;
    this.#consumerContext = {
      url,
      config,
      connection,
      resolver,
      log,
      publish: (queue, messages) => this.publish(queue, messages),
      closed: (consumer) => this.#lifecycle.forget(consumer),
    };
  }

  connect(): Promise<void> {
    return this.connection.connect();
  }

  /**
   * Throws ConfigError at once (before the worker is ready) for a queue or dead-letter queue name
   * that is no valid NATS subject, instead of a receive failing with it again and again.
   */
  consumer(queue: string, options: ConsumerOptions = {}): Consumer {
    const maxInFlight = Math.max(1, Math.floor(options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT));
    const deadLetterQueue = BrokerLifecycle.deadLetterQueue(queue, options);
    queueSubject(this.config.subjectPrefix, queue);
    queueSubject(this.config.subjectPrefix, deadLetterQueue);
    return this.#lifecycle.track(new NatsConsumer(this.#consumerContext, queue, deadLetterQueue, maxInFlight));
  }

  async publish(queue: string, messages: OutgoingMessage[]): Promise<void> {
    this.#lifecycle.assertOpen();
    if (messages.length === 0) return;
    await publishAll(this.connection, this.resolver, queue, messages);
  }

  /**
   * Up to `limit` messages of the queue's subject still in its stream, oldest first, read by
   * sequence (STREAM.MSG.GET, next by subject) without consuming them. On a work-queue stream these
   * are the messages not yet acked, those in flight and parked for a retry included.
   */
  async browse(queue: string, limit: number): Promise<BrowsedMessage[]> {
    const target = await this.resolver.lookup(queue);
    if (target === undefined) return [];
    const { jsm } = await this.connection.clients();
    const found: BrowsedMessage[] = [];
    for (let seq = 1; found.length < limit; ) {
      // STREAM.MSG.GET takes next_by_subj (server 2.9+), though the client types it for direct gets only.
      const next: NextMsgRequest = { next_by_subj: target.subject, seq };
      const stored = await jsm.streams.getMessage(target.stream, next as unknown as MsgRequest);
      if (stored === null) break;
      const inbound = decode(stored.header);
      found.push({ id: String(stored.seq), body: stored.data, headers: inbound.headers, key: inbound.key });
      seq = stored.seq + 1;
    }
    return found;
  }

  /**
   * Messages of the queue not yet acked: the consumer's pending (not delivered yet) plus its ack
   * pending (in flight, or parked for a retry). Before any consumer exists: what the stream holds
   * on the queue's subject. 0 for a queue without a stream.
   */
  async backlog(queue: string): Promise<number> {
    const target = await this.resolver.lookup(queue);
    if (target === undefined) return 0;
    const { jsm } = await this.connection.clients();
    const consumer = await jsm.consumers.info(target.stream, target.consumer).catch(() => undefined);
    if (consumer !== undefined) return consumer.num_pending + consumer.num_ack_pending;
    const stream = await jsm.streams.info(target.stream, { subjects_filter: target.subject });
    return stream.state.subjects?.[target.subject] ?? 0;
  }

  /** Queues matching `pattern`: subjects of the streams that overlap it (./list-queues.ts). */
  listQueues(pattern: string): Promise<string[]> {
    return listNatsQueues(this.connection, this.config.subjectPrefix, pattern);
  }

  /** Idempotent: closes every consumer (they give back what they hold), then the connection. */
  close(): Promise<void> {
    return this.#lifecycle.close(() => this.connection.close());
  }
}
