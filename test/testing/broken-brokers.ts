import type { Broker, BrokerFeatures, Consumer, ConsumerOptions, Delivery, OutgoingMessage } from "../../src/brokers/contract.js";
import { MemoryBroker } from "../../src/brokers/memory/MemoryBroker.js";
import { SqliteBroker } from "../../src/brokers/sqlite/SqliteBroker.js";

/**
 * Deliberately broken adapters, each an honest one (memory, SQLite) with one property broken, for
 * test/testing/conformance-breaks.test.ts: the conformance case for that property must reject.
 * The SQLite ones are opened by the suite's child process too (the exports open... take the URL).
 */

/** An honest broker with some of its features, consumers or deliveries replaced. */
export class AlteredBroker implements Broker {
  readonly features: BrokerFeatures;
  /** Queues this broker touched, for a "restart" that wipes them. */
  readonly queues = new Set<string>();

  constructor(
    readonly base: Broker,
    features: Partial<BrokerFeatures> = {},
    readonly alterConsumer: (consumer: Consumer, queue: string) => Consumer = (consumer) => consumer,
  ) {
    this.features = { ...base.features, ...features };
  }
  get kind() {
    return `broken-${this.base.kind}`;
  }
  get url() {
    return this.base.url;
  }
  connect() {
    return this.base.connect();
  }
  consumer(queue: string, options?: ConsumerOptions): Consumer {
    this.queues.add(queue);
    return this.alterConsumer(this.base.consumer(queue, options), queue);
  }
  publish(queue: string, messages: OutgoingMessage[]) {
    this.queues.add(queue);
    return this.base.publish(queue, messages);
  }
  close() {
    return this.base.close();
  }
}

/** A consumer whose receive is replaced; close (and the rest) go to the honest one. */
function withReceive(consumer: Consumer, receive: Consumer["receive"], close: Consumer["close"] = () => consumer.close()): Consumer {
  return { receive, close, leaseMs: consumer.leaseMs };
}

/** A delivery like `delivery` with some fields or settles replaced. */
function alteredDelivery(delivery: Delivery, changes: Partial<Delivery>): Delivery {
  return {
    id: delivery.id,
    queue: delivery.queue,
    body: delivery.body,
    headers: delivery.headers,
    key: delivery.key,
    partition: delivery.partition,
    attempt: delivery.attempt,
    ack: () => delivery.ack(),
    nack: (options) => delivery.nack(options),
    deadLetter: (reason) => delivery.deadLetter(reason),
    ...changes,
  };
}

/** receive(max) hands out whatever is waiting, however small max is. */
export const ignoresMax = (url: string) =>
  new AlteredBroker(new MemoryBroker(url), {}, (consumer) => withReceive(consumer, (_max, signal) => consumer.receive(1000, signal)));

/** receive(max) returns at most max, but the consumer takes (prefetches) every waiting message into its own buffer. */
export const hoards = (url: string) =>
  new AlteredBroker(new MemoryBroker(url), {}, (consumer) => {
    const buffer: Delivery[] = [];
    return withReceive(consumer, async (max, signal) => {
      if (buffer.length === 0) buffer.push(...(await consumer.receive(1000, signal)));
      return buffer.splice(0, max);
    });
  });

/** The first consumer of a queue gets every message; the others wait in vain while it lives. */
export const firstConsumerTakesAll = (url: string) => {
  const owners = new Map<string, Consumer>();
  return () =>
    new AlteredBroker(new MemoryBroker(url), {}, (consumer, queue) => {
      const sticky: Consumer = withReceive(
        consumer,
        async (max, signal) => {
          if (!owners.has(queue)) owners.set(queue, sticky);
          if (owners.get(queue) === sticky) return consumer.receive(max, signal);
          await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
          return [];
        },
        async () => {
          if (owners.get(queue) === sticky) owners.delete(queue);
          await consumer.close();
        },
      );
      return sticky;
    });
};

/** close() acks what its consumer still holds, instead of giving it back. */
export const losesUnsettledOnClose = (url: string) =>
  new AlteredBroker(new MemoryBroker(url), {}, (consumer) => {
    const received: Delivery[] = [];
    return withReceive(
      consumer,
      async (max, signal) => {
        const got = await consumer.receive(max, signal);
        received.push(...got);
        return got;
      },
      async () => {
        await Promise.all(received.map((delivery) => delivery.ack()));
        await consumer.close();
      },
    );
  });

/** Declares headers but delivers none (nor the key, nor the published attempt). */
export const dropsHeaders = (url: string) =>
  new AlteredBroker(new MemoryBroker(url), { headers: true }, (consumer) =>
    withReceive(consumer, async (max, signal) =>
      (await consumer.receive(max, signal)).map((delivery) => alteredDelivery(delivery, { headers: {}, key: undefined, attempt: 1 })),
    ),
  );

/** Declares partitions but its deliveries carry none. */
export const claimsPartitions = (url: string) => new AlteredBroker(new MemoryBroker(url), { partitioned: true });

/** Declares order but hands each batch out backwards. */
export const reversesBatches = (url: string) =>
  new AlteredBroker(new MemoryBroker(url), { ordered: true }, (consumer) =>
    withReceive(consumer, async (max, signal) => (await consumer.receive(max, signal)).reverse()),
  );

/** Declares itself durable; `restart` (the suite's restartBroker) loses every waiting message, as a server without a disk would. */
export const claimsDurability = (url: string) => {
  const opened: AlteredBroker[] = [];
  return {
    open: () => {
      const broker = new AlteredBroker(new MemoryBroker(url), { durable: true });
      opened.push(broker);
      return broker;
    },
    restart: async () => {
      for (const broker of opened) for (const queue of broker.queues) (broker.base as MemoryBroker).queue(queue).ready.splice(0);
    },
  };
};

/** Declares at-least-once but acks on receive: what a killed consumer held is gone. */
export const openAckOnReceive = (url: string) =>
  new AlteredBroker(new SqliteBroker(url), { delivery: "at-least-once" }, (consumer) =>
    withReceive(consumer, async (max, signal) => {
      const got = await consumer.receive(max, signal);
      await Promise.all(got.map((delivery) => delivery.ack()));
      return got;
    }),
  );

/** Declares durableDelay but keeps a nack's delay in a timer of its own process. */
export const openInProcessDelay = (url: string) =>
  new AlteredBroker(new SqliteBroker(url), { durableDelay: true }, (consumer) =>
    withReceive(consumer, async (max, signal) =>
      (await consumer.receive(max, signal)).map((delivery) =>
        alteredDelivery(delivery, {
          nack: async (options) => {
            setTimeout(() => void delivery.nack(), options?.delayMs ?? 0);
          },
        }),
      ),
    ),
  );

/**
 * Hands a message out and at once makes it visible to every other consumer again (no lease held);
 * the consumer that has it does not take it a second time.
 */
export const openLeaseless = (url: string) =>
  new AlteredBroker(new SqliteBroker(url), {}, (consumer) => {
    const taken = new Set<string>();
    return withReceive(consumer, async (max, signal) => {
      const got = (await consumer.receive(max, signal)).filter((delivery) => !taken.has(delivery.id));
      for (const delivery of got) taken.add(delivery.id);
      await Promise.all(got.map((delivery) => delivery.nack()));
      return got;
    });
  });
