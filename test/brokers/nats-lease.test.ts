import { randomUUID } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import type { Broker, Consumer, Delivery } from "../../src/brokers/contract.js";
import { openNatsBroker } from "../../src/brokers/nats/open-nats-broker.js";
import { streamNameFor } from "../../src/brokers/nats/subjects.js";
import { requireNats } from "./nats-server.js";

// Long handlers on NATS: the lease is the consumer's ack wait, extend() sends +WPI (working).
const nats = requireNats("lease");
const ACK_WAIT_MS = 900;
const queueName = () => `nats-lease.${randomUUID().slice(0, 8)}`;
const text = (value: string) => new TextEncoder().encode(value);
const read = (delivery: Delivery | undefined) => delivery && new TextDecoder().decode(delivery.body);

const opened: Broker[] = [];
const timers: NodeJS.Timeout[] = [];
async function open(ackWaitMs = ACK_WAIT_MS): Promise<Broker> {
  const broker = openNatsBroker(`${nats.url}&ackWait=${ackWaitMs}`, () => {});
  opened.push(broker);
  await broker.connect();
  return broker;
}

afterEach(async () => {
  for (const timer of timers.splice(0)) clearInterval(timer);
  await Promise.all(opened.splice(0).map((broker) => broker.close()));
});

async function receiveOne(consumer: Consumer, timeoutMs = 10_000): Promise<Delivery> {
  const signal = AbortSignal.timeout(timeoutMs);
  for (;;) {
    const [delivery] = await consumer.receive(1, signal);
    if (delivery) return delivery;
    if (signal.aborted) throw new Error(`nothing received in ${timeoutMs} ms`);
  }
}

/** What `consumer` receives until `ms` pass (the window is the test's condition, not a delay). */
async function receiveFor(consumer: Consumer, ms: number): Promise<Delivery[]> {
  const signal = AbortSignal.timeout(ms);
  const got: Delivery[] = [];
  while (!signal.aborted) got.push(...(await consumer.receive(10, signal)));
  return got;
}

/** Calls extend every third of the lease, as dispatch/LeaseKeeper.ts does. */
function keepExtending(consumer: Consumer, deliveries: Delivery[]): void {
  const lease = consumer.leaseMs ?? 0;
  timers.push(setInterval(() => void consumer.extend?.(deliveries).catch(() => {}), lease / 3));
}

describe("nats: leases of long-running deliveries", () => {
  it("leaseMs is the ack wait; a delivery extended every ackWait/3 for 3x ackWait stays with its worker, then acks", async () => {
    const queue = queueName();
    const first = (await open()).consumer(queue, { maxInFlight: 1 });
    expect(first.leaseMs).toBe(ACK_WAIT_MS);
    await (await open()).publish(queue, [{ body: text("long") }]);
    const delivery = await receiveOne(first);
    keepExtending(first, [delivery]);
    const second = (await open()).consumer(queue, { maxInFlight: 1 });
    expect(await receiveFor(second, 3 * ACK_WAIT_MS)).toEqual([]);
    // The server's own count: a lapsed lease shows here even if this process was too slow to see
    // the rival receive it (the rival's pull was waiting all along).
    const { jsm } = await nats.raw();
    expect((await jsm.consumers.info(streamNameFor(nats.prefix + queue), "wqueue")).num_redelivered).toBe(0);
    await delivery.ack();
    await first.extend?.([delivery]); // settled: skipped, no rejection
    expect(await receiveFor(second, ACK_WAIT_MS + 300)).toEqual([]);
    expect(await (await open()).backlog?.(queue)).toBe(0);
  }, 20_000);

  it("without extend, the same delivery goes to a second worker after the ack wait, as attempt 2", async () => {
    const queue = queueName();
    const first = (await open()).consumer(queue, { maxInFlight: 1 });
    await (await open()).publish(queue, [{ body: text("long") }]);
    const delivery = await receiveOne(first);
    const second = (await open()).consumer(queue, { maxInFlight: 1 });
    const again = await receiveOne(second, 3 * ACK_WAIT_MS);
    expect([read(again), again.attempt]).toEqual([read(delivery), 2]);
    await again.ack();
  }, 20_000);

  it("a nack after extend is applied: the message is back at once, long before a 60 s ack wait", async () => {
    const queue = queueName();
    const first = (await open(60_000)).consumer(queue, { maxInFlight: 1 });
    await (await open(60_000)).publish(queue, [{ body: text("given back") }]);
    const delivery = await receiveOne(first);
    await first.extend?.([delivery]);
    await delivery.nack();
    const again = await receiveOne(first, 10_000);
    expect([read(again), again.attempt]).toEqual(["given back", 2]);
    await again.ack();
  }, 20_000);

  it("messages pulled ahead and never taken are given back before their ack wait, not handed out again later", async () => {
    const queue = queueName();
    const first = (await open()).consumer(queue, { maxInFlight: 4 });
    await (await open()).publish(queue, ["a", "b", "c", "d"].map((body) => ({ body: text(body) })));
    const [taken] = await first.receive(1, AbortSignal.timeout(10_000));
    await taken?.ack(); // the other three were pulled ahead into the buffer; nobody asks for them
    const second = (await open()).consumer(queue, { maxInFlight: 10 });
    const signal = AbortSignal.timeout(10_000);
    const elsewhere: Delivery[] = [];
    while (elsewhere.length < 3 && !signal.aborted) elsewhere.push(...(await second.receive(10, signal)));
    for (const delivery of elsewhere) await delivery.ack();
    expect(elsewhere.map(read).sort()).toEqual(["a", "b", "c", "d"].filter((body) => body !== read(taken)));
    // The first consumer must not hand out the stale copies it pulled ahead.
    expect((await receiveFor(first, 500)).map(read)).toEqual([]);
  }, 20_000);
});
