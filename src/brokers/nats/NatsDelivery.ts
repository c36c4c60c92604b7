import type { JsMsg } from "@nats-io/jetstream";
import type { DeadLetterReason, Headers } from "../contract.js";
import { deadLetterHeaders } from "../dead-letter.js";
import { SettleOnceDelivery } from "../settle-once.js";
import { attemptOf, decode } from "./message-codec.js";
import type { NatsConsumer } from "./NatsConsumer.js";

const RESOLVED = Promise.resolve();

/**
 * A message pulled from a queue's durable consumer. Its id is the stream sequence, which JetStream
 * keeps for the message's whole life in the stream (redeliveries included). Settling uses the
 * message's reply subject, so it works on any connection of the client, reconnects included:
 *
 * - extend (NatsConsumer.extend): `+WPI`, which restarts the ack wait of a message still running;
 * - ack(): `+ACK`, sent without waiting for a round trip (at least once: an ack lost with the
 *   connection means one more delivery, after ack_wait);
 * - nack({ delayMs }): `-NAK` with the delay, which JetStream keeps (durably: a worker that dies
 *   meanwhile does not shorten or lose it); the redelivery counts as the next attempt;
 * - deadLetter(): publishes a copy with the `x-wqueue-dead-*` headers to the dead-letter queue
 *   (JetStream publish, acknowledged), then `+TERM`s the original, which removes it from a
 *   work-queue stream. A crash in between leaves the copy and a redelivery, never nothing; the copy's
 *   Nats-Msg-Id (stream and sequence of the original) keeps the dead-letter stream from storing
 *   that redelivery's copy again within its dedup window.
 */
export class NatsDelivery extends SettleOnceDelivery {
  readonly id: string;
  readonly body: Uint8Array;
  readonly headers: Readonly<Headers>;
  readonly key: string | undefined;
  readonly attempt: number;
  readonly partition = undefined;
  /** Epoch ms before which the message must not run (published with delayMs), else undefined. */
  readonly notBefore: number | undefined;
  /** When it arrived here (epoch ms): a buffered one not handed out in time is given back. */
  readonly arrivedAt = Date.now();
  readonly #consumer: NatsConsumer;
  readonly #message: JsMsg;

  constructor(consumer: NatsConsumer, message: JsMsg) {
    super();
    this.#consumer = consumer;
    this.#message = message;
    const { info } = message;
    const inbound = decode(message.headers);
    this.id = String(info.streamSequence);
    this.body = message.data;
    this.headers = inbound.headers;
    this.key = inbound.key;
    this.notBefore = inbound.notBefore;
    this.attempt = attemptOf(inbound, info.deliveryCount);
  }

  get queue(): string {
    return this.#consumer.queue;
  }

  /**
   * `+WPI` (JetStream's "working"): the server restarts this delivery's ack wait. Not a settle: an
   * ack, nack or term sent after it still applies (the client only blocks replies after a final one).
   */
  working(): void {
    respond(() => this.#message.working());
  }

  /** Back to the queue at once (consumer closing, or a message it may not keep): a plain `-NAK`. */
  giveBack(delayMs = 0): void {
    respond(() => this.#message.nak(delayMs > 0 ? delayMs : undefined));
  }

  protected doAck(): Promise<void> {
    respond(() => this.#message.ack());
    this.#consumer.settled(this);
    return RESOLVED;
  }

  protected doNack(delayMs: number): Promise<void> {
    this.giveBack(delayMs);
    this.#consumer.settled(this);
    return RESOLVED;
  }

  protected doDeadLetter(reason: DeadLetterReason): Promise<void> {
    return this.#consumer.track(this, this.#deadLetter(reason));
  }

  async #deadLetter(reason: DeadLetterReason): Promise<void> {
    const { info } = this.#message;
    const headers = deadLetterHeaders(this, reason);
    headers["Nats-Msg-Id"] = `wqueue-dead:${info.stream}:${info.streamSequence}`;
    try {
      await this.#consumer.context.publish(this.#consumer.deadLetterQueue, [{ body: this.body, headers, key: this.key }]);
    } catch (error) {
      this.giveBack(); // comes back as the next attempt, to be dead-lettered again
      throw error;
    }
    respond(() => this.#message.term());
  }
}

/**
 * Sends an ack-protocol reply. Throws only when the connection is closed for good; the server then
 * gives the message back after ack_wait, as for any unacked one.
 */
function respond(send: () => void): void {
  try {
    send();
  } catch {
    // Closed connection: nothing to do; JetStream redelivers after ack_wait.
  }
}
