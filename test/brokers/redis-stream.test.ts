import { randomUUID } from "node:crypto";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import type { Broker } from "../../src/brokers/contract.js";
import { openRedisBroker } from "../../src/brokers/redis/open-redis-broker.js";
import { holdingChild, killChild, read, receiveN, text, waitFor } from "./redis-helpers.js";
import { freezableProxy, REDIS_URL, rawRedis, requireRedis } from "./redis-server.js";

requireRedis();

/** This file's brokers use database 13, away from the other files' queues. */
const DB = 13;
const url = (params = "", base = REDIS_URL) => Object.assign(new URL(base), { pathname: `/${DB}`, search: `?mode=stream${params}` }).toString();
const created: string[] = [];
const queueName = () => {
  const queue = `redis-stream-test.${randomUUID().slice(0, 8)}`;
  created.push(queue, `${queue}.dead`, `${queue}:wqueue:delayed`);
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

afterEach(async () => {
  await Promise.all(opened.splice(0).map((broker) => broker.close()));
});
afterAll(async () => {
  await (await redis()).del(...created);
  raw.disconnect();
});

describe("redis stream adapter", () => {
  it("receives a plain XADD: `body` as it is, other fields as JSON when there is no body", async () => {
    const queue = queueName();
    const binary = Buffer.from([0x00, 0xff, 0x10, 0x7b, 0x80]);
    const client = await redis();
    await client.xadd(queue, "*", "body", binary);
    await client.xadd(queue, "*", "n", "5", "kind", "signup");
    await client.xadd(queue, "*", "body", "x", "headers", '{"x-a":"1","bad":2}', "key", "k1", "attempt", "3");
    const got = await receiveN((await open()).consumer(queue), 3);
    expect(Buffer.from(got[0]?.body as Uint8Array)).toEqual(binary);
    expect(JSON.parse(read(got[1] as (typeof got)[number]))).toEqual({ n: "5", kind: "signup" });
    expect(got.map((d) => [d.attempt, d.headers, d.key])).toEqual([
      [1, {}, undefined],
      [1, {}, undefined],
      [3, { "x-a": "1" }, "k1"],
    ]);
    expect(got.map((d) => d.id)).toEqual((await client.xrange(queue, "-", "+")).map(([id]) => id));
  });

  it("publishes the documented fields, and trims to about ?maxlen=", async () => {
    const broker = await open(url("&maxlen=100"));
    const queue = queueName();
    await broker.publish(queue, [{ body: text("plain") }, { body: text("full"), headers: { "x-h": "v" }, key: "k", attempt: 2 }]);
    const entries = await (await redis()).xrange(queue, "-", "+");
    expect(entries.map(([, fields]) => fields)).toEqual([
      ["body", "plain"],
      ["body", "full", "headers", '{"x-h":"v"}', "key", "k", "attempt", "2"],
    ]);
    await broker.publish(queue, Array.from({ length: 3000 }, (_, i) => ({ body: text(`m${i}`) })));
    const length = await (await redis()).xlen(queue);
    expect(length).toBeGreaterThanOrEqual(100);
    expect(length).toBeLessThan(300); // MAXLEN ~ trims whole nodes: about, not exactly, 100
  });

  it("creates the group at 0: entries added before any worker started are delivered", async () => {
    const queue = queueName();
    await (await redis()).xadd(queue, "*", "body", "early");
    const broker = await open(url("&group=late-comers"));
    expect(await broker.backlog?.(queue)).toBe(1);
    const [delivery] = await receiveN(broker.consumer(queue), 1);
    expect(delivery && read(delivery)).toBe("early");
    await delivery?.ack();
    expect(await broker.backlog?.(queue)).toBe(0);
    const groups = (await (await redis()).xinfo("GROUPS", queue)) as unknown[][];
    expect(groups.map((group) => group[1])).toEqual(["late-comers"]);
  });

  it("claims a killed consumer process's entries after claimIdle, with attempt 2", async () => {
    const queue = queueName();
    const fast = url("&claimIdle=1000");
    await (await redis()).xadd(queue, "*", "body", "a");
    await (await redis()).xadd(queue, "*", "body", "b");
    const { child, lines } = holdingChild(fast, queue, 2);
    try {
      await waitFor("the child to hold 2 entries", () => lines().length === 2, 10_000);
      await killChild(child);
      const killedAt = Date.now();
      const got = await receiveN((await open(fast)).consumer(queue), 2, 8000);
      expect(got.map((d) => [read(d), d.attempt, d.id])).toEqual(lines().map((line) => [line.body, 2, line.id]));
      // claimIdle after the child's read, plus a claim period (claimIdle / 2), plus slack.
      expect(Date.now() - killedAt).toBeLessThan(3000);
    } finally {
      await killChild(child);
    }
  }, 20_000);

  it("close releases unsettled entries to the next claim at once, keeping their delivery count", async () => {
    const queue = queueName();
    const first = await open();
    await first.publish(queue, [{ body: text("a") }, { body: text("b") }]);
    const consumer = first.consumer(queue);
    const got = await receiveN(consumer, 2);
    await got[0]?.ack();
    await consumer.close();
    const started = Date.now();
    const [again] = await receiveN((await open()).consumer(queue), 1); // claimIdle is the default 30 s
    expect(again && [read(again), again.attempt, again.id]).toEqual(["b", 2, got[1]?.id]);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it("keeps a delayed nack in Redis after its consumer closed, then adds it as a copy", async () => {
    const queue = queueName();
    const first = await open();
    await first.publish(queue, [{ body: text("later"), headers: { "x-h": "1" }, key: "k" }]);
    const [delivery] = await receiveN(first.consumer(queue), 1);
    const nackedAt = Date.now();
    await delivery?.nack({ delayMs: 400 });
    await first.close();
    expect(await (await redis()).zcard(`${queue}:wqueue:delayed`)).toBe(1);
    const [again] = await receiveN((await open()).consumer(queue), 1);
    expect(Date.now() - nackedAt).toBeGreaterThanOrEqual(390);
    expect(again && [read(again), again.attempt, again.headers, again.key]).toEqual(["later", 2, { "x-h": "1" }, "k"]);
    expect(again?.id).not.toBe(delivery?.id);
  });

  it("dead-letters to the stream <queue>.dead with the reason, acking the original", async () => {
    const broker = await open();
    const queue = queueName();
    await (await redis()).xadd(queue, "*", "body", "poison");
    const [delivery] = await receiveN(broker.consumer(queue), 1);
    await delivery?.deadLetter({ reason: "undecodable" });
    const [dead] = (await broker.browse?.(`${queue}.dead`, 10)) ?? [];
    expect(dead && [Buffer.from(dead.body).toString(), dead.headers["x-wqueue-dead-reason"], dead.headers["x-wqueue-dead-message-id"]]).toEqual([
      "poison",
      "undecodable",
      delivery?.id,
    ]);
    expect(await (await redis()).xpending(queue, "wqueue")).toEqual([0, null, null, null]);
  });

  it("browses what the group has not acked, pending or unread, leaving it in place", async () => {
    const broker = await open();
    const queue = queueName();
    await broker.publish(queue, ["a", "b", "c", "d"].map((b) => ({ body: text(b), headers: { "x-b": b } })));
    const got = await receiveN(broker.consumer(queue), 2);
    await got[0]?.ack(); // "a" is done; "b" is pending; "c" and "d" are unread
    const seen = (await broker.browse?.(queue, 10)) ?? [];
    expect(seen.map((m) => [Buffer.from(m.body).toString(), m.headers["x-b"]])).toEqual([["b", "b"], ["c", "c"], ["d", "d"]]);
    expect(seen[0]?.id).toBe(got[1]?.id);
    expect((await broker.browse?.(queue, 2))?.map((m) => Buffer.from(m.body).toString())).toEqual(["b", "c"]);
    expect(await broker.backlog?.(queue)).toBe(2);
    expect(await (await redis()).xlen(queue)).toBe(4);
  });

  it("loses nothing when a reply is lost on a frozen link: the watchdog reconnects and the entry is claimed", async () => {
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
          .some((line) => line.includes(` name=wqueue-stream-reader-${process.pid} `) && line.includes(" cmd=xreadgroup"));
      await waitFor("the reader to block in XREADGROUP", blocked);
      proxy.freeze();
      // Redis delivers it to the frozen XREADGROUP (pending for this consumer); the reply never arrives.
      await (await redis()).xadd(queue, "*", "body", "during-the-freeze");
      await waitFor("Redis to have delivered it", async () => ((await (await redis()).xpending(queue, "wqueue")) as [number])[0] === 1);
      const got = await receiving;
      expect(got.map((d) => [read(d), d.attempt])).toEqual([["during-the-freeze", 2]]);
      expect(events.some((event) => event.includes("(stream-reader): reconnected"))).toBe(true);
    } finally {
      proxy.close();
      await broker.close();
    }
  }, 20_000);
});
