import { randomUUID } from "node:crypto";
import { Kafka, logLevel, Partitioners } from "kafkajs";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Broker, Consumer, Delivery } from "../../src/brokers/contract.js";
import { decodeDeliveries, encodeDeliveries } from "../../src/brokers/delivery-counts.js";
import { parseKafkaUrl } from "../../src/brokers/kafka/kafka-url.js";
import { type KafkaEventLog, openKafkaBroker } from "../../src/brokers/kafka/open-kafka-broker.js";
import { BrokerUnreachableError, ConfigError } from "../../src/errors.js";
import { waitFor } from "../helpers.js";
import { ensureKafka, KAFKA_URL } from "../setup/ensure-kafka.js";

beforeAll(() => ensureKafka(), 300_000);

/** Every test has its own topics and its own consumer group. */
const names = () => {
  const id = randomUUID().slice(0, 8);
  return { topic: `kafka-test.${id}`, group: `kafka-test-${id}` };
};
const text = (value: string) => new TextEncoder().encode(value);
const read = (delivery: Delivery) => Buffer.from(delivery.body).toString();

const opened: Broker[] = [];
async function open(url: string, onEvent?: KafkaEventLog): Promise<Broker> {
  const broker = openKafkaBroker(url, onEvent);
  opened.push(broker);
  await broker.connect();
  return broker;
}
afterEach(async () => {
  await Promise.all(opened.splice(0).map((broker) => broker.close()));
});

const raw = new Kafka({ clientId: "kafka-test", brokers: ["127.0.0.1:9092"], logLevel: logLevel.NOTHING });
const admin = raw.admin();
beforeAll(() => admin.connect(), 300_000);
afterAll(() => admin.disconnect());

/** Receives until `count` deliveries arrived or `timeoutMs` passed. */
async function receiveN(consumer: Consumer, count: number, timeoutMs = 10_000): Promise<Delivery[]> {
  const signal = AbortSignal.timeout(timeoutMs);
  const got: Delivery[] = [];
  while (got.length < count && !signal.aborted) got.push(...(await consumer.receive(count - got.length, signal)));
  return got;
}

describe("kafka adapter", () => {
  it("commits only below the lowest unfinished offset: an unacked message comes back", async () => {
    const { topic, group } = names();
    const url = `${KAFKA_URL}?group=${group}`;
    const first = await open(url);
    await first.publish(topic, ["m0", "m1", "m2"].map((body) => ({ body: text(body) })));
    const consumer = first.consumer(topic);
    const got = await receiveN(consumer, 3);
    expect(got.map((d) => d.id)).toEqual(["0:0", "0:1", "0:2"]);
    await got[1]?.ack();
    await got[2]?.ack(); // offsets 1 and 2 done, 0 still running
    await consumer.close(); // crash-equivalent for offset 0: never settled
    const [committed] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
    expect(committed?.partitions[0]?.offset).toBe("0");

    const again = await receiveN((await open(url)).consumer(topic), 1);
    expect(again[0] && read(again[0])).toBe("m0"); // 1 and 2 may follow: at-least-once
    expect(again[0]?.attempt).toBe(2);
    await again[0]?.ack();
  });

  it("receives a plain Kafka producer's record with its key, headers and partition", async () => {
    const { topic, group } = names();
    const broker = await open(`${KAFKA_URL}?group=${group}`);
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] });
    const producer = raw.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    await producer.send({
      topic,
      messages: [{ key: "order-7", value: '{"total":12}', headers: { source: "billing", trace: Buffer.from("abc") } }],
    });
    await producer.disconnect();
    const [delivery] = await receiveN(broker.consumer(topic), 1);
    expect(delivery && read(delivery)).toBe('{"total":12}');
    expect(delivery?.key).toBe("order-7");
    expect(delivery?.headers).toEqual({ source: "billing", trace: "abc" });
    expect(delivery?.partition).toBe("0");
    expect(delivery?.attempt).toBe(1);
    await delivery?.ack();
  });

  it("keeps wqueue's attempt header off the handler's headers and starts at it", async () => {
    const { topic, group } = names();
    const broker = await open(`${KAFKA_URL}?group=${group}`);
    await broker.publish(topic, [{ body: text("retry"), headers: { a: "1" }, attempt: 3 }]);
    const [delivery] = await receiveN(broker.consumer(topic), 1);
    expect(delivery?.attempt).toBe(3);
    expect(delivery?.headers).toEqual({ a: "1" });
    await delivery?.ack();
  });

  it("creates topics with the URL's partition count", async () => {
    const { topic, group } = names();
    const broker = await open(`${KAFKA_URL}?group=${group}&partitions=3`);
    await broker.publish(topic, [{ body: text("x") }]);
    const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
    expect(metadata.topics[0]?.partitions).toHaveLength(3);
  });

  it("pauses fetching when the buffer is full and resumes as it drains: nothing lost, nothing out of order", async () => {
    const { topic, group } = names();
    const broker = await open(`${KAFKA_URL}?group=${group}`);
    // 10 MB in 20 KB records: the buffer passes maxInFlight and 4 MB, so fetching pauses and resumes.
    const filler = "x".repeat(20_000);
    for (let start = 0; start < 500; start += 50) {
      await broker.publish(topic, Array.from({ length: 50 }, (_, i) => ({ body: text(`${start + i} ${filler}`) })));
    }
    const consumer = broker.consumer(topic, { maxInFlight: 10 });
    const signal = AbortSignal.timeout(30_000);
    const seen: number[] = [];
    while (seen.length < 500 && !signal.aborted) {
      for (const delivery of await consumer.receive(5, signal)) {
        seen.push(Number(read(delivery).split(" ")[0]));
        await new Promise<void>((resolve) => setImmediate(resolve)); // a handler's turn of the event loop
        await delivery.ack();
      }
    }
    expect(seen).toEqual(Array.from({ length: 500 }, (_, i) => i));
  }, 60_000);

  it(
    "keeps per-key order over 8 partitions while a second consumer joins and leaves: 0 lost",
    async () => {
      const { topic, group } = names();
      const url = `${KAFKA_URL}?group=${group}&partitions=8`;
      const keys = 40;
      const perKey = 500; // 20,000 messages
      const publisher = await open(url);
      for (let start = 0; start < keys * perKey; start += 2000) {
        const batch = Array.from({ length: 2000 }, (_, i) => {
          const n = start + i;
          return { key: `k${n % keys}`, body: text(String(Math.floor(n / keys))) };
        });
        await publisher.publish(topic, batch);
      }

      // The highest sequence number started per key, over both consumers. A message may start only
      // when its predecessor has started (by either consumer): redeliveries go back, never skip.
      const highest = new Map<string, number>();
      const violations: string[] = [];
      const handled = { a: 0, b: 0 };
      // A stalls after 4,000 messages until it holds its rejoin for B's join (it rejoins only once
      // its running handlers are done: see kafka-rebalance.test), so B joins while work remains.
      let aHolds = false;
      let releaseA = () => {};
      const gateA = new Promise<void>((resolve) => {
        releaseA = resolve;
      });
      const handle = async (delivery: Delivery, who: "a" | "b") => {
        if (who === "a" && handled.a >= 4000) await gateA;
        const key = delivery.key as string;
        const seq = Number(read(delivery));
        const top = highest.get(key) ?? -1;
        if (seq > top + 1) violations.push(`${key}: ${seq} started after ${top} (partition ${delivery.partition})`);
        highest.set(key, Math.max(top, seq));
        await new Promise<void>((resolve) => setImmediate(resolve));
        await delivery.ack();
        handled[who] += 1;
      };

      /** Drives one consumer as the dispatcher would: one message per partition at a time. */
      const drive = (consumer: Consumer, stop: AbortSignal, who: "a" | "b") =>
        (async () => {
          const chains = new Map<string, Promise<void>>();
          let inFlight = 0;
          let slotFreed: (() => void) | undefined;
          while (!stop.aborted) {
            if (inFlight >= 200) {
              await new Promise<void>((resolve) => {
                slotFreed = resolve;
              });
              continue;
            }
            const deliveries = await consumer.receive(Math.min(100, 200 - inFlight), stop);
            if (deliveries.length === 0) break; // aborted, or the consumer was closed
            for (const delivery of deliveries) {
              inFlight += 1;
              const partition = delivery.partition as string;
              const chain = (chains.get(partition) ?? Promise.resolve()).then(() => handle(delivery, who));
              chains.set(partition, chain);
              void chain.finally(() => {
                inFlight -= 1;
                slotFreed?.();
              });
            }
          }
          await Promise.all(chains.values());
        })();
      const missing = () => [...Array(keys).keys()].filter((k) => highest.get(`k${k}`) !== perKey - 1);

      const stopA = new AbortController();
      const stopB = new AbortController();
      try {
        const a = (await open(url, (_level, message) => {
          aHolds ||= message.includes("rejoining once");
        })).consumer(topic, { maxInFlight: 200 });
        const runA = drive(a, stopA.signal, "a");
        await waitFor("consumer A to handle 4,000 messages", () => handled.a >= 4000, 30_000);

        const brokerB = await open(url);
        const runB = drive(brokerB.consumer(topic, { maxInFlight: 200 }), stopB.signal, "b");
        await waitFor("A to hold its rejoin for B's join", () => aHolds, 30_000);
        releaseA();
        await waitFor(() => `consumer B to be given partitions and handle 1,000 messages (${handled.a} + ${handled.b})`, () => handled.b >= 1000, 30_000);
        expect(missing().length).toBeGreaterThan(0); // B joined during the run, not after it
        stopB.abort();
        await runB;
        await brokerB.close(); // leaves the group: A gets B's partitions back

        await waitFor(() => `every message (handled ${handled.a} + ${handled.b}; keys not done: ${missing().length})`, () => missing().length === 0, 60_000);
        stopA.abort();
        await runA;
      } finally {
        releaseA();
        stopA.abort();
        stopB.abort();
      }
      expect(violations).toEqual([]);
      // More than 20,000 means redeliveries after the rebalances (at-least-once).
      expect(handled.a + handled.b).toBeGreaterThanOrEqual(keys * perKey);
    },
    120_000,
  );

  it("browses what the group has not consumed, without consuming it (dead-letters list)", async () => {
    const { topic, group } = names();
    const url = `${KAFKA_URL}?group=${group}`;
    const broker = await open(url);
    expect(await broker.browse?.(topic, 10)).toEqual([]); // no such topic yet
    await broker.publish(
      topic,
      ["m0", "m1", "m2", "m3", "m4"].map((body, i) => ({ body: text(body), key: `k${i}`, headers: { n: String(i) } })),
    );
    const consumer = broker.consumer(topic);
    for (const delivery of await receiveN(consumer, 2)) await delivery.ack();
    await consumer.close(); // commits offset 2

    const seen = (await broker.browse?.(topic, 10)) ?? [];
    expect(seen.map((m) => [m.id, read(m as unknown as Delivery), m.key, m.headers])).toEqual([
      ["0:2", "m2", "k2", { n: "2" }],
      ["0:3", "m3", "k3", { n: "3" }],
      ["0:4", "m4", "k4", { n: "4" }],
    ]);
    expect((await broker.browse?.(topic, 2))?.map((m) => m.id)).toEqual(["0:2", "0:3"]);
    const [committed] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
    expect(committed?.partitions[0]?.offset).toBe("2");
    const [next] = await receiveN((await open(url)).consumer(topic), 1);
    expect(next && read(next)).toBe("m2");
    const groups = (await admin.listGroups()).groups.map((g) => g.groupId);
    expect(groups.filter((id) => id.startsWith("wqueue-browse-"))).toEqual([]); // the reader's group is gone
  }, 60_000);

  it("connect() rejects with BrokerUnreachableError when nothing listens", async () => {
    const broker = openKafkaBroker("kafka://127.0.0.1:9?group=nobody");
    opened.push(broker);
    const error = await broker.connect().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BrokerUnreachableError);
    expect((error as Error).message).toContain("kafka://127.0.0.1:9?group=nobody");
  });

  // The adapter's own handshake deadline ends it, with its own line. This test's timeout (25 s) is
  // under kafkajs's own request timeout (30 s): a probe without that deadline fails it.
  it("fails with one line on a port where something that is not Kafka listens", async () => {
    const broker = openKafkaBroker("kafka://127.0.0.1:6379?group=nobody"); // the test Redis: accepts, never answers Kafka
    opened.push(broker);
    const error = await broker.connect().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BrokerUnreachableError);
    expect((error as Error).message).toMatch(/^cannot reach Kafka at kafka:\/\/127\.0\.0\.1:6379\?group=nobody: .*is a Kafka broker listening there\?\)$/);
    expect((error as Error).message).not.toContain("\n");
  }, 25_000);

  it("refuses an invalid topic name at once, as a ConfigError naming it", async () => {
    const broker = await open(`${KAFKA_URL}?group=${names().group}`);
    expect(() => broker.consumer("orders/new")).toThrow(ConfigError);
    expect(() => broker.consumer("orders/new")).toThrow(/"orders\/new" is not a valid Kafka topic name/);
    await expect(broker.publish("a b", [{ body: text("x") }])).rejects.toThrow(ConfigError);
    expect(() => broker.consumer("x".repeat(250))).toThrow(ConfigError);
  });

  it("skips a tombstone (null value): not handed out, not dead-lettered, committed past", async () => {
    const { topic, group } = names();
    const broker = await open(`${KAFKA_URL}?group=${group}`);
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
    const producer = raw.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    await producer.send({ topic, messages: [{ key: "k", value: "before" }, { key: "k", value: null }, { key: "k", value: "after" }] });
    await producer.disconnect();
    const consumer = broker.consumer(topic);
    const got = await receiveN(consumer, 3, 4000);
    expect(got.map(read)).toEqual(["before", "after"]);
    for (const delivery of got) await delivery.ack();
    await consumer.close();
    const [committed] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
    expect(committed?.partitions[0]?.offset).toBe("3");
  });

  it("logs a routine rebalance (a member joins, then leaves) at info, not as a warning or error", async () => {
    const { topic, group } = names();
    const url = `${KAFKA_URL}?group=${group}&partitions=4`;
    const lines: { level: string; message: string }[] = [];
    const logged = (level: string, message: string) => lines.push({ level, message });
    const a = openKafkaBroker(url, logged);
    const b = openKafkaBroker(url, logged);
    opened.push(a, b);
    await a.publish(topic, Array.from({ length: 40 }, (_, i) => ({ body: text(String(i)), key: String(i) })));
    const stop = new AbortController();
    const drive = async (consumer: Consumer) => {
      for (;;) {
        const deliveries = await consumer.receive(10, stop.signal);
        if (deliveries.length === 0) return; // stopped, or the consumer closed
        for (const delivery of deliveries) await delivery.ack();
      }
    };
    const runA = drive(a.consumer(topic));
    await waitFor("A alone in the group", async () => (await admin.describeGroups([group])).groups[0]?.state === "Stable", 30_000);
    const bConsumer = b.consumer(topic);
    const runB = drive(bConsumer);
    await waitFor("a rebalance noticed", () => lines.some((line) => /rebalanc/i.test(line.message)), 30_000);
    await waitFor("both in the group", async () => (await admin.describeGroups([group])).groups[0]?.members.length === 2, 30_000);
    await bConsumer.close();
    await waitFor("A alone again", async () => (await admin.describeGroups([group])).groups[0]?.members.length === 1, 30_000);
    stop.abort();
    await Promise.all([runA, runB]);
    expect(lines.filter((line) => line.level === "error" || line.level === "warn")).toEqual([]);
    expect(lines.some((line) => line.level === "info" && /rebalanc/i.test(line.message))).toBe(true);
  }, 90_000);

  it("parses and checks kafka URLs", () => {
    expect(parseKafkaUrl("kafka://a:9092,b:9093")).toMatchObject({ brokers: ["a:9092", "b:9093"], group: "wqueue", partitions: 1, rebalanceTimeoutMs: 300_000 });
    expect(parseKafkaUrl("kafka://a:1/?group=g.1&partitions=8&rebalanceTimeout=900000")).toMatchObject({ group: "g.1", partitions: 8, rebalanceTimeoutMs: 900_000 });
    expect(() => parseKafkaUrl("kafka://a:1?rebalanceTimeout=5s")).toThrow(/rebalanceTimeout=5s must be whole milliseconds/);
    expect(() => parseKafkaUrl("kafka://a:1?rebalanceTimeout=500")).toThrow(ConfigError);
    expect(() => parseKafkaUrl("kafka://a")).toThrow(ConfigError);
    expect(() => parseKafkaUrl("kafka://a:1?partitions=0")).toThrow(ConfigError);
    expect(() => parseKafkaUrl("kafka://a:1?grop=x")).toThrow(/unknown parameter grop/);
    expect(() => parseKafkaUrl("kafka://u:secret@a:1")).toThrow(/kafka:\/\/u:\*\*\*@a:1/);
  });

  it("carries delivery counts in commit metadata, lowest offsets first within the size limit", () => {
    expect(encodeDeliveries(10, [])).toBeNull();
    const text = encodeDeliveries(10, [
      [10, 1],
      [13, 2],
    ]);
    expect(text).toBe("wq1:0.1,3.2");
    expect([...decodeDeliveries(10, text)]).toEqual([
      [10, 1],
      [13, 2],
    ]);
    expect(decodeDeliveries(5, "written by another client").size).toBe(0);
    const many = encodeDeliveries(0, Array.from({ length: 5000 }, (_, i) => [i, (i % 2) + 1] as const)) as string;
    expect(many.length).toBeLessThanOrEqual(3000);
    expect(decodeDeliveries(0, many).has(0)).toBe(true);
    // A run of consecutive records with one count is a range (a write-ahead window stays small).
    const run = encodeDeliveries(100, [
      [100, 2],
      [101, 1],
      [102, 1],
      [103, 1],
      [105, 1],
    ]);
    expect(run).toBe("wq1:0.2,1-3.1,5.1");
    expect([...decodeDeliveries(100, run)]).toEqual([
      [100, 2],
      [101, 1],
      [102, 1],
      [103, 1],
      [105, 1],
    ]);
    expect(decodeDeliveries(0, "wq1:0-4096.1").size).toBe(4097);
    expect(decodeDeliveries(0, "wq1:0-99999999.1,3-1.1").size).toBe(0); // absurd or reversed ranges are ignored
  });
});
