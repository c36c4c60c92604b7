import { filterQueues } from "../queue-pattern.js";
import type {
  Broker,
  BrokerFeatures,
  BrowsedMessage,
  Consumer,
  ConsumerOptions,
  DeadLetterReason,
  Delivery,
  Headers,
  OutgoingMessage,
} from "../contract.js";
import { BrokerLifecycle } from "../BrokerLifecycle.js";
import { deadLetterHeaders } from "../dead-letter.js";
import { SettleOnceDelivery } from "../settle-once.js";
import { Wakeup } from "../wakeup.js";

/**
 * In-process broker (`memory://NAME`) for users' unit tests of their handlers and for this
 * project's own tests. At-least-once like a real broker: a received message stays in flight until
 * settled, and a closed consumer gives its unsettled messages back. Brokers opened with the same
 * URL in one process share their queues, so a test can publish and a worker can consume.
 */
interface StoredMessage {
  id: string;
  body: Uint8Array;
  headers: Headers;
  key: string | undefined;
  /** Deliveries so far. */
  attempt: number;
  /** Higher first; 0 for most messages. */
  priority: number;
}

class MemoryQueue {
  readonly ready: StoredMessage[] = [];
  readonly wakeup = new Wakeup();
  readonly timers = new Set<NodeJS.Timeout>();

  push(message: StoredMessage, delayMs = 0): void {
    if (delayMs <= 0) {
      this.#enqueue(message);
      this.wakeup.notify();
      return;
    }
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.push(message);
    }, delayMs);
    this.timers.add(timer);
  }

  /** At the tail of its priority: after every message of the same or a higher one. */
  #enqueue(message: StoredMessage): void {
    const ready = this.ready;
    if (message.priority === 0 || (ready.at(-1)?.priority ?? 0) >= message.priority) {
      ready.push(message);
      return;
    }
    const before = ready.findIndex((waiting) => waiting.priority < message.priority);
    ready.splice(before, 0, message);
  }

  /** Puts messages back at the head, oldest first, so order survives a consumer's close. */
  returnToHead(messages: StoredMessage[]): void {
    this.ready.unshift(...messages);
    if (messages.length > 0) this.wakeup.notify();
  }
}

const stores = new Map<string, Map<string, MemoryQueue>>();

export class MemoryBroker implements Broker {
  readonly kind = "memory";
  readonly features: BrokerFeatures = {
    delivery: "at-least-once",
    headers: true,
    durableDelay: false,
    keepsAttempt: true,
    durable: false,
    ordered: true,
    priorities: true,
  };
  readonly #queues: Map<string, MemoryQueue>;
  readonly #lifecycle: BrokerLifecycle<MemoryConsumer>;
  readonly #consumerContext: MemoryConsumerContext;
  #nextId = 0;

  constructor(readonly url = "memory://default") {
    this.#lifecycle = new BrokerLifecycle(this.kind, url);
    this.#consumerContext = {
      queue: (name) => this.queue(name),
      publish: (queue, messages) => this.publish(queue, messages),
      closed: (consumer) => this.#lifecycle.forget(consumer),
    };
    const name = new URL(url).host || "default";
    let queues = stores.get(name);
    if (!queues) {
      queues = new Map();
      stores.set(name, queues);
    }
    this.#queues = queues;
  }

  /** Forgets every queue of every memory broker in this process (between tests). */
  static reset(): void {
    for (const queues of stores.values()) {
      for (const queue of queues.values()) for (const timer of queue.timers) clearTimeout(timer);
    }
    stores.clear();
  }

  queue(name: string): MemoryQueue {
    let queue = this.#queues.get(name);
    if (!queue) {
      queue = new MemoryQueue();
      this.#queues.set(name, queue);
    }
    return queue;
  }

  /** Messages waiting in a queue (not in flight, not delayed): for tests and inspection. */
  waiting(name: string): BrowsedMessage[] {
    return this.queue(name).ready.map(({ id, body, headers, key }) => ({ id, body, headers, key }));
  }

  async backlog(queue: string): Promise<number> {
    return this.queue(queue).ready.length;
  }

  /** Queues of this store that `pattern` matches (../queue-pattern.ts): each one published to, or consumed. */
  async listQueues(pattern: string): Promise<string[]> {
    return filterQueues(pattern, this.#queues.keys());
  }

  async removeWaiting(queue: string, id: string): Promise<boolean> {
    const ready = this.queue(queue).ready;
    const index = ready.findIndex((message) => message.id === id);
    if (index !== -1) ready.splice(index, 1);
    return index !== -1;
  }

  async browse(queue: string, limit: number): Promise<BrowsedMessage[]> {
    return this.waiting(queue).slice(0, limit);
  }

  async connect(): Promise<void> {}

  consumer(queue: string, options: ConsumerOptions = {}): Consumer {
    const deadLetterQueue = BrokerLifecycle.deadLetterQueue(queue, options);
    return this.#lifecycle.track(new MemoryConsumer(this.#consumerContext, queue, deadLetterQueue));
  }

  async publish(queue: string, messages: OutgoingMessage[]): Promise<void> {
    this.#lifecycle.assertOpen();
    const target = this.queue(queue);
    for (const message of messages) {
      target.push(
        {
          id: String(++this.#nextId),
          body: message.body,
          headers: { ...message.headers },
          key: message.key,
          attempt: (message.attempt ?? 1) - 1,
          priority: message.priority ?? 0,
        },
        message.delayMs,
      );
    }
  }

  close(): Promise<void> {
    return this.#lifecycle.close(() => {});
  }
}

/** What a consumer and its deliveries use of their broker, and no more. */
interface MemoryConsumerContext {
  queue(name: string): MemoryQueue;
  publish(queue: string, messages: OutgoingMessage[]): Promise<void>;
  /** Called once, when the consumer has closed: the broker stops tracking it. */
  closed(consumer: MemoryConsumer): void;
}

class MemoryConsumer implements Consumer {
  readonly #inFlight = new Set<MemoryDelivery>();
  #closed = false;

  constructor(
    readonly context: MemoryConsumerContext,
    readonly queueName: string,
    readonly deadLetterQueue: string,
  ) {}

  async receive(max: number, signal: AbortSignal): Promise<Delivery[]> {
    while (!signal.aborted && !this.#closed) {
      // Look and start waiting in one synchronous step: a push in between would wake nobody.
      const taken = this.#takeNow(max);
      if (taken.length > 0) return taken;
      await this.context.queue(this.queueName).wakeup.wait(signal);
    }
    return [];
  }

  async waitForMessages(signal: AbortSignal): Promise<void> {
    const queue = this.context.queue(this.queueName);
    if (!signal.aborted && !this.#closed && queue.ready.length === 0) await queue.wakeup.wait(signal);
  }

  async take(max: number): Promise<Delivery[]> {
    return this.#takeNow(max);
  }

  #takeNow(max: number): Delivery[] {
    const queue = this.context.queue(this.queueName);
    if (this.#closed || queue.ready.length === 0) return [];
    return queue.ready.splice(0, Math.max(1, max)).map((stored) => {
      stored.attempt += 1;
      const delivery = new MemoryDelivery(this, stored);
      this.#inFlight.add(delivery);
      return delivery;
    });
  }

  settle(delivery: MemoryDelivery): void {
    this.#inFlight.delete(delivery);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.context.closed(this);
    this.context.queue(this.queueName).wakeup.notify();
    const unsettled = [...this.#inFlight].filter((delivery) => !delivery.settled).map((d) => d.stored);
    this.#inFlight.clear();
    unsettled.sort((a, b) => Number(a.id) - Number(b.id));
    this.context.queue(this.queueName).returnToHead(unsettled);
  }
}

class MemoryDelivery extends SettleOnceDelivery {
  readonly id: string;
  readonly queue: string;
  readonly body: Uint8Array;
  readonly headers: Readonly<Headers>;
  readonly key: string | undefined;
  readonly partition = undefined;
  readonly attempt: number;

  constructor(
    readonly consumer: MemoryConsumer,
    readonly stored: StoredMessage,
  ) {
    super();
    this.id = stored.id;
    this.queue = consumer.queueName;
    this.body = stored.body;
    this.headers = stored.headers;
    this.key = stored.key;
    this.attempt = stored.attempt;
  }

  protected async doAck(): Promise<void> {
    this.consumer.settle(this);
  }

  protected async doNack(delayMs: number, keepAttempt: boolean): Promise<void> {
    this.consumer.settle(this);
    if (keepAttempt) this.stored.attempt -= 1;
    this.consumer.context.queue(this.queue).push(this.stored, delayMs);
  }

  protected async doDeadLetter(reason: DeadLetterReason): Promise<void> {
    this.consumer.settle(this);
    await this.consumer.context.publish(this.consumer.deadLetterQueue, [
      { body: this.body, headers: deadLetterHeaders(this, reason), key: this.key },
    ]);
  }
}
