import { randomUUID } from "node:crypto";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import type { Broker, Delivery } from "../../src/brokers/contract.js";
import { openRedisBroker } from "../../src/brokers/redis/open-redis-broker.js";
import type { RedisStreamBroker } from "../../src/brokers/redis/RedisStreamBroker.js";
import { holdingChild, killChild, read, readBusyUntil, receiveN, text, waitFor } from "./redis-helpers.js";
import { freezableProxy, REDIS_URL, rawRedis, requireRedis } from "./redis-server.js";

requireRedis();

/** This file's brokers use database 13, away from the other files' queues. */
const DB = 13;
const url = (params = "", base = REDIS_URL) => Object.assign(new URL(base), { pathname: `/${DB}`, search: `?mode=stream${params}` }).toString();
const created: string[] = [];
const queueName = () => {
  const queue = `redis-stream-test.${randomUUID().slice(0, 8)}`;
  created.push(queue, `${queue}.dead`, `${queue}:wqueue:delayed`, `${queue}:wqueue:retry:wqueue`);
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
      // Waits up to 15 s, less than the default claimIdle (30 s): claimed by the URL's 1 s.
      const got = await receiveN((await open(fast)).consumer(queue), 2, 15_000);
      expect(got.map((d) => [read(d), d.attempt, d.id])).toEqual(lines().map((line) => [line.body, 2, line.id]));
    } finally {
      await killChild(child);
    }
  }, 20_000);

  it("claims a killed consumer's entries while the stream stays busy: reads beside the rounds leave room for the claim", async () => {
    // A busy stream's reads go out beside the reader's rounds; claims are the rounds' work. Were a
    // busy stream's reads never to yield to a due claim, the killed consumer's entries would wait
    // until the stream ran dry, not claimIdle.
    const queue = queueName();
    const claimIdle = 500;
    const fast = url(`&claimIdle=${claimIdle}`);
    for (const body of ["held-1", "held-2"]) await (await redis()).xadd(queue, "*", "body", body);
    const { child, lines } = holdingChild(fast, queue, 2);
    try {
      await waitFor("the child to hold 2 entries", () => lines().length === 2, 10_000);
      await killChild(child);
      const writer = (await redis()).pipeline();
      const total = 4000;
      for (let n = 0; n < total; n += 1) writer.xadd(queue, "*", "body", `n${n}`);
      await writer.exec();
      const consumer = (await open(fast)).consumer(queue);
      const bodies = await readBusyUntil(consumer, "held", 2);
      const unread = total - bodies.filter((body) => body.startsWith("n")).length;
      expect(bodies.filter((body) => body.startsWith("held")).sort()).toEqual(["held-1", "held-2"]);
      expect(unread, "entries still unread when the claimed ones came").toBeGreaterThan(0);
    } finally {
      await killChild(child);
    }
  }, 40_000);

  it("sends the acks of a turn that ends in process.exit(1) before the process is gone", async () => {
    const queue = queueName();
    for (const body of ["a", "b", "c"]) await (await redis()).xadd(queue, "*", "body", body);
    const { child } = holdingChild(url(), queue, 3, "ack-exit");
    const code = await new Promise((resolve) => child.once("exit", resolve));
    expect(code).toBe(1);
    expect(await (await redis()).xpending(queue, "wqueue")).toEqual([0, null, null, null]);
  }, 20_000);

  it("close releases unsettled entries to the next claim at once, keeping their delivery count", async () => {
    const queue = queueName();
    const first = await open();
    await first.publish(queue, [{ body: text("a") }, { body: text("b") }]);
    const consumer = first.consumer(queue);
    const got = await receiveN(consumer, 2);
    await got[0]?.ack();
    await consumer.close();
    // claimIdle is the default 30 s: back within the 15 s wait means the close released it, not a claim.
    const [again] = await receiveN((await open()).consumer(queue), 1, 15_000);
    expect(again && [read(again), again.attempt, again.id]).toEqual(["b", 2, got[1]?.id]);
  });

  it("keeps a delayed nack in Redis after its consumer closed, then claims the same entry back when due", async () => {
    const queue = queueName();
    const first = await open();
    await first.publish(queue, [{ body: text("later"), headers: { "x-h": "1" }, key: "k" }]);
    const [delivery] = await receiveN(first.consumer(queue), 1);
    const nackedAt = Date.now();
    await delivery?.nack({ delayMs: 400 });
    await first.close();
    expect(await (await redis()).zcard(`${queue}:wqueue:retry:wqueue`)).toBe(1);
    const [again] = await receiveN((await open()).consumer(queue), 1);
    expect(Date.now() - nackedAt).toBeGreaterThanOrEqual(390);
    expect(again && [read(again), again.attempt, again.headers, again.key, again.id]).toEqual(["later", 2, { "x-h": "1" }, "k", delivery?.id]);
    expect(await (await redis()).xlen(queue)).toBe(1);
  });

  it("retries without copies: another group of the stream sees each produced entry once, a body-less entry keeps its shape", async () => {
    const queue = queueName();
    const broker = await open();
    await broker.publish(queue, ["a", "b", "c"].map((b) => ({ body: text(b) })));
    await (await redis()).xadd(queue, "*", "n", "5", "kind", "signup"); // a producer that knows nothing of wqueue
    const consumer = broker.consumer(queue);
    const first = await receiveN(consumer, 4);
    await Promise.all(first.map((d, i) => d.nack({ delayMs: i % 2 === 0 ? 0 : 50 })));
    const second = await receiveN(consumer, 4);
    const byId = (ds: typeof first) => [...ds].sort((x, y) => x.id.localeCompare(y.id)).map((d) => [d.id, read(d), d.attempt, d.headers, d.key]);
    expect(byId(second)).toEqual(byId(first).map(([id, body, , headers, key]) => [id, body, 2, headers, key]));
    await Promise.all(second.map((d) => d.ack()));
    const client = await redis();
    await client.xgroup("CREATE", queue, "othersvc", "0");
    const seen = (await client.xreadgroup("GROUP", "othersvc", "reader", "COUNT", 100, "STREAMS", queue, ">")) as [string, [string, string[]][]][];
    expect(seen[0]?.[1].map(([id]) => id)).toEqual(first.map((d) => d.id));
    expect(await client.xpending(queue, "wqueue")).toEqual([0, null, null, null]);
    expect(await client.zcard(`${queue}:wqueue:retry:wqueue`)).toBe(0);
  });

  it("keeps a running entry owned past claimIdle while extend() renews it, and lets a claim take it when not renewed", async () => {
    const queue = queueName();
    const claimIdle = 600;
    const leased = url(`&claimIdle=${claimIdle}`);
    const owner = await open(leased);
    const otherBroker = (await open(leased)) as RedisStreamBroker;
    const other = otherBroker.consumer(queue);
    await owner.publish(queue, [{ body: text("long") }, { body: text("left alone") }]);
    const ownerConsumer = owner.consumer(queue);
    expect(ownerConsumer.leaseMs).toBe(claimIdle);
    const [running, unrenewed] = await receiveN(ownerConsumer, 2);
    const renewing = setInterval(() => void ownerConsumer.extend?.([running as Delivery]), claimIdle / 3);
    try {
      // A second consumer's claims find only the entry nobody renews...
      const claimed = await receiveN(other, 1, 3 * claimIdle);
      expect(claimed.map((d) => [read(d), d.attempt])).toEqual([["left alone", 2]]);
      // ...and an extension never takes back an entry another consumer claimed.
      await ownerConsumer.extend?.([unrenewed as Delivery]);
      const owners = async () => (await (await redis()).xpending(queue, "wqueue", "-", "+", 10)) as [string, string][];
      expect((await owners()).map(([id, name]) => [id, name])).toEqual([
        [running?.id, (owner as RedisStreamBroker).consumerName],
        [unrenewed?.id, otherBroker.consumerName],
      ]);
      await claimed[0]?.ack();
      // For three leases more, the renewed entry stays with its owner, whose ack then works.
      expect(await other.receive(1, AbortSignal.timeout(3 * claimIdle))).toEqual([]);
      await running?.ack();
      expect(await owners()).toEqual([]);
    } finally {
      clearInterval(renewing);
    }
  }, 20_000);

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
