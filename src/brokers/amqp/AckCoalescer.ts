import type { Message } from "amqplib";

/** One turn's acks: `promise` resolves once they are sent, `synced` (made on demand) once RabbitMQ processed them. */
interface Batch {
  promise: Promise<void>;
  resolve: () => void;
  synced: Promise<void> | undefined;
}

/** The channel operations the coalescer needs. */
export interface AckTarget {
  ack(message: Message, allUpTo?: boolean): void;
  nack(message: Message, allUpTo?: boolean, requeue?: boolean): void;
  /** A round trip on the channel: RabbitMQ answers it only after every frame sent before it. */
  sync(): Promise<void>;
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
  /** This turn's acks: set while a flush is scheduled. */
  #written: Batch | undefined;

  constructor(readonly target: AckTarget) {}

  /**
   * Resolves once this turn's acks are sent (at the end of the turn). Sent is not yet on the wire:
   * amqplib hands channel frames to its socket in a later turn. See acked() for a settle that must
   * not resolve while the ack could still be lost with the process.
   */
  ack(message: Message): Promise<void> {
    this.#pending.push(message);
    if (this.#written === undefined) {
      let resolve = () => {};
      const promise = new Promise<void>((done) => {
        resolve = done;
      });
      this.#written = { promise, resolve, synced: undefined };
      setImmediate(this.flush);
    }
    return this.#written.promise;
  }

  /**
   * Acks, and resolves once RabbitMQ has processed the ack: one channel round trip after this
   * turn's acks, shared by every acked() of the turn. For a settle that moved a copy elsewhere (a
   * nack's delay queue, a dead letter, a recount): resolving earlier would let a process killed
   * right after have the original redelivered beside its copy. Resolves, not rejects, if the
   * channel closes first: RabbitMQ requeues the original then, as for any unacked message.
   */
  acked(message: Message): Promise<void> {
    this.ack(message);
    const batch = this.#written as Batch; // the one this ack just joined
    batch.synced ??= batch.promise.then(() => this.target.sync()).then(
      () => {},
      () => {},
    );
    return batch.synced;
  }

  /** basic.nack with requeue, sent at once; the tag counts as settled. */
  requeue(message: Message): void {
    this.target.nack(message, false, true);
    this.#settle(message.fields.deliveryTag);
  }

  readonly flush = (): void => {
    const written = this.#written;
    this.#written = undefined;
    const acks = this.#pending;
    this.#pending = [];
    try {
      this.#send(acks);
    } finally {
      written?.resolve(); // a closed channel throws: RabbitMQ requeues its unacked messages itself
    }
  };

  #send(acks: Message[]): void {
    if (acks.length === 0) return;
    for (const message of acks) this.#settle(message.fields.deliveryTag);
    let highestBelow: Message | undefined;
    for (const message of acks) {
      const tag = message.fields.deliveryTag;
      if (tag >= this.#floor) this.target.ack(message, false);
      else if (highestBelow === undefined || tag > highestBelow.fields.deliveryTag) highestBelow = message;
    }
    if (highestBelow !== undefined) this.target.ack(highestBelow, true);
  }

  #settle(tag: number): void {
    this.#settled.add(tag);
    while (this.#settled.delete(this.#floor)) this.#floor += 1;
  }
}
