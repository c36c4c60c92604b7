import type { Message } from "@aws-sdk/client-sqs";
import type { DeadLetterReason, Headers } from "../contract.js";
import { deadLetterHeaders } from "../dead-letter.js";
import { SettleOnceDelivery } from "../settle-once.js";
import { decodeMessage } from "./message-codec.js";
import type { QueueInfo } from "./QueueDirectory.js";
import type { SqsConsumer } from "./SqsConsumer.js";
import { MAX_VISIBILITY_SECONDS } from "./sqs-url.js";
import type { Held } from "./VisibilityKeeper.js";

/**
 * One received SQS message, held under its receipt handle until settled (and kept hidden meanwhile
 * by the consumer's ./VisibilityKeeper.ts).
 *
 * - ack(): DeleteMessage, coalesced with the other acks of the turn (./BatchCalls.ts).
 * - nack({ delayMs }): ChangeMessageVisibility to the delay, rounded up to whole seconds and capped
 *   at 12 hours (SQS's limits): the broker keeps the delay, so it survives a worker crash, and the
 *   next receive counts as the next attempt (ApproximateReceiveCount). On a FIFO queue the rest of
 *   the message's group waits for it meanwhile, which keeps the group's order.
 * - deadLetter(): SendMessage of the body with the x-wqueue-dead-* headers to the consumer's
 *   dead-letter queue, then DeleteMessage. If the send fails, the message is made visible again
 *   and the error goes to the caller: it comes back, nothing is lost.
 *
 * A settle that SQS refuses (the receipt expired and the message went to another consumer) rejects:
 * the message is delivered again, which is what at-least-once promises.
 */
export class SqsDelivery extends SettleOnceDelivery implements Held {
  readonly id: string;
  readonly body: Uint8Array;
  readonly headers: Readonly<Headers>;
  readonly key: string | undefined;
  readonly partition = undefined;
  readonly attempt: number;
  readonly url: string;
  readonly receipt: string;
  hiddenUntil: number;
  heartbeat: Promise<void> | undefined;
  readonly #consumer: SqsConsumer;

  constructor(consumer: SqsConsumer, queue: QueueInfo, message: Message, receivedAt: number) {
    super();
    this.#consumer = consumer;
    const decoded = decodeMessage(message, queue.fifo);
    this.id = message.MessageId ?? "";
    this.body = decoded.body;
    this.headers = decoded.headers;
    this.key = decoded.key;
    this.attempt = decoded.attempt;
    this.url = queue.url;
    this.receipt = message.ReceiptHandle ?? "";
    this.hiddenUntil = receivedAt + consumer.context.config.visibilitySeconds * 1000;
  }

  get queue(): string {
    return this.#consumer.queue;
  }

  protected async doAck(): Promise<void> {
    await this.#consumer.release(this);
    await this.#consumer.context.calls.delete(this.url, this.receipt);
  }

  protected async doNack(delayMs: number): Promise<void> {
    await this.#consumer.release(this);
    const seconds = Math.min(MAX_VISIBILITY_SECONDS, Math.ceil(delayMs / 1000));
    await this.#consumer.context.calls.changeVisibility(this.url, this.receipt, seconds);
  }

  protected async doDeadLetter(reason: DeadLetterReason): Promise<void> {
    const { context } = this.#consumer;
    const copy = { body: this.body, headers: deadLetterHeaders(this, reason), key: this.key };
    try {
      await context.publish(this.#consumer.deadLetterQueue, [copy]);
    } catch (error) {
      await this.#consumer.release(this);
      await context.calls.changeVisibility(this.url, this.receipt, 0).catch(() => {});
      throw error;
    }
    await this.#consumer.release(this);
    await context.calls.delete(this.url, this.receipt);
  }
}
