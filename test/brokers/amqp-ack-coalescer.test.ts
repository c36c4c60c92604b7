import type { Message } from "amqplib";
import { describe, expect, it } from "vitest";
import { AckCoalescer, type AckTarget } from "../../src/brokers/amqp/AckCoalescer.js";

/**
 * A channel as RabbitMQ's rabbit_channel:collect_acks sees it: unacked tags in delivery order; a
 * single ack or nack must name an unacked tag, a multiple one acks every unacked tag up to the one
 * it names, which must be unacked too; anything else is PRECONDITION_FAILED.
 */
class FakeChannel implements AckTarget {
  readonly unacked: number[] = [];
  readonly frames: string[] = [];
  readonly acked: number[] = [];
  readonly requeued: number[] = [];

  delivered = 0;

  /** Tags are 1, 2, 3, ... per channel, as RabbitMQ numbers them. */
  deliver(count: number): Message[] {
    return Array.from({ length: count }, () => {
      this.delivered += 1;
      this.unacked.push(this.delivered);
      return { fields: { deliveryTag: this.delivered } } as unknown as Message;
    });
  }

  ack(message: Message, allUpTo = false): void {
    this.frames.push(`ack ${message.fields.deliveryTag}${allUpTo ? " multiple" : ""}`);
    this.acked.push(...this.#collect(message.fields.deliveryTag, allUpTo));
  }

  nack(message: Message, allUpTo = false): void {
    this.frames.push(`nack ${message.fields.deliveryTag}`);
    this.requeued.push(...this.#collect(message.fields.deliveryTag, allUpTo));
  }

  /** The round trip: recorded among the frames, in order; answered when the test says. */
  sync(): Promise<void> {
    this.frames.push("sync");
    return new Promise((resolve) => {
      this.answerSync = resolve;
    });
  }

  answerSync: (() => void) | undefined;

  #collect(tag: number, multiple: boolean): number[] {
    const at = this.unacked.indexOf(tag);
    if (at === -1) throw new Error(`PRECONDITION_FAILED - unknown delivery tag ${tag}`);
    if (!multiple) return this.unacked.splice(at, 1);
    return this.unacked.splice(0, at + 1);
  }
}

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

describe("amqp ack coalescer", () => {
  it("acked() resolves only after a round trip sent after the turn's acks, one for all of the turn", async () => {
    const channel = new FakeChannel();
    const acks = new AckCoalescer(channel);
    const [first, second] = channel.deliver(2) as [Message, Message];
    let settled = 0;
    const both = [acks.acked(first), acks.acked(second)].map((done) => done.then(() => (settled += 1)));
    await nextTurn();
    await nextTurn();
    expect(channel.frames).toEqual(["ack 2 multiple", "sync"]);
    expect(settled).toBe(0); // RabbitMQ has not answered: the acks could still be lost with the process
    channel.answerSync?.();
    await Promise.all(both);
    expect(settled).toBe(2);
    // A later turn's acked() gets a round trip of its own, after its own ack.
    const [third] = channel.deliver(1) as [Message];
    const later = acks.acked(third);
    await nextTurn();
    await nextTurn();
    expect(channel.frames).toEqual(["ack 2 multiple", "sync", "ack 3 multiple", "sync"]);
    channel.answerSync?.();
    await later;
  });

  it("acks a batch finished in order with one multiple ack at the end of the turn", async () => {
    const channel = new FakeChannel();
    const acks = new AckCoalescer(channel);
    for (const message of channel.deliver(100)) acks.ack(message);
    expect(channel.frames).toEqual([]);
    await nextTurn();
    expect(channel.frames).toEqual(["ack 100 multiple"]);
    expect(channel.unacked).toEqual([]);
  });

  it("never acks past a message still running (out-of-order completion)", async () => {
    const channel = new FakeChannel();
    const acks = new AckCoalescer(channel);
    const [m1, m2, m3, m4, m5] = channel.deliver(5) as [Message, Message, Message, Message, Message];
    acks.ack(m2);
    acks.ack(m3);
    await nextTurn();
    expect(channel.frames).toEqual(["ack 2", "ack 3"]);
    expect(channel.unacked).toEqual([1, 4, 5]);
    acks.ack(m1);
    acks.ack(m5);
    await nextTurn();
    expect(channel.unacked).toEqual([4]);
    acks.ack(m4);
    acks.flush();
    expect(channel.unacked).toEqual([]);
    expect(channel.acked.sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5]);
  });

  it("counts a requeued message as settled without acking it", async () => {
    const channel = new FakeChannel();
    const acks = new AckCoalescer(channel);
    const [m1, m2, m3] = channel.deliver(3) as [Message, Message, Message];
    acks.requeue(m2);
    acks.ack(m1);
    acks.ack(m3);
    await nextTurn();
    expect(channel.frames).toEqual(["nack 2", "ack 3 multiple"]);
    expect(channel.requeued).toEqual([2]);
    expect(channel.acked.sort()).toEqual([1, 3]);
  });

  it("stays within RabbitMQ's rules for any completion order (randomised)", async () => {
    for (let run = 0; run < 200; run += 1) {
      const channel = new FakeChannel();
      const acks = new AckCoalescer(channel);
      const running = channel.deliver(1 + Math.floor(Math.random() * 40));
      let requeued = 0;
      while (running.length > 0) {
        const finishing = 1 + Math.floor(Math.random() * running.length);
        for (let i = 0; i < finishing; i += 1) {
          const [message] = running.splice(Math.floor(Math.random() * running.length), 1) as [Message];
          if (Math.random() < 0.1) {
            acks.requeue(message);
            requeued += 1;
          } else acks.ack(message);
        }
        if (Math.random() < 0.3) running.push(...channel.deliver(Math.floor(Math.random() * 5)));
        await nextTurn();
      }
      expect(channel.unacked).toEqual([]);
      expect(channel.requeued.length).toBe(requeued);
      expect(channel.acked.length + channel.requeued.length).toBe(channel.delivered);
    }
  });
});
