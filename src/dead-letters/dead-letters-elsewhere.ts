import type { Broker, Consumer, DeadLetterReason, Delivery, Headers } from "../brokers/contract.js";
import { deadLetterHeaders } from "../brokers/dead-letter.js";
import { SettleOnceDelivery } from "../brokers/settle-once.js";

/**
 * A subscription whose dead letters go to another broker (`deadLetterBroker`): Kinesis or Kafka
 * records into a queue that can be browsed and replayed one by one, say. A dead letter is published
 * there, in the usual form (original body, `x-wqueue-dead-*` headers), before the message is acked
 * on its own broker: a crash in between leaves it on its own broker, to be dead-lettered again.
 */
export class DeadLettersElsewhere implements Consumer {
  /** The inner consumer's lease: the lease keeper renews through this wrapper. */
  readonly leaseMs: number | undefined;
  readonly extend?: (deliveries: readonly Delivery[]) => Promise<void>;
  readonly ready?: () => Promise<void>;
  readonly waitForMessages?: (signal: AbortSignal) => Promise<void>;
  readonly take?: (max: number) => Promise<Delivery[]>;

  constructor(
    readonly inner: Consumer,
    readonly target: Broker,
    readonly deadQueue: string,
  ) {
    this.leaseMs = inner.leaseMs;
    // Adapters renew only their own delivery objects: hand them the ones this wrapper wraps.
    if (inner.extend) {
      const extend = inner.extend.bind(inner);
      this.extend = (deliveries) => extend(deliveries.map((d) => (d instanceof RoutedDelivery ? d.inner : d)));
    }
    if (inner.ready) this.ready = inner.ready.bind(inner);
    // Idling without credit, where the inner consumer can (both or neither, as the contract says).
    if (inner.waitForMessages && inner.take) {
      this.waitForMessages = inner.waitForMessages.bind(inner);
      const take = inner.take.bind(inner);
      this.take = async (max) => this.#route(await take(max));
    }
  }

  #route(deliveries: Delivery[]): Delivery[] {
    return deliveries.map((delivery) => new RoutedDelivery(delivery, this.target, this.deadQueue));
  }

  async receive(max: number, signal: AbortSignal): Promise<Delivery[]> {
    return this.#route(await this.inner.receive(max, signal));
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

class RoutedDelivery extends SettleOnceDelivery {
  constructor(
    readonly inner: Delivery,
    readonly target: Broker,
    readonly deadQueue: string,
  ) {
    super();
  }

  get id(): string {
    return this.inner.id;
  }
  get queue(): string {
    return this.inner.queue;
  }
  get body(): Uint8Array {
    return this.inner.body;
  }
  get headers(): Readonly<Headers> {
    return this.inner.headers;
  }
  get key(): string | undefined {
    return this.inner.key;
  }
  get partition(): string | undefined {
    return this.inner.partition;
  }
  get attempt(): number {
    return this.inner.attempt;
  }

  protected doAck(): Promise<void> {
    return this.inner.ack();
  }

  protected doNack(delayMs: number): Promise<void> {
    return this.inner.nack({ delayMs });
  }

  protected async doDeadLetter(reason: DeadLetterReason): Promise<void> {
    try {
      await this.target.publish(this.deadQueue, [{ body: this.inner.body, headers: deadLetterHeaders(this.inner, reason), key: this.inner.key }]);
    } catch (error) {
      await this.inner.nack({ delayMs: 1000 }); // kept on its own broker, tried again
      throw error;
    }
    await this.inner.ack();
  }
}
