import type { Broker, BrokerFeatures, BrowsedMessage, Consumer, ConsumerOptions, OutgoingMessage } from "../contract.js";
import { BrokerLifecycle } from "../BrokerLifecycle.js";
import type { AmqpUrl } from "./amqp-url.js";
import { AmqpConnection, type AmqpEventLog } from "./AmqpConnection.js";
import { AmqpConsumer, type AmqpConsumerContext } from "./AmqpConsumer.js";
import { browseQueue } from "./browse-queue.js";
import { UnroutableError } from "./ConfirmPublisher.js";
import { encode, type Outbound } from "./message-codec.js";

/** Prefetch of a consumer whose caller states no maxInFlight (scripts, tests); AMQP caps it at 65535. */
export const DEFAULT_PREFETCH = 1000;
/** How long publish() waits for a lost connection to come back before it fails. */
const PUBLISH_TIMEOUT_MS = 30_000;

/**
 * RabbitMQ through amqplib (`amqp://`, `amqps://`; options in ./amqp-url.ts). At least once:
 * every consumer has its own channel with prefetch = maxInFlight and acks each message after its
 * handler (the acks of one event-loop turn coalesced: ./AckCoalescer.ts); unacked messages go back
 * to the queue when the channel closes (close(), a dead worker, a lost connection), marked
 * redelivered and counted as an attempt (./message-codec.ts): quorum queues count them
 * (`x-delivery-count`); on classic queues a redelivered message is first replaced by a copy at the
 * tail of the queue that carries its attempt (AmqpDelivery.recount), so order holds only until a
 * consumer dies, and a worker that dies again and again still reaches the poison verdict.
 *
 * Publishing waits for publisher confirms. Retries and delays are re-published copies (attempt + 1,
 * through delay queues for a delay: ./delay-buckets.ts), confirmed before the original is acked;
 * dead letters are copies with the `x-wqueue-dead-*` headers in `<queue>.dead` (durable).
 * Queues are declared on first use by each connection (./QueueDeclarer.ts).
 */
export class AmqpBroker implements Broker {
  readonly kind = "amqp";
  readonly features: BrokerFeatures;
  readonly url: string;
  readonly connection: AmqpConnection;
  readonly #lifecycle: BrokerLifecycle<AmqpConsumer>;
  readonly #consumerContext: AmqpConsumerContext;

  constructor(
    readonly config: AmqpUrl,
    readonly log: AmqpEventLog,
  ) {
    this.url = config.url;
    this.connection = new AmqpConnection(config, log);
    this.#lifecycle = new BrokerLifecycle(this.kind, this.url);
    this.#consumerContext = { connection: this.connection, config, log, closed: (consumer) => this.#lifecycle.forget(consumer) };
    // durable=false declares transient queues: their messages do not survive a broker restart.
    const durable = config.durable;
    // ?maxPriority declares x-max-priority: only then does RabbitMQ order by the `priority` property.
    const priorities = config.maxPriority !== undefined;
    this.features = { delivery: "at-least-once", headers: true, durableDelay: true, durable, ordered: true, priorities };
  }

  connect(): Promise<void> {
    return this.connection.connect();
  }

  consumer(queue: string, options: ConsumerOptions = {}): Consumer {
    const prefetch = Math.min(65_535, Math.max(1, Math.floor(options.maxInFlight ?? DEFAULT_PREFETCH)));
    const deadLetterQueue = BrokerLifecycle.deadLetterQueue(queue, options);
    return this.#lifecycle.track(new AmqpConsumer(this.#consumerContext, queue, deadLetterQueue, prefetch));
  }

  /**
   * Resolves once RabbitMQ confirmed every message. A connection lost meanwhile is waited for (up
   * to PUBLISH_TIMEOUT_MS) and the unconfirmed messages are sent again: a message whose confirm
   * was lost with the connection may then be stored twice (at least once).
   */
  async publish(queue: string, messages: OutgoingMessage[]): Promise<void> {
    this.#lifecycle.assertOpen();
    if (messages.length === 0) return;
    const byDelay = new Map<number, Outbound[]>();
    for (const message of messages) {
      const delayMs = Math.max(0, message.delayMs ?? 0);
      const batch = byDelay.get(delayMs) ?? [];
      if (batch.length === 0) byDelay.set(delayMs, batch);
      batch.push(encode(message, this.config.durable));
    }
    const deadline = Date.now() + PUBLISH_TIMEOUT_MS;
    for (let redeclared = false; ; ) {
      const session = await this.connection.session(deadline - Date.now());
      // allSettled: no message may still be on its way when the unconfirmed ones are sent again.
      const sends = [...byDelay].map(([delayMs, batch]) => session.send({ queue, delayMs }, batch));
      const results = await Promise.allSettled(sends);
      const failed = results.find((result) => result.status === "rejected");
      if (failed === undefined) return;
      const error: unknown = failed.reason;
      if (error instanceof UnroutableError && !redeclared) redeclared = true; // deleted meanwhile: declare again
      else if (session.alive) throw error;
      else this.log("debug", "connection lost while publishing; sending unconfirmed messages again");
    }
  }

  /** The first `limit` messages of `queue`, given back at once (./browse-queue.ts says what that leaves behind). */
  async browse(queue: string, limit: number): Promise<BrowsedMessage[]> {
    this.#lifecycle.assertOpen();
    return browseQueue(await this.connection.session(PUBLISH_TIMEOUT_MS), queue, limit);
  }

  /** Idempotent: closes every consumer (their unacked messages return to the queue), then the connection. */
  close(): Promise<void> {
    return this.#lifecycle.close(() => this.connection.close());
  }
}
