import type { ConsumeMessage } from "amqplib";
import type { DeadLetterReason, Headers } from "../contract.js";
import { deadLetterHeaders } from "../dead-letter.js";
import { SettleOnceDelivery } from "../settle-once.js";
import type { AmqpConsumer } from "./AmqpConsumer.js";
import type { Destination } from "./AmqpSession.js";
import type { ConsumerChannel } from "./ConsumerChannel.js";
import { decode, encode, newMessageId, type Outbound } from "./message-codec.js";

const RESOLVED = Promise.resolve();

/**
 * A message received on a consumer's channel. ack() is a basic.ack, sent at the end of the event
 * loop's turn with the others of that turn (./AckCoalescer.ts). nack() and deadLetter() publish a
 * copy (attempt + 1 to the queue or its delay queue; the reason headers to the dead-letter
 * queue), wait for the broker's confirm, and only then ack the original: a crash in between
 * leaves two copies, never none. If the delivery's channel is gone, all three do nothing: RabbitMQ
 * already gave the message back when the channel closed.
 */
export class AmqpDelivery extends SettleOnceDelivery {
  readonly body: Buffer;
  readonly headers: Readonly<Headers>;
  readonly key: string | undefined;
  readonly attempt: number;
  readonly partition = undefined;
  readonly #consumer: AmqpConsumer;
  readonly #message: ConsumeMessage;
  #id: string | undefined;

  constructor(
    consumer: AmqpConsumer,
    readonly channel: ConsumerChannel,
    message: ConsumeMessage,
  ) {
    super();
    this.#consumer = consumer;
    this.#message = message;
    const inbound = decode(message);
    this.body = message.content;
    this.headers = inbound.headers;
    this.key = inbound.key;
    this.attempt = inbound.attempt;
    this.#id = inbound.messageId;
  }

  /** The message-id; one made up (and kept by retries) for producers that set none. */
  get id(): string {
    this.#id ??= newMessageId();
    return this.#id;
  }

  get queue(): string {
    return this.#consumer.queue;
  }

  protected doAck(): Promise<void> {
    this.channel.ack(this.#message);
    return RESOLVED;
  }

  protected doNack(delayMs: number): Promise<void> {
    return this.#consumer.track(this.#moveTo({ queue: this.queue, delayMs }, this.#copy(this.attempt + 1), false));
  }

  /**
   * For a message the consumer took but never handed out, when it closes: a copy with this same
   * attempt goes to the tail of the queue, confirmed before the original is acked. Closing the
   * channel instead would give the message back `redelivered`, counted as one attempt more (and
   * moved to the tail all the same, by recount()) although it never ran.
   */
  giveBack(): Promise<void> {
    return this.#moveTo({ queue: this.queue }, this.#copy(this.attempt), false);
  }

  /**
   * For a redelivered message of a queue that keeps no delivery count (classic, ./message-codec.ts),
   * before it is handed out: publishes a copy carrying this attempt to the tail of the queue, and
   * acks the original once the copy is confirmed. The copy is what runs, so a worker that dies
   * running it makes the next redelivery count one more. Resolves true when the caller should hand
   * out this delivery itself: the copy could not be published (e.g. no write permission), and the
   * original, still held, then runs with the attempt `redelivered` alone gives (logged).
   */
  async recount(): Promise<boolean> {
    const { channel } = this;
    if (!channel.alive) return false; // RabbitMQ has it back already
    try {
      await channel.session.send({ queue: this.queue }, [this.#copy(this.attempt)]);
    } catch (error) {
      if (!channel.alive) return false;
      const { context } = this.#consumer;
      const why = context.connection.scrub((error as Error).message);
      context.log("warn", `cannot republish a redelivered message of ${this.queue} to count its attempts (${why}); running it uncounted`);
      return true;
    }
    await channel.acked(this.#message); // the copy runs: the original must not come back too
    return false;
  }

  #copy(attempt: number): Outbound {
    const { body, headers, key } = this;
    return encode({ body, headers, key, attempt }, this.#consumer.context.config.durable, this.id, this.#message.properties);
  }

  protected doDeadLetter(reason: DeadLetterReason): Promise<void> {
    const { body, key } = this;
    const headers = deadLetterHeaders(this, reason);
    const copy = encode({ body, headers, key }, true, this.id, this.#message.properties);
    const destination = { queue: this.#consumer.deadLetterQueue, deadLetter: true };
    return this.#consumer.track(this.#moveTo(destination, copy, true));
  }

  /**
   * Publishes the copy on the connection the original came on, then acks the original. Should the
   * publish fail with the channel still open, the original is requeued (it comes back redelivered,
   * its attempt counted); a failed dead letter also rejects, for the caller to report.
   */
  async #moveTo(destination: Destination, copy: Outbound, mustSucceed: boolean): Promise<void> {
    const { channel } = this;
    if (!channel.alive) return;
    try {
      await channel.session.send(destination, [copy]);
    } catch (error) {
      if (!channel.alive) return;
      channel.requeue(this.#message);
      if (mustSucceed) throw error;
      const { context } = this.#consumer;
      const why = (error as Error).message;
      context.log("warn", `retry of a message of ${this.queue} not published (${why}); requeued`);
      return;
    }
    await channel.acked(this.#message); // the copy is the message now: the original must not come back too
  }
}
