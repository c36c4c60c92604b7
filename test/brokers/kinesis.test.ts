import { randomUUID } from "node:crypto";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import type { Broker, Consumer, Delivery } from "../../src/brokers/contract.js";
import { openKinesisBroker } from "../../src/brokers/kinesis/open-kinesis-broker.js";
import { waitFor } from "../helpers.js";
import { REDIS_URL } from "../setup/ensure-redis.js";
import { dropKinesisApp, requireKinesis } from "./kinesis-server.js";

// The Kinesis adapter's own behaviour beyond the conformance suite, on the real kinesis-local with
// leases and checkpoints in the real Redis (keys of this file's app deleted at the end).
const server = requireKinesis({ prefix: "kinesis-test" });
const app = `test-${randomUUID().slice(0, 8)}`;
const opened: Broker[] = [];

afterEach(async () => {
  await Promise.all(opened.splice(0).map((broker) => broker.close()));
});
afterAll(() => dropKinesisApp(app));

function open(query = ""): Broker {
  const broker = openKinesisBroker(server.url(`?app=${app}&checkpoints=${REDIS_URL}&lease=1500&poll=50${query}`));
  opened.push(broker);
  return broker;
}

const text = (delivery: Delivery) => Buffer.from(delivery.body).toString();

/** Receives (acking each) until `count` arrived or `timeoutMs` passed. */
async function drain(consumer: Consumer, count: number, timeoutMs = 10_000): Promise<Delivery[]> {
  const got: Delivery[] = [];
  const signal = AbortSignal.timeout(timeoutMs);
  while (got.length < count && !signal.aborted) {
    for (const delivery of await consumer.receive(100, signal)) {
      got.push(delivery);
      await delivery.ack();
    }
  }
  return got;
}

describe("kinesis adapter", () => {
  it("reads records of any producer: raw bytes as the body, the partition key as the key", async () => {
    const stream = server.streamName();
    await server.createStream(stream, 1);
    await server.put(stream, [{ data: "plain bytes", key: "customer-7" }]);
    const [delivery] = await drain(open().consumer(stream), 1);
    expect(delivery && text(delivery)).toBe("plain bytes");
    expect(delivery?.key).toBe("customer-7");
    expect(delivery?.attempt).toBe(1);
    expect(delivery?.headers).toEqual({});
    expect(delivery?.partition).toBe("shardId-000000000000");
  });

  it("holds a record published with delayMs back until its time", async () => {
    const broker = open();
    const stream = server.streamName();
    const published = Date.now();
    await broker.publish(stream, [{ body: Buffer.from("later"), delayMs: 1500 }, { body: Buffer.from("now") }]);
    const consumer = broker.consumer(stream);
    const first = await drain(consumer, 1);
    expect(first.map(text)).toEqual(["now"]);
    const [later] = await drain(consumer, 1);
    expect(later && text(later)).toBe("later");
    expect(Date.now() - published).toBeGreaterThanOrEqual(1400);
    expect(later?.headers).toEqual({});
  });

  it("a second worker gets half the shards: the first hands two over, each record handled once", async () => {
    const stream = server.streamName();
    await server.createStream(stream, 4);
    const a = open().consumer(stream);
    let published = 0;
    const publish = (count: number) => {
      const batch = Array.from({ length: count }, (_, i) => ({ data: String(published + i), key: `k${published + i}` }));
      published += count;
      return server.put(stream, batch);
    };
    await publish(200);
    const seen = (await drain(a, 200)).map(text);
    const b = open().consumer(stream);
    const shardsOf = { a: new Set<string>(), b: new Set<string>() };
    // Records keep coming while the leases move; b ends up reading two shards, a the other two.
    await waitFor(
      () => `both consumers reading two shards (${seen.length} of ${published}; a: ${[...shardsOf.a]}, b: ${[...shardsOf.b]})`,
      async () => {
        if (shardsOf.b.size < 2) await publish(40);
        for (const [name, consumer] of [["a", a], ["b", b]] as const) {
          for (const delivery of await consumer.receive(100, AbortSignal.timeout(100))) {
            seen.push(text(delivery));
            if (shardsOf.b.size < 2) shardsOf[name].add(delivery.partition as string);
            await delivery.ack();
          }
        }
        return seen.length >= published && shardsOf.b.size === 2;
      },
      30_000,
    );
    expect(new Set(seen).size).toBe(published);
    expect(seen.length).toBe(published); // a graceful hand-over checkpoints first: no duplicates
  }, 40_000);

  it("lists the records of a stream this app has not finished, without taking them", async () => {
    const broker = open();
    const stream = server.streamName();
    await broker.publish(stream, ["a", "b", "c"].map((body) => ({ body: Buffer.from(body), headers: { "x-n": body } })));
    const consumer = broker.consumer(stream);
    const [first] = await consumer.receive(1, AbortSignal.timeout(10_000));
    expect(first && text(first)).toBe("a");
    await first?.ack();
    await consumer.close(); // checkpoints "a"
    const listed = await broker.browse?.(stream, 10);
    expect(listed?.map((message) => Buffer.from(message.body).toString())).toEqual(["b", "c"]);
    expect(listed?.[0]?.headers).toEqual({ "x-n": "b" });
    // Still there for the next consumer.
    expect((await drain(open().consumer(stream), 2)).map(text)).toEqual(["b", "c"]);
  });

  it("a checkpoint store that does not answer fails receive with a clear error, password hidden", async () => {
    const broker = openKinesisBroker(server.url(`?app=${app}&checkpoints=redis://:hunter2@127.0.0.1:1`));
    opened.push(broker);
    const failure = await broker
      .consumer(server.streamName())
      .receive(10, AbortSignal.timeout(15_000))
      .then(
        () => undefined,
        (error: Error) => error,
      );
    expect(failure?.message).toMatch(/cannot start: cannot reach Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:1/);
    expect(failure?.message).not.toContain("hunter2");
  });
});

/** The first record handed out, not settled. */
async function receiveOne(consumer: Consumer): Promise<Delivery> {
  const signal = AbortSignal.timeout(10_000);
  for (;;) {
    const [delivery] = await consumer.receive(1, signal);
    if (delivery) return delivery;
    if (signal.aborted) throw new Error("nothing received");
  }
}

describe("kinesis records as consumers that are not wqueue see them", () => {
  it("publish: the bare payload, the key as partition key; headers (only) put it in the envelope", async () => {
    const stream = server.streamName();
    const broker = open();
    await broker.publish(stream, [{ body: Buffer.from('{"n":1}') }, { body: Buffer.from('{"n":2}'), key: "order-7" }]);
    await broker.publish(stream, [{ body: Buffer.from('{"n":3}'), key: "order-7", headers: { "x-trace": "t1" } }]);
    const records = await server.readAll(stream);
    expect(records.map((record) => record.data.toString())).toEqual(['{"n":1}', '{"n":2}', expect.stringMatching(/^\{"__wqueue__":1,"b":"/)]);
    expect(records.slice(1).map((record) => record.key)).toEqual(["order-7", "order-7"]);
  });

  it("dead letters: the envelope with the reason by default; ?deadLetters=plain writes the payload as it was", async () => {
    for (const [query, plain] of [
      ["", false],
      ["&deadLetters=plain", true],
    ] as const) {
      const stream = server.streamName();
      const broker = open(query);
      await server.createStream(stream, 1);
      await server.put(stream, [{ data: '{"bad":true}', key: "customer-3" }]);
      const delivery = await receiveOne(broker.consumer(stream));
      await delivery.deadLetter({ reason: "handler-failed", error: { name: "TypeError", message: "boom" } });
      const [dead] = await server.readAll(`${stream}.dead`);
      expect(dead?.key).toBe("customer-3");
      if (plain) {
        expect(dead?.data.toString()).toBe('{"bad":true}');
      } else {
        const envelope = JSON.parse(dead?.data.toString() ?? "{}");
        expect(envelope.__wqueue__).toBe(1);
        expect(Buffer.from(envelope.b, "base64").toString()).toBe('{"bad":true}');
        expect(envelope.h).toMatchObject({ "x-wqueue-dead-reason": "handler-failed", "x-wqueue-dead-queue": stream });
      }
    }
  }, 40_000);
});
