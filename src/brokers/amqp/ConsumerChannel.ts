import type { Channel, ConsumeMessage, Message } from "amqplib";
import { AckCoalescer } from "./AckCoalescer.js";
import type { AmqpSession } from "./AmqpSession.js";

const CLOSE_DEADLINE_MS = 2000;

/**
 * One consumer's channel on one connection. Every delivery keeps the channel it came on: delivery
 * tags mean something only there, so once that channel closed (close(), a channel error, a lost
 * connection) acking or requeueing its deliveries does nothing. RabbitMQ has already put them back
 * in the queue, and hands them out again marked redelivered; acking them on a newer channel would
 * ack some other message, or fail the channel with an unknown delivery tag.
 */
export class ConsumerChannel {
  alive = true;
  /** Set once basic.consume succeeded. */
  consumerTag: string | undefined;
  readonly #acks: AckCoalescer;

  constructor(
    readonly channel: Channel,
    readonly session: AmqpSession,
  ) {
    this.#acks = new AckCoalescer({
      ack: (message: Message, allUpTo?: boolean) => this.#send(() => channel.ack(message, allUpTo)),
      nack: (message: Message, allUpTo?: boolean, requeue?: boolean) =>
        this.#send(() => channel.nack(message, allUpTo, requeue)),
      // basic.qos with the prefetch already set: a harmless RPC that RabbitMQ answers in order.
      sync: async () => {
        if (this.alive) await channel.prefetch(this.prefetch);
      },
    });
  }

  /** The prefetch this channel consumes with (set before basic.consume); repeated by sync(). */
  prefetch = 0;

  /** Acks, and resolves once RabbitMQ has processed the ack (./AckCoalescer.ts acked()). */
  acked(message: ConsumeMessage): Promise<void> {
    return this.alive ? this.#acks.acked(message) : Promise.resolve();
  }

  /** Acks go out coalesced at the end of this turn of the event loop (./AckCoalescer.ts). */
  ack(message: ConsumeMessage): void {
    if (this.alive) void this.#acks.ack(message);
  }

  /** Back to its place in the queue, marked redelivered (so the attempt still counts). */
  requeue(message: ConsumeMessage): void {
    if (this.alive) this.#acks.requeue(message);
  }

  /** basic.cancel: RabbitMQ pushes nothing more; what it pushed stays unacked on the channel. */
  async stopConsuming(): Promise<void> {
    if (!this.alive || this.consumerTag === undefined) return;
    await this.channel.cancel(this.consumerTag).catch(() => {}); // a closed channel requeues all anyway
  }

  /**
   * Sends the acks of this turn, then closes the channel; RabbitMQ requeues every message still
   * unacked on it. Gives up waiting for the server's close-ok after CLOSE_DEADLINE_MS (a half-open
   * connection never sends it).
   */
  async close(): Promise<void> {
    if (!this.alive) return;
    this.#acks.flush();
    this.alive = false;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, CLOSE_DEADLINE_MS);
    });
    await Promise.race([this.channel.close().catch(() => {}), deadline]);
    clearTimeout(timer);
  }

  #send(operation: () => void): void {
    if (!this.alive) return;
    try {
      operation();
    } catch {
      // Closing right now: the broker requeues the message, as for any unacked one.
    }
  }
}
