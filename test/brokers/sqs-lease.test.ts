import { afterEach, describe, expect, it } from "vitest";
import type { Consumer, Delivery } from "../../src/brokers/contract.js";
import { openSqsBroker } from "../../src/brokers/sqs/open-sqs-broker.js";
import { sqsQueueName } from "../../src/brokers/sqs/queue-names.js";
import type { SqsBroker } from "../../src/brokers/sqs/SqsBroker.js";
import { waitFor } from "../helpers.js";
import { requireSqs } from "./sqs-server.js";

/**
 * Consumer.extend on SQS (ElasticMQ): consumers here run without the VisibilityKeeper's own timer,
 * so only extend() keeps a message hidden, as it will once the dispatcher's lease keeper drives it.
 */
const sqs = requireSqs({ prefix: "sqs-lease" });
const text = (value: string) => new TextEncoder().encode(value);
const read = (delivery: Delivery | undefined) => delivery && new TextDecoder().decode(delivery.body);

const brokers: SqsBroker[] = [];
const consumers: Consumer[] = [];
const timers: NodeJS.Timeout[] = [];
async function consumerOf(queue: string, visibilitySeconds: number): Promise<Consumer> {
  const broker = openSqsBroker(sqs.url(`&visibility=${visibilitySeconds}&wait=1`)) as SqsBroker;
  brokers.push(broker);
  await broker.connect();
  const consumer = broker.consumer(queue);
  consumers.push(consumer);
  return consumer;
}

afterEach(async () => {
  for (const timer of timers.splice(0)) clearInterval(timer);
  await Promise.all(consumers.splice(0).map((consumer) => consumer.close()));
  await Promise.all(brokers.splice(0).map((broker) => broker.close()));
});

async function receiveOne(consumer: Consumer, timeoutMs = 10_000): Promise<Delivery | undefined> {
  const signal = AbortSignal.timeout(timeoutMs);
  while (!signal.aborted) {
    const [delivery] = await consumer.receive(1, signal);
    if (delivery) return delivery;
  }
  return undefined;
}

describe("sqs: extend() keeps a running message hidden", () => {
  it("leaseMs is the visibility; extended every visibility/3 for over 3x visibility, no second consumer gets it; the ack works", async () => {
    const queue = sqs.queueName();
    const holder = await consumerOf(queue, 1);
    expect(holder.leaseMs).toBe(1000);
    await brokers[0]?.publish(queue, [{ body: text("slow") }]);
    const held = await receiveOne(holder);
    expect(read(held)).toBe("slow");
    timers.push(setInterval(() => void holder.extend?.([held as Delivery]).catch(() => {}), 333));
    const rival = await consumerOf(queue, 1);
    expect(await receiveOne(rival, 3500)).toBeUndefined();
    await held?.ack();
    await holder.extend?.([held as Delivery]); // settled: skipped, no rejection
    expect(await sqs.counts(sqsQueueName(queue).name)).toEqual([0, 0]);
  }, 20_000);

  it("without extend, a second consumer gets it after the visibility timeout, as attempt 2", async () => {
    const queue = sqs.queueName();
    const holder = await consumerOf(queue, 1);
    await brokers[0]?.publish(queue, [{ body: text("slow") }]);
    const held = await receiveOne(holder);
    const rival = await consumerOf(queue, 1);
    const again = await receiveOne(rival, 3500);
    expect([read(again), again?.attempt]).toEqual([read(held), 2]);
    await again?.ack();
  }, 20_000);

  it("a nack right after an extension is not overtaken by it: visible again at once despite a 30 s visibility", async () => {
    const queue = sqs.queueName();
    const holder = await consumerOf(queue, 30);
    await brokers[0]?.publish(queue, [{ body: text("back") }]);
    const held = (await receiveOne(holder)) as Delivery;
    const extending = holder.extend?.([held]);
    await held.nack();
    await extending;
    const rival = await consumerOf(queue, 30);
    const again = await receiveOne(rival, 10_000);
    expect([read(again), again?.attempt]).toEqual(["back", 2]);
    await again?.ack();
  }, 30_000);

  it("messages received ahead and left in the buffer past a third of the visibility are not handed out", async () => {
    const queue = sqs.queueName();
    const holder = await consumerOf(queue, 1);
    await brokers[0]?.publish(queue, ["a", "b", "c"].map((body) => ({ body: text(body) })));
    // A receive that gives up at once leaves its poll running: its messages wait in the buffer.
    expect(await holder.receive(3, AbortSignal.timeout(1))).toEqual([]);
    await waitFor("the three messages in flight", async () => (await sqs.counts(sqsQueueName(queue).name))[1] === 3);
    // Nobody extends them: once visible again, another consumer gets them.
    const rival = await consumerOf(queue, 1);
    const elsewhere: Delivery[] = [];
    const signal = AbortSignal.timeout(10_000);
    while (elsewhere.length < 3 && !signal.aborted) elsewhere.push(...(await rival.receive(3, signal)));
    expect(elsewhere.map((delivery) => delivery.attempt)).toEqual([2, 2, 2]);
    await Promise.all(elsewhere.map((delivery) => delivery.ack()));
    // The holder must not run its stale copies as well.
    expect((await holder.receive(3, AbortSignal.timeout(500))).map(read)).toEqual([]);
  }, 30_000);
});
