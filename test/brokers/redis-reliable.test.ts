import { randomUUID } from "node:crypto";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import type { Broker } from "../../src/brokers/contract.js";
import { openRedisBroker } from "../../src/brokers/redis/open-redis-broker.js";
import { holdingChild, killChild, read, readBusyUntil, receiveN, text, waitFor } from "./redis-helpers.js";
import { freezableProxy, REDIS_URL, rawRedis, requireRedis } from "./redis-server.js";

requireRedis();

/** This file's brokers use database 14, away from the other files' queues. */
const DB = 14;
const url = (params = "", base = REDIS_URL) => Object.assign(new URL(base), { pathname: `/${DB}`, search: `?mode=reliable${params}` }).toString();
const created: string[] = [];
const queueName = () => {
  const queue = `redis-reliable-test.${randomUUID().slice(0, 8)}`;
  created.push(queue);
  return queue;
};

const opened: Broker[] = [];
async function open(brokerUrl = url()): Promise<Broker> {
  const broker = openRedisBroker(brokerUrl);
  opened.push(broker);
  await broker.connect();
  return broker;
}

const raw = rawRedis();
async function redis() {
  if (raw.status === "wait") await raw.connect();
  await raw.select(DB);
  return raw;
}
/** Every key of a queue: the list, its dead letters, and the `<queue>:wqueue:*` bookkeeping. */
const keysOf = async (queue: string) => (await redis()).keys(`${queue}*`);
const processingLists = async (queue: string) => (await redis()).keys(`${queue}:wqueue:processing:*`);

afterEach(async () => {
  await Promise.all(opened.splice(0).map((broker) => broker.close()));
});
afterAll(async () => {
  const client = await redis();
  for (const queue of created) {
    const keys = await keysOf(queue);
    if (keys.length > 0) await client.del(...keys);
  }
  raw.disconnect();
});

describe("redis reliable adapter", () => {
  it("receives a plain RPUSH as its raw bytes, and keeps it in its processing list until acked", async () => {
    const broker = await open();
    const queue = queueName();
    const binary = Buffer.from([0x00, 0xff, 0x10, 0x7b, 0x80]);
    const json = Buffer.from('{"n":5}');
    await (await redis()).rpush(queue, binary, json);
    const got = await receiveN(broker.consumer(queue), 2);
    expect(got.map((d) => Buffer.from(d.body))).toEqual([binary, json]);
    expect(got.map((d) => [d.attempt, d.headers, d.key, d.queue])).toEqual([
      [1, {}, undefined, queue],
      [1, {}, undefined, queue],
    ]);
    expect(got[0]?.id).not.toBe(got[1]?.id);
    const [processing] = await processingLists(queue);
    expect(await (await redis()).llen(processing as string)).toBe(2);
    expect(await (await redis()).llen(queue)).toBe(0);
    await Promise.all(got.map((d) => d.ack()));
    expect(await (await redis()).llen(processing as string)).toBe(0);
  });

  it("publishes a plain message as raw bytes a plain consumer can LPOP", async () => {
    const broker = await open();
    const queue = queueName();
    await broker.publish(queue, [{ body: text("plain") }]);
    expect(await (await redis()).lpop(queue)).toBe("plain");
  });

  it("with ?plain=true publishes headers and key as the body alone, for plain consumers", async () => {
    const queue = queueName();
    await (await open(url("&plain=true"))).publish(queue, [{ body: text("body only"), headers: { traceparent: "00-ab-cd-01" }, key: "k" }]);
    expect(await (await redis()).lrange(queue, 0, -1)).toEqual(["body only"]);
  });

  it("counts the attempts of identical payloads apart, and keeps a published start attempt", async () => {
    const broker = await open();
    const queue = queueName();
    await (await redis()).rpush(queue, "same", "same", "same");
    await broker.publish(queue, [{ body: text("retry"), headers: { "x-h": "1" }, key: "k", attempt: 3 }]);
    const consumer = broker.consumer(queue);
    const first = await receiveN(consumer, 4);
    expect(first.map((d) => [read(d), d.attempt])).toEqual([["same", 1], ["same", 1], ["same", 1], ["retry", 3]]);
    await Promise.all(first.map((d) => d.nack()));
    const second = await receiveN(consumer, 4);
    expect(second.map((d) => [read(d), d.attempt])).toEqual([["same", 2], ["same", 2], ["same", 2], ["retry", 4]]);
    expect(second[3]?.headers).toEqual({ "x-h": "1" });
    expect(second[3]?.key).toBe("k");
    expect(new Set(second.map((d) => d.id)).size).toBe(4);
  });

  it("close hands unsettled messages back to the head in their order, and unregisters", async () => {
    const broker = await open();
    const queue = queueName();
    await broker.publish(queue, ["m0", "m1", "m2", "m3"].map((b) => ({ body: text(b) })));
    const consumer = broker.consumer(queue);
    const got = await receiveN(consumer, 3);
    await got[1]?.ack();
    await (await redis()).rpush(queue, "m4");
    await consumer.close();
    expect(await processingLists(queue)).toEqual([]);
    expect(await (await redis()).scard(`${queue}:wqueue:consumers`)).toBe(0);
    expect(await (await redis()).keys(`${queue}:wqueue:consumer:*`)).toEqual([]);
    const again = await receiveN((await open()).consumer(queue), 4);
    expect(again.map((d) => [read(d), d.attempt])).toEqual([["m0", 2], ["m2", 2], ["m3", 1], ["m4", 1]]);
  });

  it("hands a killed consumer process's messages back through the reaper, attempt 2, in order", async () => {
    const queue = queueName();
    const fast = url("&heartbeatTtl=1000");
    await (await redis()).rpush(queue, "a", "b", "c", "d");
    const { child, lines } = holdingChild(fast, queue, 3);
    try {
      await waitFor("the child to hold 3 messages", () => lines().length === 3, 10_000);
      expect(lines().map((line) => [line.body, line.attempt])).toEqual([["a", 1], ["b", 1], ["c", 1]]);
      expect(await processingLists(queue)).toHaveLength(1);
      await killChild(child);
      const consumer = (await open(fast)).consumer(queue);
      const got = await receiveN(consumer, 4, 8000);
      // "d" was waiting in the queue, so it comes first; the reaper puts the dead one's three back at the head, in order.
      expect(got.map((d) => [read(d), d.attempt])).toEqual([["d", 1], ["a", 2], ["b", 2], ["c", 2]]);
      expect(got.map((d) => d.id).slice(1)).toEqual(lines().map((line) => line.id));
      // The 8 s wait above is shorter than the default TTL (10 s): they came back by the URL's 1 s TTL.
      expect(await (await redis()).smembers(`${queue}:wqueue:consumers`)).toHaveLength(1); // only the live one
    } finally {
      await killChild(child);
    }
  }, 20_000);

  it("hands a killed consumer's messages back while the queue stays busy: claims beside the rounds leave room for the reaper", async () => {
    // A busy queue's claims go out beside the reader's rounds; reaping is the rounds' work. Were a
    // busy queue's claims never to yield to a due reap, the dead consumer's messages would wait
    // until the queue ran dry.
    const queue = queueName();
    const fast = url("&heartbeatTtl=1000");
    await (await redis()).rpush(queue, "held-1", "held-2");
    const { child, lines } = holdingChild(fast, queue, 2);
    try {
      await waitFor("the child to hold 2 messages", () => lines().length === 2, 10_000);
      await killChild(child);
      const total = 5000;
      await (await redis()).rpush(queue, ...Array.from({ length: total }, (_, n) => `n${n}`));
      const consumer = (await open(fast)).consumer(queue);
      const bodies = await readBusyUntil(consumer, "held", 2);
      const unread = total - bodies.filter((body) => body.startsWith("n")).length;
      expect(bodies.filter((body) => body.startsWith("held"))).toEqual(["held-1", "held-2"]);
      expect(unread, "messages still unread when the reaped ones came").toBeGreaterThan(0);
    } finally {
      await killChild(child);
    }
  }, 40_000);

  it("sends the acks of a turn that ends in process.exit(1) before the process is gone", async () => {
    const queue = queueName();
    await (await redis()).rpush(queue, "a", "b", "c");
    const { child } = holdingChild(url(), queue, 3, "ack-exit");
    const code = await new Promise((resolve) => child.once("exit", resolve));
    expect(code).toBe(1);
    expect(await processingLists(queue)).toEqual([]);
    expect(await (await redis()).llen(queue)).toBe(0);
  }, 20_000);

  it("keeps a delayed nack in Redis after its consumer closed", async () => {
    const queue = queueName();
    const first = await open();
    await first.publish(queue, [{ body: text("later"), headers: { "x-h": "1" } }]);
    const [delivery] = await receiveN(first.consumer(queue), 1);
    const nackedAt = Date.now();
    await delivery?.nack({ delayMs: 400 });
    await first.close();
    expect(await (await redis()).zcard(`${queue}:wqueue:delayed`)).toBe(1);
    const [again] = await receiveN((await open()).consumer(queue), 1);
    expect(Date.now() - nackedAt).toBeGreaterThanOrEqual(390);
    expect(again && [read(again), again.attempt, again.headers]).toEqual(["later", 2, { "x-h": "1" }]);
  });

  it("dead-letters atomically: gone from processing, in <queue>.dead with the reason", async () => {
    const broker = await open();
    const queue = queueName();
    await (await redis()).rpush(queue, "poison");
    const [delivery] = await receiveN(broker.consumer(queue), 1);
    await delivery?.deadLetter({ reason: "handler-failed", error: { name: "Error", message: "boom" } });
    expect(await (await redis()).llen((await processingLists(queue))[0] as string)).toBe(0);
    const [dead] = await broker.browse?.(`${queue}.dead`, 10) ?? [];
    expect(dead && [Buffer.from(dead.body).toString(), dead.headers["x-wqueue-dead-reason"], dead.headers["x-wqueue-dead-attempts"]]).toEqual(["poison", "handler-failed", "1"]);
    expect(dead?.headers["x-wqueue-dead-message-id"]).toBe(delivery?.id);
  });

  it("loses nothing when a reply is lost on a frozen link: the watchdog reconnects and resync hands it back", async () => {
    const proxy = await freezableProxy();
    const events: string[] = [];
    const broker = openRedisBroker(url("", proxy.url), (level, message) => events.push(`${level} ${message}`));
    try {
      await broker.connect();
      const queue = queueName();
      const receiving = broker.consumer(queue).receive(1, AbortSignal.timeout(15_000));
      const blocked = async () =>
        ((await (await redis()).client("LIST")) as string)
          .split("\n")
          .some((line) => line.includes(` name=wqueue-reliable-reader-${process.pid} `) && line.includes(" cmd=blmove"));
      await waitFor("the reader to block in BLMOVE", blocked);
      proxy.freeze();
      // Redis moves it into the processing list for the frozen BLMOVE; the reply never arrives.
      await (await redis()).rpush(queue, "during-the-freeze");
      await waitFor("Redis to have moved it", async () => (await (await redis()).llen(queue)) === 0);
      const got = await receiving;
      expect(got.map(read)).toEqual(["during-the-freeze"]);
      expect(events.some((event) => event.includes("(reliable-reader): reconnected"))).toBe(true);
      expect(events.some((event) => event.includes("whose reply was lost back to"))).toBe(true);
    } finally {
      proxy.close();
      await broker.close();
    }
  }, 20_000);
});
