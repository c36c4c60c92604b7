import type { ChannelModel } from "amqplib";
import type { AmqpUrl } from "./amqp-url.js";
import type { AmqpEventLog } from "./AmqpConnection.js";
import { ConfirmPublisher, UnroutableError } from "./ConfirmPublisher.js";
import { delayBucket } from "./delay-buckets.js";
import type { Outbound } from "./message-codec.js";
import { QueueDeclarer } from "./QueueDeclarer.js";

/** Where messages go: a queue (after `delayMs` through its delay queue), or a dead-letter queue. */
export interface Destination {
  queue: string;
  delayMs?: number;
  deadLetter?: boolean;
}

/**
 * What lives and dies with one AMQP connection: its confirm channel for publishing and the queues
 * declared on it. `alive` turns false when the connection closes, and a dead session is never used
 * again: a delivery received on it can no longer be acked (RabbitMQ gives it back by itself), and
 * the queues are declared afresh on the next connection (a restarted broker may have lost them).
 */
export class AmqpSession {
  alive = true;
  readonly publisher: ConfirmPublisher;
  readonly declarer: QueueDeclarer;

  constructor(
    readonly model: ChannelModel,
    config: AmqpUrl,
    log: AmqpEventLog,
  ) {
    this.publisher = new ConfirmPublisher(model);
    this.declarer = new QueueDeclarer(model, config, log);
  }

  /** Declares the destination (once per connection), then publishes and awaits the confirms. */
  async send(destination: Destination, batch: readonly Outbound[]): Promise<void> {
    const name = await this.#declare(destination);
    try {
      await this.publisher.send(name, batch);
    } catch (error) {
      if (error instanceof UnroutableError) this.declarer.forget(name); // deleted since: declare again
      throw error;
    }
  }

  async #declare({ queue, delayMs, deadLetter }: Destination): Promise<string> {
    if (deadLetter) {
      await this.declarer.deadLetterQueue(queue);
      return queue;
    }
    if (delayMs !== undefined && delayMs > 0) return this.declarer.delayQueue(queue, delayBucket(delayMs));
    await this.declarer.queue(queue);
    return queue;
  }
}
