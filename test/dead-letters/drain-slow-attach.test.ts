import { describe, expect, it } from "vitest";
import type { Broker, Consumer, ConsumerOptions } from "../../src/brokers/contract.js";
import { MemoryBroker } from "../../src/brokers/memory/MemoryBroker.js";
import { purgeDeadLetters, QUIET_MS, replayDeadLetters } from "../../src/dead-letters/dead-letters.js";

/**
 * A broker whose consumers attach slowly, as a Kafka consumer joins its group or a Kinesis
 * consumer picks up its shard leases: a receive hands nothing out until the consumer has been
 * waiting `attachMs` (longer than the drain's quiet time), then behaves like the memory broker's.
 * A drain that took "nothing came for QUIET_MS" for "the queue is empty" reports 0 here.
 */
function slowToAttach(inner: Broker, attachMs: number): Broker & { consumersOpened: number } {
  const wrapper = {
    kind: inner.kind,
    url: inner.url,
    features: inner.features,
    consumersOpened: 0,
    connect: () => inner.connect(),
    publish: (queue: string, messages: Parameters<Broker["publish"]>[1]) => inner.publish(queue, messages),
    browse: (queue: string, limit: number) => inner.browse?.(queue, limit) ?? Promise.resolve([]),
    backlog: (queue: string) => inner.backlog?.(queue) ?? Promise.resolve(0),
    close: () => inner.close(),
    consumer(queue: string, options?: ConsumerOptions): Consumer {
      wrapper.consumersOpened += 1;
      const real = inner.consumer(queue, options);
      let attached: Promise<void> | undefined;
      return {
        async receive(max, signal) {
          attached ??= new Promise((resolve) => setTimeout(resolve, attachMs));
          const aborted = new Promise<"aborted">((resolve) => signal.addEventListener("abort", () => resolve("aborted"), { once: true }));
          if (signal.aborted || (await Promise.race([attached, aborted])) === "aborted") return [];
          return real.receive(max, signal);
        },
        close: () => real.close(),
      };
    },
  };
  return wrapper;
}

async function deadLetters(broker: Broker, queue: string, count: number) {
  await broker.publish(queue, Array.from({ length: count }, (_, i) => ({ body: Buffer.from(`m${i}`) })));
  const consumer = broker.consumer(queue);
  for (const delivery of await consumer.receive(count, AbortSignal.timeout(5000))) await delivery.deadLetter({ reason: "handler-failed" });
  await consumer.close();
}

describe("dead-letter drain on a broker whose consumer attaches slowly", () => {
  it("replay waits for the letters it counted instead of stopping after the quiet time", async () => {
    const memory = new MemoryBroker("memory://drain-slow-attach");
    await deadLetters(memory, "orders", 2);
    const broker = slowToAttach(memory, QUIET_MS * 3);
    expect(await replayDeadLetters(broker, "orders.dead", { limit: 100 })).toBe(2);
    expect(await memory.backlog("orders")).toBe(2);
    expect(await memory.backlog("orders.dead")).toBe(0);
    await memory.close();
  });

  it("purge does the same", async () => {
    const memory = new MemoryBroker("memory://drain-slow-attach-purge");
    await deadLetters(memory, "orders", 3);
    expect(await purgeDeadLetters(slowToAttach(memory, QUIET_MS * 3), "orders.dead", { limit: 100 })).toBe(3);
    expect(await memory.backlog("orders.dead")).toBe(0);
    await memory.close();
  });

  it("an empty dead queue is done without attaching a consumer (no wait for letters that are not there)", async () => {
    const memory = new MemoryBroker("memory://drain-slow-attach-empty");
    const broker = slowToAttach(memory, QUIET_MS * 3);
    expect(await replayDeadLetters(broker, "orders.dead", { limit: 100 })).toBe(0);
    expect(broker.consumersOpened).toBe(0);
    await memory.close();
  });
});
