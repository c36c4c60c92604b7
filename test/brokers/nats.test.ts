import { randomUUID } from "node:crypto";
import { headers as natsHeaders } from "@nats-io/transport-node";
import { afterEach, describe, expect, it } from "vitest";
import type { Broker, Consumer, Delivery } from "../../src/brokers/contract.js";
import { parseNatsUrl } from "../../src/brokers/nats/nats-url.js";
import { openNatsBroker } from "../../src/brokers/nats/open-nats-broker.js";
import { queueSubject, streamNameFor, subjectMatches } from "../../src/brokers/nats/subjects.js";
import { BrokerUnreachableError, ConfigError } from "../../src/errors.js";
import { NATS_HOST, requireNats, waitFor } from "./nats-server.js";
import { startPrivateNats } from "./nats-private-server.js";

// Streams of this file live under its own subject prefix, and are deleted when it ends.
const nats = requireNats("adapter");
const queueName = () => `nats-test.${randomUUID().slice(0, 8)}`;
const text = (value: string) => new TextEncoder().encode(value);
const read = (delivery: Delivery | undefined) => delivery && new TextDecoder().decode(delivery.body);

type Event = { level: string; message: string };
const opened: Broker[] = [];
async function open(query = "", events: Event[] = [], base = nats.url): Promise<Broker> {
  const broker = openNatsBroker(base + query, (level, message) => events.push({ level, message }));
  opened.push(broker);
  await broker.connect();
  return broker;
}

afterEach(async () => {
  await Promise.all(opened.splice(0).map((broker) => broker.close()));
});

/** Receives until `count` deliveries arrived or the deadline passes. */
async function receiveN(consumer: Consumer, count: number, timeoutMs = 10_000, max = count): Promise<Delivery[]> {
  const signal = AbortSignal.timeout(timeoutMs);
  const got: Delivery[] = [];
  while (got.length < count && !signal.aborted) got.push(...(await consumer.receive(max, signal)));
  return got;
}

describe("nats adapter", () => {
  it("receives a plain `nats pub` message as attempt 1, its headers and x-wqueue-key natively", async () => {
    const broker = await open();
    const queue = queueName();
    const consumer = broker.consumer(queue);
    const pending = consumer.receive(10, AbortSignal.timeout(10_000)); // creates stream and consumer
    const { nc, jsm } = await nats.raw();
    const subject = nats.prefix + queue;
    await waitFor("the queue's stream", () => jsm.streams.find(subject).then(() => true, () => false));
    const sent = natsHeaders();
    sent.set("x-trace", "t-1");
    sent.set("X-Wqueue-Key", "order-7"); // as Go's client writes it (canonical case)
    nc.publish(subject, new Uint8Array([0x00, 0xff, 0x7b]), { headers: sent }); // core NATS, like `nats pub`
    nc.publish(subject, text("bare"));
    const got = await pending;
    if (got.length < 2) got.push(...(await receiveN(consumer, 2 - got.length, 5000)));
    const [first, second] = got;
    expect(first && Buffer.from(first.body)).toEqual(Buffer.from([0x00, 0xff, 0x7b]));
    expect(first?.attempt).toBe(1);
    expect(first?.headers).toEqual({ "x-trace": "t-1" });
    expect(first?.key).toBe("order-7");
    expect(first?.id).toBe("1"); // the stream sequence
    expect(read(second)).toBe("bare");
    expect(second?.headers).toEqual({});
    expect(second?.key).toBeUndefined();
    await Promise.all([first?.ack(), second?.ack()]);
  });

  it("publishes with JetStream publish: native headers, x-wqueue-key, a Nats-Msg-Id, one stream per queue", async () => {
    const broker = await open();
    const queue = queueName();
    await broker.publish(queue, [{ body: text("native"), headers: { "x-trace": "t1" }, key: "k-1" }]);
    const { jsm } = await nats.raw();
    const stream = streamNameFor(nats.prefix + queue);
    const info = await jsm.streams.info(stream);
    expect(info.config.subjects).toEqual([nats.prefix + queue]);
    expect(info.config.retention).toBe("workqueue");
    const stored = await jsm.streams.getMessage(stream, { seq: 1 });
    expect(stored?.string()).toBe("native");
    expect(stored?.header.get("x-trace")).toBe("t1");
    expect(stored?.header.get("x-wqueue-key")).toBe("k-1");
    expect(stored?.header.get("Nats-Msg-Id")).toMatch(/.+/);
  });

  it("nack with a delay is kept by JetStream, across the worker going away", async () => {
    const first = await open();
    const queue = queueName();
    await first.publish(queue, [{ body: text("later"), headers: { "x-keep": "yes" } }]);
    const [delivery] = await receiveN(first.consumer(queue), 1);
    const nackedAt = Date.now();
    await delivery?.nack({ delayMs: 1200 });
    await first.close(); // the worker goes away: the server keeps the delay
    const consumer = (await open()).consumer(queue);
    expect(await consumer.receive(1, AbortSignal.timeout(Math.max(1, nackedAt + 1000 - Date.now())))).toEqual([]);
    const [back] = await receiveN(consumer, 1, 10_000);
    expect(Date.now() - nackedAt).toBeGreaterThanOrEqual(1150);
    expect(read(back)).toBe("later");
    expect(back?.attempt).toBe(2);
    expect(back?.headers).toEqual({ "x-keep": "yes" });
    await back?.ack();
  });

  it("publish with delayMs: handed out once due, as attempt 1", async () => {
    const broker = await open();
    const queue = queueName();
    const consumer = broker.consumer(queue);
    const publishedAt = Date.now();
    await broker.publish(queue, [{ body: text("scheduled"), delayMs: 1000 }, { body: text("now") }]);
    const [now] = await receiveN(consumer, 1, 5000);
    expect(read(now)).toBe("now");
    const [scheduled] = await receiveN(consumer, 1, 10_000);
    expect(Date.now() - publishedAt).toBeGreaterThanOrEqual(950);
    expect(read(scheduled)).toBe("scheduled");
    expect(scheduled?.attempt).toBe(1);
    await scheduled?.nack();
    const [retried] = await receiveN(consumer, 1, 5000);
    expect(retried?.attempt).toBe(2);
    await Promise.all([now?.ack(), retried?.ack()]);
  });

  it("never holds more unacked messages than maxInFlight", async () => {
    const broker = await open();
    const queue = queueName();
    await broker.publish(queue, Array.from({ length: 50 }, (_, i) => ({ body: text(`m${i}`) })));
    const consumer = broker.consumer(queue, { maxInFlight: 5 });
    const held = await receiveN(consumer, 5, 5000, 100);
    expect(held.length).toBe(5);
    expect(await consumer.receive(100, AbortSignal.timeout(300))).toEqual([]); // no credit left
    const { jsm } = await nats.raw();
    const info = await jsm.consumers.info(streamNameFor(nats.prefix + queue), "wqueue");
    expect(info.num_ack_pending).toBe(5);
    await Promise.all(held.slice(0, 2).map((delivery) => delivery.ack()));
    const more = await receiveN(consumer, 2, 5000, 100);
    expect(more.length).toBe(2);
    expect((await jsm.consumers.info(streamNameFor(nats.prefix + queue), "wqueue")).num_ack_pending).toBeLessThanOrEqual(5);
    expect(await broker.backlog?.(queue)).toBe(48);
  });

  it("keeps header values with line breaks and spaces; a dead letter carries the error and its stack", async () => {
    const broker = await open();
    const queue = queueName();
    const odd = { "x-multi": "line one\nline two", "x-padded": "  padded  ", "x-percent": "100%" };
    await broker.publish(queue, [{ body: text("odd"), headers: odd, key: " spaced key " }]);
    const [delivery] = await receiveN(broker.consumer(queue), 1);
    expect(delivery?.headers).toEqual(odd);
    expect(delivery?.key).toBe(" spaced key ");
    const stack = "TypeError: boom\n    at handler (app.ts:1:1)";
    await delivery?.deadLetter({ reason: "handler-failed", error: { name: "TypeError", message: "boom", stack } });
    const [dead] = await receiveN(broker.consumer(`${queue}.dead`), 1);
    expect(dead?.headers).toMatchObject({ ...odd, "x-wqueue-dead-error-stack": stack, "x-wqueue-dead-reason": "handler-failed" });
    expect(dead?.headers["x-wqueue-dead-message-id"]).toBe(delivery?.id);
    expect(dead?.key).toBe(" spaced key ");
    await dead?.ack();
    expect(await broker.backlog?.(queue)).toBe(0);
  });

  it("browses a queue without taking messages, and counts its backlog", async () => {
    const broker = await open();
    const queue = queueName();
    expect(await broker.browse?.(queue, 10)).toEqual([]);
    expect(await broker.backlog?.(queue)).toBe(0);
    await broker.publish(queue, ["a", "b", "c"].map((body, i) => ({ body: text(body), headers: { n: String(i) }, key: `k${i}` })));
    const seen = await broker.browse?.(queue, 2);
    expect(seen?.map((m) => [new TextDecoder().decode(m.body), m.headers, m.key, m.id])).toEqual([
      ["a", { n: "0" }, "k0", "1"],
      ["b", { n: "1" }, "k1", "2"],
    ]);
    expect(await broker.backlog?.(queue)).toBe(3);
    const got = await receiveN(broker.consumer(queue), 3);
    expect(got.map(read)).toEqual(["a", "b", "c"]); // browsing took nothing
    await got[0]?.ack();
    await waitFor("the backlog to drop", async () => (await broker.backlog?.(queue)) === 2);
    expect((await broker.browse?.(queue, 10))?.map((m) => m.id)).toEqual(["2", "3"]);
    await Promise.all(got.slice(1).map((delivery) => delivery.ack()));
  });

  it("?stream=NAME keeps several queues in one stream, each with its own consumer", async () => {
    // A prefix of its own: a stream capturing `<prefix>>` must not overlap this file's other streams.
    const prefix = `${nats.prefix}shared.`;
    const stream = `WQ_${nats.prefix.replaceAll(".", "_")}shared`;
    const broker = await open("", [], `nats://${NATS_HOST}?subjectPrefix=${prefix}&stream=${stream}`);
    const [a, b] = [queueName(), queueName()];
    expect(await broker.backlog?.(a)).toBe(0); // no stream yet
    expect(await broker.browse?.(a, 5)).toEqual([]);
    await broker.publish(a, [{ body: text("for a") }]);
    await broker.publish(b, [{ body: text("for b") }]);
    const [fromA] = await receiveN(broker.consumer(a), 1);
    const [fromB] = await receiveN(broker.consumer(b), 1);
    expect([read(fromA), read(fromB)]).toEqual(["for a", "for b"]);
    await Promise.all([fromA?.ack(), fromB?.ack()]);
    const { jsm } = await nats.raw();
    const info = await jsm.streams.info(stream);
    expect(info.config.subjects).toEqual([`${prefix}>`]);
    expect(info.state.consumer_count).toBe(2);
    expect(await broker.backlog?.(a)).toBe(0);
  });

  it("rejects an unreachable server with BrokerUnreachableError (no endless reconnecting), password and token hidden", async () => {
    for (const url of ["nats://wq:hunter2pass@127.0.0.1:1", "nats://s3cr3ttoken@127.0.0.1:1"]) {
      const broker = openNatsBroker(url);
      const error = await broker.connect().then(() => undefined, (e: unknown) => e as Error);
      expect(error).toBeInstanceOf(BrokerUnreachableError);
      expect(error?.message).toContain("***@127.0.0.1:1");
      expect(error?.message).not.toMatch(/hunter2pass|s3cr3ttoken/);
      expect(broker.url).not.toMatch(/hunter2pass|s3cr3ttoken/);
      await broker.close();
    }
  });

  it("parses its URL options and maps queues to subjects and streams", () => {
    const config = parseNatsUrl("nats://u:p@nats.local?durable=w1&ackWait=5000&maxDeliver=7&subjectPrefix=jobs.");
    expect(config).toMatchObject({ server: "nats.local:4222", user: "u", pass: "p", durable: "w1", ackWaitMs: 5000, maxDeliver: 7, maxAckPending: -1 });
    expect(config.url).toBe("nats://u:***@nats.local?durable=w1&ackWait=5000&maxDeliver=7&subjectPrefix=jobs.");
    expect(parseNatsUrl("nats://127.0.0.1:4222").maxDeliver).toBe(-1);
    for (const bad of ["nats://h?ackWait=0", "nats://h?durable=a.b", "nats://h?bogus=1", "nats://h?subjectPrefix=a..b", "nats://h?stream=a.b"]) {
      expect(() => parseNatsUrl(bad)).toThrow(ConfigError);
    }
    expect(streamNameFor("orders.created")).toBe("WQ_orders_created");
    expect(() => queueSubject("", "bad queue")).toThrow(ConfigError);
    expect(() => queueSubject("", "a.*.b")).toThrow(ConfigError);
    expect(subjectMatches("jobs.>", "jobs.a.b")).toBe(true);
    expect(subjectMatches("jobs.*", "jobs.a.b")).toBe(false);
    expect(subjectMatches("jobs.*.b", "jobs.a.b")).toBe(true);
    expect(subjectMatches("jobs", "jobs.a")).toBe(false);
  });
});

describe("nats adapter on a private nats-server", () => {
  it("keeps consuming across a kill -9 and restart of the server: none of 2,000 messages lost", async () => {
    const server = await startPrivateNats({ user: "wq", pass: "s3cretpass" });
    try {
      const events: Event[] = [];
      const url = `${server.url}?ackWait=2000`;
      const producer = await open("", [], url);
      const consumerBroker = await open("", events, url);
      const queue = queueName();
      const total = 2000;
      const consumer = consumerBroker.consumer(queue, { maxInFlight: 50 });
      const seen = new Set<string>();
      let restarted: Promise<void> | undefined;
      const publishing = (async () => {
        for (let i = 0; i < total; i += 100) {
          await producer.publish(queue, Array.from({ length: 100 }, (_, j) => ({ body: text(`m${i + j}`) })));
        }
      })();
      const signal = AbortSignal.timeout(60_000);
      while (seen.size < total && !signal.aborted) {
        for (const delivery of await consumer.receive(50, signal)) {
          seen.add(read(delivery) as string);
          await delivery.ack();
        }
        if (restarted === undefined && seen.size >= total / 4) restarted = server.restart(); // mid-stream
      }
      await publishing;
      await restarted;
      expect(seen.size).toBe(total);
      expect(events.some((e) => e.level === "warn" && e.message.includes("connection lost"))).toBe(true);
      expect(events.some((e) => e.message.includes("reconnected"))).toBe(true);
      expect(events.every((e) => !e.message.includes("s3cretpass"))).toBe(true);
      expect(events.find((e) => e.message.includes("connection lost"))?.message).toContain("wq:***@");
    } finally {
      await Promise.all(opened.splice(0).map((broker) => broker.close()));
      await server.stop();
    }
  }, 90_000);
});
