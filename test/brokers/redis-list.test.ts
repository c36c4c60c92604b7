import { randomUUID } from "node:crypto";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import type { Broker, Delivery } from "../../src/brokers/contract.js";
import { openRedisBroker } from "../../src/brokers/redis/open-redis-broker.js";
import { BrokerUnreachableError, ConfigError } from "../../src/errors.js";
import { countCommands, receiveN } from "./redis-helpers.js";
import { startPrivateRedis } from "./redis-private-server.js";
import { freezableProxy, REDIS_URL, rawRedis, requireRedis } from "./redis-server.js";

requireRedis();

/** This file's brokers use database 15, which also exercises the `/db` part of the URL. */
const DB = 15;
const url = Object.assign(new URL(REDIS_URL), { pathname: `/${DB}`, search: "?mode=list" }).toString();
const created: string[] = [];
const queueName = () => {
  const queue = `redis-list-test.${randomUUID().slice(0, 8)}`;
  created.push(queue, `${queue}.dead`, `${queue}:wqueue:delayed`);
  return queue;
};
const text = (value: string) => new TextEncoder().encode(value);
const read = (delivery: Delivery) => Buffer.from(delivery.body).toString();

const opened: Broker[] = [];
async function open(brokerUrl = url): Promise<Broker> {
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

/** Polls `condition` until it holds, failing after `timeoutMs`. */
async function waitFor(what: string, condition: () => Promise<boolean> | boolean, timeoutMs = 3000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** CLIENT LIST lines of this process's wqueue readers (connection names carry the pid). */
async function readers(): Promise<string[]> {
  const list = (await (await redis()).client("LIST")) as string;
  return list.split("\n").filter((line) => line.includes(` name=wqueue-reader-${process.pid} `));
}

/** True while a wqueue reader of this file's database sits blocked in BLPOP. */
async function readerBlocked(): Promise<boolean> {
  return (await readers()).some((line) => line.includes(" cmd=blpop"));
}

describe("redis list adapter", () => {
  it("receives a plain RPUSH as its raw bytes, attempt 1, no headers", async () => {
    const broker = await open();
    const queue = queueName();
    const binary = Buffer.from([0x00, 0xff, 0x10, 0x7b, 0x80]);
    const json = Buffer.from('{"n":5}'); // starts like an envelope, but is not one
    await (await redis()).rpush(queue, binary, json);
    const consumer = broker.consumer(queue);
    const got = await consumer.receive(10, AbortSignal.timeout(3000));
    expect(got.map((d) => Buffer.from(d.body))).toEqual([binary, json]);
    for (const delivery of got) {
      expect(delivery.attempt).toBe(1);
      expect(delivery.headers).toEqual({});
      expect(delivery.key).toBeUndefined();
      expect(delivery.queue).toBe(queue);
    }
    expect(got[0]?.id).not.toBe(got[1]?.id);
  });

  it("publishes a plain message as raw bytes a plain consumer can LPOP", async () => {
    const broker = await open();
    const queue = queueName();
    await broker.publish(queue, [{ body: text("plain") }]);
    expect(await (await redis()).lpop(queue)).toBe("plain");
  });

  it("wraps headers and key in the envelope; with ?plain=true pushes the body alone, yet keeps its own retries and dead letters enveloped", async () => {
    const queue = queueName();
    const message = { body: text('{"n":1}'), headers: { "x-h": "v" }, key: "k" };
    await (await open()).publish(queue, [message]);
    const enveloped = JSON.parse((await (await redis()).lpop(queue)) as string);
    expect(enveloped).toEqual({ __wqueue__: 1, b: Buffer.from('{"n":1}').toString("base64"), h: { "x-h": "v" }, k: "k", a: 1 });
    const plain = await open(`${url}&plain=true`);
    await plain.publish(queue, [message, message]);
    expect(await (await redis()).lrange(queue, 0, -1)).toEqual(['{"n":1}', '{"n":1}']);
    const [retried, dead] = await receiveN(plain.consumer(queue), 2);
    await retried?.nack();
    await dead?.deadLetter({ reason: "invalid" });
    const [again] = await receiveN(plain.consumer(queue), 1);
    expect(again && [read(again), again.attempt]).toEqual(['{"n":1}', 2]);
    const [letter] = (await plain.browse?.(`${queue}.dead`, 1)) ?? [];
    expect(letter?.headers["x-wqueue-dead-reason"]).toBe("invalid");
  });

  it("wakes the consumer whose queue got a message from the blocked read itself, leaving the others waiting", async () => {
    // A private Redis, so MONITOR shows this test's commands only.
    const server = await startPrivateRedis();
    try {
      const broker = await open(`${server.url}?mode=list`);
      const queues = [queueName(), queueName(), queueName()];
      const controller = new AbortController();
      const settled: (Delivery[] | undefined)[] = [undefined, undefined, undefined];
      const receives = queues.map((queue, index) =>
        broker
          .consumer(queue)
          .receive(10, controller.signal)
          .then((got) => {
            settled[index] = got;
            return got;
          }),
      );
      const blocked = async () =>
        ((await server.client().client("LIST")) as string).split("\n").some((line) => line.includes(` name=wqueue-reader-${process.pid} `) && line.includes(" cmd=blpop"));
      await waitFor("the reader to block", blocked);
      const monitored = await countCommands(server.client());
      await server.client().rpush(queues[1] as string, "for-the-middle-one");
      const got = await receives[1];
      expect(got?.map(read)).toEqual(["for-the-middle-one"]);
      await monitored.caughtUp();
      monitored.stop();
      // The read blocked before the push took it. A read issued after the push that still names the
      // middle queue would mean it was found by a later read (polling), not woken.
      const later = monitored.commands.filter(([name, ...keys]) => name === "blpop" && keys.includes(queues[1] as string));
      expect(later).toEqual([]);
      expect(settled[0]).toBeUndefined();
      expect(settled[2]).toBeUndefined();
      controller.abort();
      expect(await Promise.all([receives[0], receives[2]])).toEqual([[], []]);
    } finally {
      await Promise.all(opened.splice(0).map((broker) => broker.close()));
      await server.stop();
    }
  });

  it("close() while a BLPOP is pending ends the receive and the reader's connection", async () => {
    const broker = await open();
    const pending = broker.consumer(queueName()).receive(10, new AbortController().signal);
    await waitFor("the reader to block", readerBlocked);
    // A close that waited for the read would still end within its block time: not asserted (load
    // varies); the dead-link case below shows close cannot hang on a read that never answers.
    await broker.close();
    expect(await pending).toEqual([]);
    await waitFor("the reader to disconnect", async () => !(await readerBlocked()));
  });

  it("rejects connect() to a closed port with BrokerUnreachableError showing a redacted URL", async () => {
    const broker = openRedisBroker("redis://:secret@127.0.0.1:1");
    const error = await broker.connect().then(
      () => undefined,
      (reason: unknown) => reason,
    );
    expect(error).toBeInstanceOf(BrokerUnreachableError);
    expect((error as Error).message).toContain("***");
    expect((error as Error).message).not.toContain("secret");
    expect(broker.url).not.toContain("secret");
    await broker.close();
  });

  it("is the explicit mode=list; redis:// alone is the reliable mode; an unknown mode names the valid ones", () => {
    expect(openRedisBroker(url).kind).toBe("redis-list");
    expect(openRedisBroker("redis://127.0.0.1:6379").kind).toBe("redis-reliable");
    expect(openRedisBroker("redis://127.0.0.1:6379?mode=stream").kind).toBe("redis-stream");
    expect(() => openRedisBroker("redis://:pw@127.0.0.1:6379?mode=nope")).toThrow(ConfigError);
    expect(() => openRedisBroker("redis://:pw@127.0.0.1:6379?mode=nope")).toThrow(/unknown mode=nope \(valid: reliable, list, stream; default reliable\)/);
    expect(() => openRedisBroker("redis://:pw@127.0.0.1:6379?mode=nope")).not.toThrow(/pw/);
    expect(() => openRedisBroker("redis://127.0.0.1:6379?mode=list&group=g")).toThrow(/\?group= applies to mode=stream only/);
    expect(() => openRedisBroker("redis://127.0.0.1:6379?mode=stream&plain=true")).toThrow(/\?plain= applies to mode=reliable or mode=list only, not mode=stream/);
    expect(() => openRedisBroker("redis://127.0.0.1:6379?plain=yes")).toThrow(/plain=yes must be true or false/);
    expect(() => openRedisBroker("redis://127.0.0.1:6379?heartbeatTtl=5")).toThrow(/heartbeatTtl=5 must be at least 100/);
    expect(() => openRedisBroker("redis://127.0.0.1:6379?mode=stream&maxlen=-1")).toThrow(/maxlen=-1 must be a whole number/);
  });

  it("counts and browses waiting messages without taking them", async () => {
    const broker = await open();
    const queue = queueName();
    await broker.publish(queue, [{ body: text("one"), headers: { "x-a": "1" }, key: "k" }, { body: text("two") }]);
    expect(await broker.backlog?.(queue)).toBe(2);
    const seen = await broker.browse?.(queue, 10);
    expect(seen?.map((m) => [Buffer.from(m.body).toString(), m.headers, m.key])).toEqual([
      ["one", { "x-a": "1" }, "k"],
      ["two", {}, undefined],
    ]);
    expect(await (await redis()).llen(queue)).toBe(2);
  });

  it("keeps two identical messages nacked with the same delay as two", async () => {
    const broker = await open();
    const queue = queueName();
    await broker.publish(queue, [{ body: text("same") }, { body: text("same") }]);
    const consumer = broker.consumer(queue);
    const first = await consumer.receive(2, AbortSignal.timeout(3000));
    expect(first).toHaveLength(2);
    await Promise.all(first.map((d) => d.nack({ delayMs: 100 })));
    const again: Delivery[] = [];
    const signal = AbortSignal.timeout(3000);
    while (again.length < 2 && !signal.aborted) again.push(...(await consumer.receive(2, signal)));
    expect(again.map((d) => [read(d), d.attempt])).toEqual([
      ["same", 2],
      ["same", 2],
    ]);
  });

  it("delivers a delayed retry left behind by a closed worker", async () => {
    const queue = queueName();
    const first = await open();
    await first.publish(queue, [{ body: text("retry-me"), headers: { "x-h": "1" } }]);
    const [delivery] = await first.consumer(queue).receive(1, AbortSignal.timeout(3000));
    await delivery?.nack({ delayMs: 300 });
    await first.close();
    const second = await open();
    const [again] = await second.consumer(queue).receive(1, AbortSignal.timeout(5000));
    expect(again && read(again)).toBe("retry-me");
    expect(again?.attempt).toBe(2);
    expect(again?.headers).toEqual({ "x-h": "1" });
  });

  it("keeps consuming after its blocking connection is killed, and logs the reconnect", async () => {
    const events: string[] = [];
    const broker = openRedisBroker(url, (level, message) => {
      events.push(`${level} ${message}`);
    });
    opened.push(broker);
    await broker.connect();
    const queue = queueName();
    const consumer = broker.consumer(queue);
    const first = consumer.receive(1, AbortSignal.timeout(8000));
    await waitFor("the reader to block", readerBlocked);
    const [line] = await readers();
    expect(line).toContain(` db=${DB} `);
    const id = /(?:^| )id=(\d+)/.exec(line as string)?.[1];
    await (await redis()).client("KILL", "ID", id as string);
    await waitFor("the reader to come back", readerBlocked, 5000);
    await (await redis()).rpush(queue, "after-kill");
    expect((await first).map(read)).toEqual(["after-kill"]);
    expect(events.some((event) => event.startsWith("warn") && event.includes("(reader)"))).toBe(true);
    expect(events.some((event) => event.includes("reconnected"))).toBe(true);
  });

  it("publishes a large batch in order and a delayed batch after its delay", async () => {
    const broker = await open();
    const queue = queueName();
    const bodies = Array.from({ length: 2500 }, (_, i) => `m${i}`);
    await broker.publish(queue, bodies.map((b) => ({ body: text(b) })));
    expect(await (await redis()).lrange(queue, 0, -1)).toEqual(bodies);
    const later = queueName();
    const published = Date.now();
    await broker.publish(later, bodies.map((b) => ({ body: text(b), delayMs: 300 })));
    const consumer = broker.consumer(later);
    const got: Delivery[] = [];
    const signal = AbortSignal.timeout(5000);
    while (got.length < bodies.length && !signal.aborted) got.push(...(await consumer.receive(1000, signal)));
    expect(Date.now() - published).toBeGreaterThanOrEqual(290);
    expect(got.map(read).sort()).toEqual([...bodies].sort());
  });

  it("fails the receive of a key that is not a list, and only that one", async () => {
    const broker = await open();
    const [bad, good] = [queueName(), queueName()];
    await (await redis()).set(bad, "not a list");
    const badReceive = broker.consumer(bad).receive(10, AbortSignal.timeout(3000));
    const goodReceive = broker.consumer(good).receive(10, AbortSignal.timeout(3000));
    await expect(badReceive).rejects.toThrow(new RegExp(`queue ${bad}: WRONGTYPE`));
    await (await redis()).rpush(good, "fine");
    expect((await goodReceive).map(read)).toEqual(["fine"]);
  });

  it("reconnects a reader whose link went silent (watchdog), and closes over a dead link", async () => {
    const proxy = await freezableProxy();
    const events: string[] = [];
    const broker = openRedisBroker(`${proxy.url}/${DB}?mode=list`, (level, message) => {
      events.push(`${level} ${message}`);
    });
    try {
      await broker.connect();
      const queue = queueName();
      const consumer = broker.consumer(queue);
      const receiving = consumer.receive(1, AbortSignal.timeout(15_000));
      await waitFor("the reader to block", readerBlocked);
      proxy.freeze(); // the BLPOP in flight, and the command connection, will never hear back
      // Without the watchdog nothing would ever end the frozen BLPOP (the waits here would time out).
      await waitFor("the reader to reconnect", () => events.some((event) => event.includes("(reader): reconnected")), 15_000);
      // Pushed only now: a message pushed while the link was dead went to the dead BLPOP (at most once).
      await (await redis()).rpush(queue, "after-the-watchdog");
      expect((await receiving).map(read)).toEqual(["after-the-watchdog"]);
      // The command connection is frozen too: close must not wait for its QUIT to be answered (a
      // close that did would hang until the test's timeout).
      await broker.close();
    } finally {
      proxy.close();
      await broker.close();
    }
  }, 40_000);
});
