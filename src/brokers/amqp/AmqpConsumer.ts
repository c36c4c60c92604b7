import { setTimeout as sleep } from "node:timers/promises";
import type { ConsumeMessage } from "amqplib";
import { ConfigError } from "../../errors.js";
import type { Consumer, Delivery } from "../contract.js";
import { Wakeup } from "../wakeup.js";
import type { AmqpUrl } from "./amqp-url.js";
import type { AmqpConnection, AmqpEventLog } from "./AmqpConnection.js";
import { AmqpDelivery } from "./AmqpDelivery.js";
import type { AmqpSession } from "./AmqpSession.js";
import { ConsumerChannel } from "./ConsumerChannel.js";
import { consumerTimeoutLine, consumerTimeoutOf } from "./consumer-timeout.js";
import { needsRecount } from "./message-codec.js";

const RETRY_FIRST_MS = 100;
const RETRY_MAX_MS = 5000;
/** close() waits this long for nacks and dead letters in flight to be confirmed and acked. */
const SETTLE_WAIT_MS = 2000;
/** ready() waits at most this long for a first subscription (the connection may be down meanwhile). */
const READY_WAIT_MS = 10_000;

/** What a consumer and its deliveries use of their broker, and no more. */
export interface AmqpConsumerContext {
  readonly connection: AmqpConnection;
  readonly config: AmqpUrl;
  readonly log: AmqpEventLog;
  /** Called once, when the consumer has closed: the broker stops tracking it. */
  closed(consumer: AmqpConsumer): void;
}

/**
 * One queue's consumer: basic.consume on a channel of its own with prefetch = maxInFlight, from
 * creation on. RabbitMQ pushes at most `prefetch` unacked messages, which wait in `#buffer` until
 * receive() hands them out, so the buffer never holds more than the caller can run at once.
 *
 * On every new connection (./AmqpConnection.ts) the queue is declared and consumed again; a channel
 * that closes while its connection lives (a channel error, the queue deleted) is reopened with
 * backoff. Buffered deliveries of a closed channel are dropped (RabbitMQ requeued them), and a
 * pending receive just goes on waiting for the next channel's messages. A redelivered message of
 * a classic queue is replaced by a counted copy before it is buffered (AmqpDelivery.recount). A
 * queue that can never be consumed (a stream queue) stops the retries: ready() and receive()
 * reject with its ConfigError.
 */
export class AmqpConsumer implements Consumer {
  readonly #wakeup = new Wakeup();
  readonly #settling = new Set<Promise<void>>();
  readonly #unsubscribe: () => void;
  #buffer: AmqpDelivery[] = [];
  #channel: ConsumerChannel | undefined;
  #attaching: AmqpSession | undefined;
  #closing = false;
  #closed: Promise<void> | undefined;
  /** Set when the queue can never be consumed (a stream queue): receive() and ready() reject with it. */
  #refused: ConfigError | undefined;
  #firstTryOver: () => void = () => {};
  readonly #firstTry = new Promise<void>((resolve) => {
    this.#firstTryOver = resolve;
  });

  constructor(
    readonly context: AmqpConsumerContext,
    readonly queue: string,
    readonly deadLetterQueue: string,
    readonly prefetch: number,
  ) {
    this.#unsubscribe = context.connection.onSession((session) => void this.#attach(session));
  }

  async receive(max: number, signal: AbortSignal): Promise<Delivery[]> {
    // Not connected yet: connect (or join the attempt in flight), so a failure reaches the caller.
    if (!this.context.connection.connectedOnce && !this.#closing) await this.context.connection.connect();
    for (;;) {
      if (this.#refused) throw this.#refused;
      if (this.#closing) return []; // what the buffer holds goes back uncounted (close())
      if (this.#buffer.length > 0) return this.#take(max);
      if (signal.aborted) return [];
      await this.#wakeup.wait(signal);
    }
  }

  /**
   * Resolves once the first attempt to consume the queue is over, or after READY_WAIT_MS (a
   * transient failure is retried in the background); rejects with a ConfigError for a queue that
   * can never be consumed.
   */
  async ready(): Promise<void> {
    if (!this.#closing) await this.context.connection.connect();
    await withDeadline(this.#firstTry, READY_WAIT_MS);
    if (this.#refused) throw this.#refused;
  }

  /** Keeps a nack or dead letter in flight known to close(), which lets it finish first. */
  track(settling: Promise<void>): Promise<void> {
    this.#settling.add(settling);
    const forget = () => this.#settling.delete(settling);
    settling.then(forget, forget);
    return settling;
  }

  /**
   * Idempotent. Stops the consumer, gives buffered messages (never handed out) back as copies with
   * their attempt unchanged (AmqpDelivery.giveBack), then closes the channel, which makes RabbitMQ
   * requeue every message still unacked on it (handed out and unsettled, or a copy not confirmed
   * within SETTLE_WAIT_MS: those then count one attempt more).
   */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#closing = true;
      this.#firstTryOver();
      this.#unsubscribe();
      this.#wakeup.notify();
      // Buffered messages were never handed out, so never run: they go back uncounted (closing
      // the channel would count them), once RabbitMQ stopped pushing (or the copies come back here).
      await withDeadline(this.#channel?.stopConsuming() ?? Promise.resolve(), SETTLE_WAIT_MS);
      const unread = this.#buffer;
      this.#buffer = [];
      for (const delivery of unread) void this.track(delivery.giveBack());
      await withDeadline(Promise.allSettled([...this.#settling]), SETTLE_WAIT_MS);
      const channel = this.#channel;
      this.#channel = undefined;
      await channel?.close();
      this.context.closed(this);
    })();
    return this.#closed;
  }

  #take(max: number): AmqpDelivery[] {
    const count = Math.max(1, Math.floor(max));
    if (count >= this.#buffer.length) {
      const all = this.#buffer;
      this.#buffer = [];
      return all;
    }
    return this.#buffer.splice(0, count);
  }

  #onMessage(channel: ConsumerChannel, message: ConsumeMessage | null): void {
    if (message === null) {
      // RabbitMQ cancelled the consumer (the queue was deleted): reopen, which declares it again.
      this.context.log("warn", `RabbitMQ cancelled the consumer of ${this.queue}`);
      channel.session.declarer.forget(this.queue);
      void channel.close();
      return;
    }
    if (!channel.alive) return; // unacked: requeued when the channel closed
    const delivery = new AmqpDelivery(this, channel, message);
    if (needsRecount(message)) {
      // A classic queue's redelivery: a counted copy replaces it before anything runs it.
      const recounted = delivery.recount().then((handOut) => {
        if (handOut) this.#hold(delivery);
      });
      void this.track(recounted);
    } else this.#hold(delivery);
  }

  /** Buffers a delivery for receive(); while closing, for close() to give back uncounted. */
  #hold(delivery: AmqpDelivery): void {
    if (!delivery.channel.alive) return; // unacked: requeued when the channel closed
    if (this.#buffer.push(delivery) === 1) this.#wakeup.notify();
  }

  /** Opens this consumer's channel on `session`, retrying with backoff while the session lives. */
  async #attach(session: AmqpSession): Promise<void> {
    if (this.#attaching === session) return;
    this.#attaching = session;
    try {
      for (let failures = 0; !this.#closing && session.alive; failures += 1) {
        if (failures > 0) await sleep(Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** (failures - 1)));
        if (this.#closing || !session.alive) return;
        try {
          await this.#subscribe(session);
          return;
        } catch (error) {
          if (this.#closing || !session.alive) return;
          if (error instanceof ConfigError) {
            this.#refused = error; // no retry can heal it
            this.#wakeup.notify();
            return;
          }
          this.#firstTryOver();
          const why = this.context.connection.scrub((error as Error).message);
          this.context.log("warn", `cannot consume ${this.queue} (${why}); retrying`);
        }
      }
    } finally {
      this.#firstTryOver();
      if (this.#attaching === session) this.#attaching = undefined;
    }
  }

  async #subscribe(session: AmqpSession): Promise<void> {
    const channel = new ConsumerChannel(await session.model.createChannel(), session);
    channel.channel.on("error", (error: Error) => {
      if (!session.alive) return;
      const timeoutMs = consumerTimeoutOf(error);
      if (timeoutMs !== undefined) this.context.log("error", consumerTimeoutLine(this.queue, timeoutMs));
      else this.context.log("warn", `channel of ${this.queue}: ${error.message}`);
    });
    channel.channel.on("close", () => this.#channelClosed(channel));
    try {
      channel.prefetch = this.prefetch;
      await channel.channel.prefetch(this.prefetch);
      await session.declarer.queue(this.queue);
      const { consumerTag } = await channel.channel.consume(this.queue, (message) => this.#onMessage(channel, message));
      channel.consumerTag = consumerTag;
    } catch (error) {
      if ((error as { code?: number }).code === 404) session.declarer.forget(this.queue); // deleted since
      await channel.close();
      throw error;
    }
    if (this.#closing) await channel.close();
    else this.#channel = channel;
  }

  #channelClosed(channel: ConsumerChannel): void {
    channel.alive = false;
    if (this.#buffer.some((delivery) => delivery.channel === channel)) {
      this.#buffer = this.#buffer.filter((delivery) => delivery.channel !== channel);
    }
    if (this.#channel !== channel) return; // closed on purpose, or never in use
    this.#channel = undefined;
    // A lost connection closes its channels first; the next session re-attaches. Otherwise, reopen.
    setTimeout(() => {
      if (channel.session.alive && !this.#closing && this.#channel === undefined) void this.#attach(channel.session);
    }, RETRY_FIRST_MS).unref();
  }
}

async function withDeadline(work: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([work, new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}
