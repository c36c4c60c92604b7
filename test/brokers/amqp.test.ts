import { randomUUID } from "node:crypto";
import { createServer, type Server } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { delayBucket } from "../../src/brokers/amqp/delay-buckets.js";
import { openAmqpBroker } from "../../src/brokers/amqp/open-amqp-broker.js";
import { WQueue } from "../../src/app/WQueue.js";
import { BrokerSet } from "../../src/brokers/BrokerSet.js";
import { redactUrl } from "../../src/brokers/url.js";
import type { Broker, Delivery } from "../../src/brokers/contract.js";
import { BrokerUnreachableError, ConfigError } from "../../src/errors.js";
import { requireRabbit, waitFor } from "./amqp-server.js";

// This file's vhost holds every queue it makes, and goes (queues included) when the file ends.
const rabbit = requireRabbit("adapter");
const queueName = () => `amqp-test.${randomUUID().slice(0, 8)}`;
const text = (value: string) => new TextEncoder().encode(value);
const read = (delivery: Delivery) => Buffer.from(delivery.body).toString();

type Event = { level: string; message: string };
const opened: Broker[] = [];
async function open(url = rabbit.url, events: Event[] = []): Promise<Broker> {
  const broker = openAmqpBroker(url, (level, message) => events.push({ level, message }));
  opened.push(broker);
  await broker.connect();
  return broker;
}

/** The queue as RabbitMQ sees it, or undefined if it does not exist (own channel: a 404 closes it). */
async function inspectQueue(queue: string): Promise<{ messageCount: number; consumerCount: number } | undefined> {
  const channel = await (await rabbit.raw()).createChannel();
  channel.on("error", () => {});
  try {
    return await channel.checkQueue(queue);
  } catch {
    return undefined;
  } finally {
    await channel.close().catch(() => {});
  }
}

afterEach(async () => {
  await Promise.all(opened.splice(0).map((broker) => broker.close()));
});

describe("amqp adapter", () => {
  it("receives a plain producer's message (attempt 1, no headers); its retry keeps id and properties", async () => {
    const broker = await open();
    const queue = queueName();
    const raw = await (await rabbit.raw()).createChannel();
    await raw.assertQueue(queue, { durable: true });
    const properties = { contentType: "application/x-thing", correlationId: "c-1", expiration: "600000" };
    raw.sendToQueue(queue, Buffer.from([0x00, 0xff, 0x7b]), properties);
    const consumer = broker.consumer(queue);
    const [delivery] = await consumer.receive(10, AbortSignal.timeout(5000));
    expect(delivery && Buffer.from(delivery.body)).toEqual(Buffer.from([0x00, 0xff, 0x7b]));
    expect(delivery?.attempt).toBe(1);
    expect(delivery?.headers).toEqual({});
    expect(delivery?.key).toBeUndefined();
    expect(delivery?.id).toMatch(/.+/);
    // Given back (closed channel: attempt 2), then retried: the copy keeps the id and the plain
    // properties (not the expiration) and says attempt 3.
    await consumer.close();
    const retried = broker.consumer(queue);
    const [again] = await retried.receive(10, AbortSignal.timeout(5000));
    expect(again?.attempt).toBe(2); // redelivered: the closed channel gave it back
    await again?.nack();
    await retried.close();
    const copy = await raw.get(queue, { noAck: true });
    if (copy === false) throw new Error(`nothing in ${queue}`);
    expect(copy.content).toEqual(Buffer.from([0x00, 0xff, 0x7b]));
    expect(copy.properties).toMatchObject({ contentType: "application/x-thing", correlationId: "c-1" });
    expect(copy.properties.expiration).toBeUndefined();
    expect(copy.properties.messageId).toBe(again?.id);
    expect(copy.properties.headers).toEqual({ "x-wqueue-attempt": "3" });
  });

  it("publishes natively: persistent, message-id, headers, x-wqueue-key; a plain consumer reads it", async () => {
    const broker = await open();
    const queue = queueName();
    await broker.publish(queue, [{ body: text("native"), headers: { "x-trace": "t1" }, key: "order-7" }]);
    const raw = await (await rabbit.raw()).createChannel();
    const message = await raw.get(queue, { noAck: true });
    if (message === false) throw new Error(`nothing in ${queue}`);
    expect(message.content.toString()).toBe("native");
    expect(message.properties.deliveryMode).toBe(2);
    expect(message.properties.messageId).toMatch(/.+/);
    expect(message.properties.headers).toEqual({ "x-trace": "t1", "x-wqueue-key": "order-7" });
  });

  it("app.publish labels a value it serialised as content-type application/json; bytes and strings unlabelled", async () => {
    const queue = queueName();
    const app = new WQueue({ brokers: { rabbit: rabbit.url } });
    try {
      for (const body of [{ n: 1 }, [1, 2], "plain text", Buffer.from([0xff])]) await app.publish(queue, body, { broker: "rabbit" });
    } finally {
      await app.close();
    }
    const raw = await (await rabbit.raw()).createChannel();
    const types: unknown[] = [];
    for (let message = await raw.get(queue, { noAck: true }); message !== false; message = await raw.get(queue, { noAck: true })) {
      types.push(message.properties.contentType);
    }
    expect(types).toEqual(["application/json", "application/json", undefined, undefined]);
  });

  it("counts a redelivery after the consumer's channel closed as one more attempt", async () => {
    const broker = await open();
    const queue = queueName();
    await broker.publish(queue, [{ body: text("dies"), attempt: 3 }]);
    const first = broker.consumer(queue);
    const [held] = await first.receive(1, AbortSignal.timeout(5000));
    expect(held?.attempt).toBe(3);
    await first.close(); // as a worker that died mid-message
    await held?.ack(); // from a closed channel: must not ack anything
    const [again] = await broker.consumer(queue).receive(1, AbortSignal.timeout(5000));
    expect(again && read(again)).toBe("dies");
    expect(again?.attempt).toBe(4);
    expect(again?.id).toBe(held?.id);
    await again?.ack();
  });

  it("close() gives back the messages it had buffered but not handed out without counting an attempt", async () => {
    const broker = await open();
    const queue = queueName();
    await broker.publish(queue, ["1", "2", "3", "4", "5"].map((body) => ({ body: text(body) })));
    const first = broker.consumer(queue, { maxInFlight: 5 });
    const [taken] = await first.receive(1, AbortSignal.timeout(5000));
    await waitFor("all five pushed to the consumer", async () => (await inspectQueue(queue))?.messageCount === 0);
    await taken?.ack();
    await first.close(); // a graceful stop: the other four never ran
    const next = broker.consumer(queue);
    const got: Delivery[] = [];
    const signal = AbortSignal.timeout(5000);
    while (got.length < 4 && !signal.aborted) got.push(...(await next.receive(4, signal)));
    expect(got.map((delivery) => [read(delivery), delivery.attempt])).toEqual([
      ["2", 1],
      ["3", 1],
      ["4", 1],
      ["5", 1],
    ]);
    await Promise.all(got.map((delivery) => delivery.ack()));
  });

  it("nack with a delay parks the message in a delay queue, which gives it back after the delay", async () => {
    const producer = await open();
    const queue = queueName();
    await producer.publish(queue, [{ body: text("later"), headers: { "x-keep": "yes" } }]);
    const [first] = await producer.consumer(queue).receive(1, AbortSignal.timeout(5000));
    const nackedAt = Date.now();
    await first?.nack({ delayMs: 1000 });
    const delayQueue = `${queue}.delay.${delayBucket(1000)}`;
    expect((await inspectQueue(delayQueue))?.messageCount).toBe(1);
    expect((await inspectQueue(queue))?.messageCount).toBe(0);
    await producer.close(); // the worker goes away: the broker keeps the delay
    const consumer = (await open()).consumer(queue);
    const [back] = await consumer.receive(1, AbortSignal.timeout(10_000));
    expect(Date.now() - nackedAt).toBeGreaterThanOrEqual(1000);
    expect(back && read(back)).toBe("later");
    expect(back?.attempt).toBe(2);
    expect(back?.headers).toEqual({ "x-keep": "yes" }); // no x-death bookkeeping
    expect((await inspectQueue(delayQueue))?.messageCount).toBe(0);
    await back?.ack();
  });

  it("rounds delays up to buckets of 2^n and 1.5 * 2^n ms", () => {
    expect([1, 2, 3, 4, 5, 7, 800, 1000, 1024, 1025, 1537, 60_000].map(delayBucket)).toEqual([
      1, 2, 3, 4, 6, 8, 1024, 1024, 1024, 1536, 2048, 65_536,
    ]);
    expect(delayBucket(10 ** 12)).toBe(3 * 2 ** 30);
  });

  it("a pending receive keeps waiting across a reconnect and gets what is published after it", async () => {
    const events: Event[] = [];
    const broker = await open(rabbit.url, events);
    const queue = queueName();
    const consumer = broker.consumer(queue);
    await broker.publish(queue, [{ body: text("before") }]);
    const [before] = await consumer.receive(1, AbortSignal.timeout(5000));
    await before?.ack();
    const pending = consumer.receive(10, AbortSignal.timeout(20_000));
    await rabbit.closeConnections();
    await waitFor("the reconnect", () => events.some((e) => e.message.includes("reconnected")), 10_000);
    await broker.publish(queue, [{ body: text("after") }]);
    expect((await pending).map(read)).toEqual(["after"]);
    expect(events.some((e) => e.level === "warn" && e.message.includes("connection lost"))).toBe(true);
  });

  it("loses nothing of 10,000 messages while every connection is dropped twice", async () => {
    const events: Event[] = [];
    const producer = await open();
    const consumerBroker = await open(rabbit.url, events);
    const queue = queueName();
    const total = 10_000;
    const consumer = consumerBroker.consumer(queue, { maxInFlight: 100 });
    const seen = new Set<string>();
    let received = 0;
    const publishing = (async () => {
      for (let start = 0; start < total; start += 250) {
        const size = Math.min(250, total - start);
        await producer.publish(queue, Array.from({ length: size }, (_, i) => ({ body: text(String(start + i)) })));
      }
    })();
    const drops = [3000, 7000];
    const signal = AbortSignal.timeout(90_000);
    while (seen.size < total && !signal.aborted) {
      const got = await consumer.receive(100, signal);
      for (const delivery of got) {
        received += 1;
        seen.add(read(delivery));
      }
      if (drops.length > 0 && seen.size >= (drops[0] as number)) {
        // Drop every connection while this batch is in flight, unacked: its acks then come from a
        // dead channel and must not ack anything; RabbitMQ redelivers the batch.
        drops.shift();
        await rabbit.closeConnections();
      }
      await Promise.all(got.map((delivery) => delivery.ack()));
    }
    await publishing;
    expect(seen.size).toBe(total);
    const lost = events.filter((e) => e.message.includes("connection lost")).length;
    expect(lost).toBe(2);
    const duplicates = received - seen.size;
    console.log(`10,000 messages, 2 connection drops: 0 lost, ${duplicates} delivered twice (redelivered or re-sent)`);
    // Nothing is left behind once every id was seen: the queue drains to empty.
    await waitFor("the queue to drain", async () => {
      const extra = await consumer.receive(100, AbortSignal.timeout(200));
      await Promise.all(extra.map((delivery) => delivery.ack()));
      return extra.length === 0;
    }, 10_000);
  }, 120_000);

  it("declares a queue deleted behind its back again when a publish comes back unroutable", async () => {
    const broker = await open();
    const queue = queueName();
    await broker.publish(queue, [{ body: text("one") }]);
    await (await (await rabbit.raw()).createChannel()).deleteQueue(queue);
    await broker.publish(queue, [{ body: text("two") }]); // the declaration was cached: returned, then redone
    expect((await inspectQueue(queue))?.messageCount).toBe(1);
  });

  it("a consumer whose queue was deleted declares it again and goes on consuming", async () => {
    const events: Event[] = [];
    const broker = await open(rabbit.url, events);
    const queue = queueName();
    const consumer = broker.consumer(queue);
    const pending = consumer.receive(10, AbortSignal.timeout(10_000));
    await waitFor("the consumer", async () => (await inspectQueue(queue))?.consumerCount === 1);
    await (await (await rabbit.raw()).createChannel()).deleteQueue(queue);
    await waitFor("the cancel", () => events.some((e) => e.message.includes(`cancelled the consumer of ${queue}`)));
    await waitFor("the consumer to come back", async () => (await inspectQueue(queue))?.consumerCount === 1);
    await broker.publish(queue, [{ body: text("still here") }]);
    expect((await pending).map(read)).toEqual(["still here"]);
  });

  it("uses a queue that exists with other arguments as it is, with a warning", async () => {
    const queue = queueName();
    const raw = await (await rabbit.raw()).createChannel();
    await raw.assertQueue(queue, { durable: false }); // the URL below says durable
    const events: Event[] = [];
    const broker = await open(rabbit.url, events);
    await broker.publish(queue, [{ body: text("fits") }]);
    const [delivery] = await broker.consumer(queue).receive(1, AbortSignal.timeout(5000));
    expect(delivery && read(delivery)).toBe("fits");
    await delivery?.ack();
    const warned = events.some((e) => e.level === "warn" && e.message.includes(`queue ${queue} exists with other`));
    expect(warned).toBe(true);
  });

  it("a warning through BrokerSet names the broker once (no 'broker amqp://...: amqp amqp://...')", async () => {
    const queue = queueName();
    const raw = await (await rabbit.raw()).createChannel();
    await raw.assertQueue(queue, { durable: false }); // the URL below says durable: a warning
    const lines: string[] = [];
    const brokers = new BrokerSet(rabbit.url, {}, (_level, message) => lines.push(message));
    try {
      await (await brokers.get()).publish(queue, [{ body: text("x") }]);
      const warning = lines.find((line) => line.includes(`queue ${queue} exists with other arguments`)) ?? "";
      expect(warning.startsWith(`broker ${redactUrl(rabbit.url)}: queue ${queue}`)).toBe(true);
      expect(warning.split("amqp://").length).toBe(2);
    } finally {
      await brokers.close();
    }
  });

  it("queueType=quorum declares quorum queues and counts redeliveries with x-delivery-count", async () => {
    const broker = await open(`${rabbit.url}?queueType=quorum`);
    const queue = queueName();
    await broker.publish(queue, [{ body: text("q") }]);
    for (const expected of [1, 2, 3]) {
      const consumer = broker.consumer(queue);
      const [delivery] = await consumer.receive(1, AbortSignal.timeout(5000));
      expect(delivery?.attempt).toBe(expected);
      await consumer.close(); // unsettled: back to the queue
    }
    const consumer = broker.consumer(queue);
    const [fourth] = await consumer.receive(1, AbortSignal.timeout(5000));
    await fourth?.nack({ delayMs: 50 });
    const [fifth] = await consumer.receive(1, AbortSignal.timeout(5000));
    expect(fifth?.attempt).toBe(5);
    await fifth?.ack();
    expect((await inspectQueue(queue))?.messageCount).toBe(0);
  });

  it("says in one error line when consumer_timeout closed a channel; the held message runs again, counted", async () => {
    const events: Event[] = [];
    const broker = await open(rabbit.url, events);
    const queue = queueName();
    await broker.publish(queue, [{ body: text("slow") }]);
    const consumer = broker.consumer(queue);
    const [held] = await consumer.receive(1, AbortSignal.timeout(5000));
    expect(held?.attempt).toBe(1);
    await rabbit.expireConsumerTimeout(); // as if the handler had run past RabbitMQ's consumer_timeout
    await waitFor("the consumer_timeout line", () => events.some((e) => e.level === "error" && e.message.includes("consumer_timeout (1 ms)")));
    const line = events.find((e) => e.message.includes("consumer_timeout"))?.message ?? "";
    expect(line).toContain(`RabbitMQ closed the channel of ${queue}`);
    expect(line).toContain("raise consumer_timeout in rabbitmq.conf");
    const [again] = await consumer.receive(1, AbortSignal.timeout(10_000)); // on the reopened channel
    expect(again && read(again)).toBe("slow");
    expect(again?.id).toBe(held?.id);
    expect(again?.attempt).toBe(2);
    await held?.ack(); // on the closed channel: does nothing
    await again?.ack();
    await waitFor("the queue to be empty", async () => (await inspectQueue(queue))?.messageCount === 0);
  });

  it("connect() to an unreachable broker fails with the URL redacted", async () => {
    const refused = openAmqpBroker("amqp://app:s3cret-pw@127.0.0.1:1/vhost");
    const error = await refused.connect().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BrokerUnreachableError);
    expect(String((error as Error).message)).toContain("amqp://app:***@127.0.0.1:1/vhost");
    expect(String((error as Error).message)).not.toContain("s3cret");
    expect(refused.url).not.toContain("s3cret");
    await refused.close();
  });

  // The adapter's own handshake deadline ends it: without one, amqplib would wait forever (the test's timeout).
  it("connect() to a server that never answers the handshake gives up", async () => {
    const silent: Server = createServer(() => {}); // accepts the TCP connection, says nothing
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const { port } = silent.address() as { port: number };
    try {
      const broker = openAmqpBroker(`amqp://app:s3cret-pw@127.0.0.1:${port}`);
      const error = await broker.connect().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BrokerUnreachableError);
      expect(String((error as Error).message)).toContain("***");
      expect(String((error as Error).message)).not.toContain("s3cret");
      await broker.close();
    } finally {
      silent.close();
    }
  });

  it("refuses bad URL options with a ConfigError that hides the password", () => {
    for (const url of [
      "amqp://u:s3cret@host?queueType=stream",
      "amqp://u:s3cret@host?durable=maybe",
      "amqp://u:s3cret@host?queueType=quorum&durable=false",
    ]) {
      expect(() => openAmqpBroker(url)).toThrow(ConfigError);
      expect(() => openAmqpBroker(url)).toThrow(/u:\*\*\*@host/);
    }
  });
});
