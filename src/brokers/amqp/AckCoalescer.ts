import type { Message } from "amqplib";

/** The two channel operations the coalescer needs (an amqplib Channel has both). */
export interface AckTarget {
  ack(message: Message, allUpTo?: boolean): void;
  nack(message: Message, allUpTo?: boolean, requeue?: boolean): void;
}

/**
 * Coalesces one channel's acks, safely with out-of-order completion. Delivery tags on a consumer's
 * channel are 1, 2, 3, ... in delivery order. `#floor` is the lowest tag not yet settled (acked or
 * requeued); every tag below it is settled. Acks wait for the end of the current turn of the event
 * loop, then go out as ONE `basic.ack multiple=true` for those below the floor, which is safe because
 * nothing unsettled lies below it, plus single acks for those above it (finished out of order).
 * A worker that finishes a batch of 100 in order sends one ack frame instead of 100.
 *
 * The multiple ack names a tag being acked now (never one already acked or requeued), so RabbitMQ
 * always knows it. flush() must run before the channel closes, or acks of that turn would be lost
 * (harmlessly: the broker would redeliver those messages).
 */
export class AckCoalescer {
  #floor = 1;
  /** Settled tags above the floor. */
  readonly #settled = new Set<number>();
  #pending: Message[] = [];
  #scheduled = false;

  constructor(readonly target: AckTarget) {}

  ack(message: Message): void {
    this.#pending.push(message);
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.flush);
    }
  }

  /** basic.nack with requeue, sent at once; the tag counts as settled. */
  requeue(message: Message): void {
    this.target.nack(message, false, true);
    this.#settle(message.fields.deliveryTag);
  }

  readonly flush = (): void => {
    this.#scheduled = false;
    const acks = this.#pending;
    if (acks.length === 0) return;
    this.#pending = [];
    for (const message of acks) this.#settle(message.fields.deliveryTag);
    let highestBelow: Message | undefined;
    for (const message of acks) {
      const tag = message.fields.deliveryTag;
      if (tag >= this.#floor) this.target.ack(message, false);
      else if (highestBelow === undefined || tag > highestBelow.fields.deliveryTag) highestBelow = message;
    }
    if (highestBelow !== undefined) this.target.ack(highestBelow, true);
  };

  #settle(tag: number): void {
    this.#settled.add(tag);
    while (this.#settled.delete(this.#floor)) this.#floor += 1;
  }
}
