import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { WQueue } from "../../src/app/WQueue.js";
import { openRedisBroker } from "../../src/brokers/redis/open-redis-broker.js";
import { SqliteBroker } from "../../src/brokers/sqlite/SqliteBroker.js";
import { ConfigError } from "../../src/errors.js";
import { Worker } from "../../src/worker/Worker.js";
import { memoryLogger, waitFor } from "../helpers.js";
import { deleteKeysStartingWith } from "./redis-helpers.js";

/**
 * Many queues, one worker (issue 19), on real brokers: the reliable Redis default and SQLite.
 * A worker over 1,000 queues holds a bounded number of Redis connections, keeps its concurrency
 * limit (idle queues hold no credit), handles a message on every queue, serves an idle queue within the documented poll latency, and stays fair: small
 * queues are not kept waiting behind one big backlog.
 */
const REDIS = "redis://127.0.0.1:6379";
const dir = mkdtempSync(join(tmpdir(), "wqueue-many-"));
const redis = new Redis(6379, "127.0.0.1", { connectionName: `many-queues-test-${process.pid}`, lazyConnect: true });
const workers: Worker[] = [];
const prefixes: string[] = [];

afterEach(async () => {
  await Promise.all(workers.splice(0).map((worker) => worker.stop(5000)));
});

afterAll(async () => {
  for (const prefix of prefixes) await deleteKeysStartingWith(redis, prefix);
  redis.disconnect();
  rmSync(dir, { recursive: true, force: true });
});

/** `count` queue names `<prefix><i>`; the prefix ends with `separator` (a "." makes them match `<prefix>*`). */
function names(count: number, label: string, separator = "-"): { prefix: string; queues: string[] } {
  const prefix = `many-${label}-${randomUUID().slice(0, 8)}${separator}`;
  prefixes.push(prefix);
  return { prefix, queues: Array.from({ length: count }, (_, i) => `${prefix}${i}`) };
}

/**
 * A worker over `queues` on `broker` that records which queue each handled message came from;
 * with `pattern`, one subscription by that pattern instead of one per queue.
 */
async function startWorker(broker: string, queues: string[], handled: string[], pattern?: string) {
  const app = new WQueue({ broker });
  if (pattern) app.listenEvents(pattern, (message) => void handled.push(message.queue));
  else for (const queue of queues) app.listenEvents(queue, () => void handled.push(queue));
  const { logger, lines } = memoryLogger();
  const worker = new Worker(app, { logger, broker });
  workers.push(worker);
  await worker.start();
  return { worker, lines };
}

/** Connections this process holds to Redis under wqueue's client names. */
async function wqueueConnections(): Promise<string[]> {
  const list = (await redis.client("LIST")) as string;
  return list.split("\n").filter((line) => / name=wqueue-\S+ /.test(line) && line.includes(`-${process.pid} `));
}

async function pushRedis(queue: string, count: number): Promise<void> {
  const bodies = Array.from({ length: count }, (_, i) => JSON.stringify({ i }));
  await redis.rpush(queue, ...bodies);
}

/**
 * Idle queues hold no credit here (waitForMessages/take), so the worker-wide limit stays the
 * default 10 over 1,000 queues: not raised to one slot per queue.
 */
function expectLimitKept(lines: { msg?: unknown; concurrency?: unknown }[]): void {
  expect(lines.find((line) => String(line.msg).startsWith("ready:"))?.concurrency).toBe(10);
  expect(lines.filter((line) => String(line.msg).includes("concurrency raised"))).toEqual([]);
}

/** Every small queue's messages are all handled before the big queue is half done. */
function expectFair(handled: string[], big: string, small: string[], bigCount: number, smallCount: number): void {
  const halfAt = indexOfNth(handled, big, bigCount / 2);
  expect(halfAt).toBeGreaterThan(0);
  const late = small.filter((queue) => indexOfNth(handled, queue, smallCount) > halfAt);
  expect(late, `small queues finished after the big one was half done (at message ${halfAt})`).toEqual([]);
}

function indexOfNth(handled: string[], queue: string, n: number): number {
  let seen = 0;
  for (const [index, name] of handled.entries()) {
    if (name === queue && ++seen === n) return index;
  }
  return Number.POSITIVE_INFINITY;
}

describe("many queues, one worker: reliable Redis", () => {
  it("holds at most 4 connections over 1,000 queues, handles one message on each, serves an idle queue within the poll", async () => {
    if (redis.status === "wait") await redis.connect(); // lazy: the first test to need it connects
    const before = (await wqueueConnections()).length;
    const { queues } = names(1000, "redis");
    const handled: string[] = [];
    const { lines } = await startWorker(REDIS, queues, handled);
    const ready = lines.find((line) => String(line.msg).startsWith("ready:"));
    expect(String(ready?.msg).length).toBeLessThan(1000); // summarised, not 1,000 names
    expect(ready?.queueCount).toBe(1000);
    expectLimitKept(lines);

    const pipeline = redis.pipeline();
    for (const queue of queues) pipeline.rpush(queue, JSON.stringify({ queue }));
    await pipeline.exec();
    await waitFor(() => `1,000 messages handled (${handled.length})`, () => handled.length === 1000, 60_000);
    expect(new Set(handled).size).toBe(1000);
    const during = await wqueueConnections();
    expect(during.length - before, during.join("\n")).toBeLessThanOrEqual(4);

    // Idle now: a message on one idle queue among 1,000 is claimed within the poll (100 ms), with
    // generous slack for a loaded 2-core machine.
    await waitFor("the worker to settle the first round", async () => (await redis.llen(queues[0] as string)) === 0);
    const target = queues[567] as string;
    const sentAt = Date.now();
    await redis.rpush(target, JSON.stringify({ late: true }));
    await waitFor("the idle queue's message", () => handled.length === 1001, 10_000);
    expect(handled[1000]).toBe(target);
    expect(Date.now() - sentAt).toBeLessThan(1500);
    expect((await wqueueConnections()).length - before).toBeLessThanOrEqual(4);
  }, 120_000);

  it("refuses a poll interval below 10 ms with one ConfigError, and ?poll= outside the reliable mode", () => {
    expect(() => openRedisBroker(`${REDIS}?poll=5`)).toThrow(ConfigError);
    expect(() => openRedisBroker(`${REDIS}?mode=stream&poll=50`)).toThrow(/applies to mode=reliable only/);
  });

  it("is fair: 200 queues of 5 are all served before a queue of 2,000 is half done", async () => {
    const { queues } = names(201, "redis-fair");
    const [big, ...small] = queues as [string, ...string[]];
    await pushRedis(big, 2000);
    for (const queue of small) await pushRedis(queue, 5);
    const handled: string[] = [];
    await startWorker(REDIS, queues, handled);
    await waitFor(() => `3,000 messages handled (${handled.length})`, () => handled.length === 3000, 60_000);
    expectFair(handled, big, small, 2000, 5);
  }, 120_000);

  it("is as fair through one pattern subscription over the same 201 queues", async () => {
    const { prefix, queues } = names(201, "redis-fair-pattern", ".");
    const [big, ...small] = queues as [string, ...string[]];
    await pushRedis(big, 2000);
    for (const queue of small) await pushRedis(queue, 5);
    const handled: string[] = [];
    const { worker } = await startWorker(REDIS, queues, handled, `${prefix}*`);
    expect(worker.observer.queues.size).toBe(201);
    await waitFor(() => `3,000 messages handled (${handled.length})`, () => handled.length === 3000, 60_000);
    expectFair(handled, big, small, 2000, 5);
  }, 120_000);
});

describe("many queues, one worker: Redis Streams", () => {
  it("keeps its limit over 1,000 streams, handles one message on each, and an idle stream's message after", async () => {
    if (redis.status === "wait") await redis.connect(); // lazy: the first test to need it connects
    const { queues } = names(1000, "stream");
    const handled: string[] = [];
    const { lines } = await startWorker(`${REDIS}?mode=stream`, queues, handled);
    expectLimitKept(lines);
    const pipeline = redis.pipeline();
    for (const queue of queues) pipeline.xadd(queue, "*", "body", JSON.stringify({ queue }));
    await pipeline.exec();
    await waitFor(() => `1,000 messages handled (${handled.length})`, () => handled.length === 1000, 60_000);
    expect(new Set(handled).size).toBe(1000);
    // Idle now, every loop waiting on its stream holding no credit: a new entry is still seen.
    const target = queues[321] as string;
    await redis.xadd(target, "*", "body", JSON.stringify({ late: true }));
    await waitFor("the idle stream's message", () => handled.length === 1001, 10_000);
    expect(handled[1000]).toBe(target);
  }, 120_000);
});

describe("many queues, one worker: SQLite", () => {
  it("handles one message on each of 1,000 queues", async () => {
    const url = `sqlite://${join(dir, "many.db")}`;
    const { queues } = names(1000, "sqlite");
    const handled: string[] = [];
    const { lines } = await startWorker(url, queues, handled);
    expectLimitKept(lines);
    const producer = new SqliteBroker(url);
    for (const queue of queues) await producer.publish(queue, [{ body: Buffer.from(JSON.stringify({ queue })) }]);
    await producer.close();
    await waitFor(() => `1,000 messages handled (${handled.length})`, () => handled.length === 1000, 60_000);
    expect(new Set(handled).size).toBe(1000);
  }, 120_000);

  for (const by of ["name", "pattern"] as const) {
    it(`is fair: 200 queues of 5 are all served before a queue of 2,000 is half done (subscribed by ${by})`, async () => {
      const url = `sqlite://${join(dir, `fair-${by}.db`)}`;
      const { prefix, queues } = names(201, "sqlite-fair", by === "pattern" ? "." : "-");
      const [big, ...small] = queues as [string, ...string[]];
      const producer = new SqliteBroker(url);
      await producer.publish(big, Array.from({ length: 2000 }, (_, i) => ({ body: Buffer.from(JSON.stringify({ i })) })));
      for (const queue of small) await producer.publish(queue, Array.from({ length: 5 }, (_, i) => ({ body: Buffer.from(JSON.stringify({ i })) })));
      await producer.close();
      const handled: string[] = [];
      await startWorker(url, queues, handled, by === "pattern" ? `${prefix}*` : undefined);
      await waitFor(() => `3,000 messages handled (${handled.length})`, () => handled.length === 3000, 60_000);
      expectFair(handled, big, small, 2000, 5);
    }, 120_000);
  }
});
