/**
 * No-op throughput of the at-least-once Redis modes beside raw ioredis loops, same Redis, same run:
 *   (b) raw `LPOP key 100`: about the most one connection gets out of a list (at most once);
 *   (x) raw `XREADGROUP COUNT 100` + one `XACK` of the batch: the same for a stream;
 *   (y) mode=reliable's own claim and ack scripts called in a bare loop: what its Redis side costs;
 *   (l) mode=list adapter, for reference;
 *   (r) mode=reliable adapter;
 *   (s) mode=stream adapter;
 * each adapter driven as a worker with concurrency 100 drives it: `receive(100)`, a no-op async
 * handler per delivery, `ack()` as each handler finishes (acks of one turn coalesce into one call),
 * the batch's acks awaited before the next receive; plus, when it loads, the full worker (WQueue +
 * Worker, concurrency 100, JSON decoding) on (r) and (s). Each case runs on a freshly preloaded
 * queue after an unmeasured warm-up; rounds are interleaved and the median is reported.
 *
 *   node --import tsx bench/redis-reliable.ts                 # 100,000 messages, 3 rounds
 *   BENCH_MESSAGES=50000 BENCH_ROUNDS=5 BENCH_REDIS_URL=redis://127.0.0.1:6379 node --import tsx bench/redis-reliable.ts
 */
import { randomUUID } from "node:crypto";
import { cpus } from "node:os";
import { Redis } from "ioredis";
import type { Delivery } from "../src/brokers/contract.js";
import { openRedisBroker } from "../src/brokers/redis/open-redis-broker.js";
import { reliableKeys } from "../src/brokers/redis/reliable-item.js";
import { defineReliableScripts } from "../src/brokers/redis/reliable-scripts.js";
import { machineLoad, ratioAtLeast, within } from "./harness.js";

const N = Number(process.env.BENCH_MESSAGES ?? 100_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const BASE = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";
const WARMUP = Math.min(10_000, Math.ceil(N / 10));
const withMode = (mode: string) => `${BASE}${BASE.includes("?") ? "&" : "?"}mode=${mode}`;
const body = (i: number) => `{"event":"signup","n":${i}}`;
const client = new Redis(BASE, { lazyConnect: true, connectTimeout: 3000, retryStrategy: () => null });

type Kind = "list" | "stream";
interface Case {
  name: string;
  kind: Kind;
  start(queue: string, count: number): Promise<{ consume(): Promise<void>; stop(): Promise<void> }>;
}

async function preload(kind: Kind, count: number): Promise<string> {
  const queue = `bench.redis-reliable.${randomUUID().slice(0, 8)}`;
  for (let start = 0; start < count; start += 10_000) {
    const pipeline = client.pipeline();
    const end = Math.min(count, start + 10_000);
    if (kind === "stream") for (let i = start; i < end; i += 1) pipeline.xadd(queue, "*", "body", body(i));
    else
      for (let chunk = start; chunk < end; chunk += 1000) {
        pipeline.rpush(queue, ...Array.from({ length: Math.min(end, chunk + 1000) - chunk }, (_, i) => body(chunk + i)));
      }
    await pipeline.exec();
  }
  return queue;
}

/** Every key the case left: the queue, and the modes' `<queue>:wqueue:*` bookkeeping. */
async function cleanUp(queue: string): Promise<void> {
  const keys = await client.keys(`${queue}*`);
  if (keys.length > 0) await client.del(...keys);
}

async function leftOver(kind: Kind, queue: string): Promise<number> {
  if (kind === "list") {
    let left = await client.llen(queue);
    for (const key of await client.keys(`${queue}:wqueue:processing:*`)) left += await client.llen(key);
    return left;
  }
  const pending = (await client.xpending(queue, "wqueue").catch(() => [0])) as [number];
  return pending[0];
}

const noop = async (_message: unknown): Promise<void> => {};
const raw = (name: string, kind: Kind, consume: (queue: string, count: number) => Promise<void>): Case => ({
  name,
  kind,
  start: async (queue, count) => ({ consume: () => consume(queue, count), stop: async () => {} }),
});

const rawLpop = raw("(b) raw `LPOP key 100` (at most once)", "list", async (queue, count) => {
  for (let got = 0; got < count; ) {
    const items = await client.lpopBuffer(queue, 100);
    if (items === null) throw new Error("LPOP found an empty list: drained early");
    for (const item of items) await noop(item);
    got += items.length;
  }
});

const rawStream = raw("(x) raw `XREADGROUP COUNT 100` + `XACK` per batch", "stream", async (queue, count) => {
  await client.xgroup("CREATE", queue, "wqueue", "0", "MKSTREAM");
  for (let got = 0; got < count; ) {
    const reply = (await client.xreadgroup("GROUP", "wqueue", "bench", "COUNT", 100, "STREAMS", queue, ">")) as [string, [string, string[]][]][] | null;
    const entries = reply?.[0]?.[1] ?? [];
    if (entries.length === 0) throw new Error("XREADGROUP found nothing: drained early");
    for (const entry of entries) await noop(entry);
    await client.xack(queue, "wqueue", ...entries.map(([id]) => id));
    got += entries.length;
  }
});

const scripts = defineReliableScripts(client);
const rawReliable = raw("(y) mode=reliable's claim + ack scripts in a bare loop", "list", async (queue, count) => {
  const keys = reliableKeys(queue, "bench", false);
  for (let got = 0; got < count; ) {
    const items = await scripts.wqueueReliableClaimBuffer(5, keys.source, keys.processing, keys.ids, keys.consumers, keys.heartbeat, 100, "bench", 10_000);
    if (items.length === 0) throw new Error("the claim found an empty list: drained early");
    for (const item of items) await noop(item);
    await scripts.wqueueReliableAck(1, keys.processing, ...items);
    got += items.length;
  }
});

const adapter = (name: string, kind: Kind, mode: string): Case => ({
  name,
  kind,
  async start(queue, count) {
    const broker = openRedisBroker(withMode(mode));
    await broker.connect();
    const consumer = broker.consumer(queue);
    const signal = AbortSignal.timeout(600_000);
    const consume = async () => {
      for (let got = 0; got < count; ) {
        const deliveries = await consumer.receive(100, signal);
        await Promise.all(deliveries.map((delivery: Delivery) => noop(delivery).then(() => delivery.ack())));
        got += deliveries.length;
      }
    };
    return { consume, stop: () => broker.close() };
  },
});

/** The worker is loaded lazily, so the other cases run without it. Its clock starts at its first message. */
const worker = (name: string, kind: Kind, mode: string): Case => ({
  name,
  kind,
  async start(queue, count) {
    const [{ WQueue }, { Worker }, { createLogger }] = await Promise.all([
      import("../src/app/WQueue.js"),
      import("../src/worker/Worker.js"),
      import("../src/log/logger.js"),
    ]);
    const app = new WQueue();
    let handled = 0;
    const seen = { first: () => {}, last: () => {} };
    const first = new Promise<void>((resolve) => {
      seen.first = resolve;
    });
    const last = new Promise<void>((resolve) => {
      seen.last = resolve;
    });
    app.listenEvents(queue, () => {
      handled += 1;
      if (handled === 1) seen.first();
      if (handled === count) seen.last();
    });
    const running = new Worker(app, { broker: withMode(mode), concurrency: 100, logger: createLogger("silent") });
    await running.start();
    await within(first, 10_000, "the worker's first message");
    return { consume: () => within(last, 300_000, "the worker's last message"), stop: () => running.stop() };
  },
});

async function measure(test: Case, count: number): Promise<number> {
  const queue = await preload(test.kind, count);
  try {
    const run = await test.start(queue, count);
    const started = process.hrtime.bigint();
    await run.consume();
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    await run.stop();
    const left = await leftOver(test.kind, queue);
    if (left !== 0) throw new Error(`${left} messages left unacked in ${queue}`);
    return count / seconds;
  } finally {
    await cleanUp(queue);
  }
}

const format = (rate: number) => Math.round(rate).toLocaleString("en-US");
const median = (values: number[]) => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)] as number;

async function main(): Promise<void> {
  try {
    await client.connect();
  } catch (error) {
    throw new Error(`Redis is not reachable at ${BASE} (${(error as Error).message}); start it with:
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no`);
  }
  const all = [
    rawLpop,
    rawStream,
    rawReliable,
    adapter("(l) mode=list adapter (at most once)", "list", "list"),
    adapter("(r) mode=reliable adapter", "list", "reliable"),
    adapter("(s) mode=stream adapter", "stream", "stream"),
    worker("(wr) worker on mode=reliable", "list", "reliable"),
    worker("(ws) worker on mode=stream", "stream", "stream"),
  ];
  const cases: Case[] = [];
  for (const test of all) {
    try {
      await measure(test, WARMUP);
      cases.push(test);
    } catch (error) {
      if (!test.name.includes("worker")) throw error;
      process.stderr.write(`${test.name}: left out, the worker did not run (${(error as Error).message})\n`);
    }
  }
  const samples: number[][] = cases.map(() => []);
  for (let round = 1; round <= ROUNDS; round += 1) {
    for (const [index, test] of cases.entries()) {
      const rate = await measure(test, N);
      samples[index]?.push(rate);
      process.stderr.write(`round ${round} ${test.name}: ${format(rate)} msgs/s\n`);
    }
  }
  /** Median over rounds of x/(b) within each round: the two ran back to back, under the same load. */
  const versusLpop = (values: number[]) => median(values.map((value, round) => value / (samples[0]?.[round] ?? Number.NaN)));
  const rows = cases.map(({ name }, index) => {
    const values = samples[index] ?? [];
    return `| ${name} | ${format(median(values))} | ${format(Math.min(...values))} - ${format(Math.max(...values))} | ${versusLpop(values).toFixed(2)}x |`;
  });
  // Issue 14's targets for the at-least-once workers: at least 0.4x the raw LPOP loop.
  for (const [index, test] of cases.entries()) {
    const mode = /^\(w([rs])\)/.exec(test.name)?.[1];
    if (mode) ratioAtLeast(`Redis ${mode === "r" ? "reliable" : "Streams"} worker / raw LPOP key 100 loop`, versusLpop(samples[index] ?? []), 0.4);
  }
  const version = /redis_version:(\S+)/.exec(await client.info("server"))?.[1] ?? "?";
  console.log(`### Redis at-least-once modes: no-op throughput

${N.toLocaleString("en-US")} messages of about ${Buffer.byteLength(body(N))} bytes, one consumer, median of ${ROUNDS} interleaved rounds
after a ${WARMUP.toLocaleString("en-US")}-message warm-up; connection setup outside the clock. Redis ${version} on loopback
(no persistence), Node ${process.version}, ${cpus()[0]?.model.trim() ?? "unknown CPU"} (${cpus().length} cores, shared with Redis).

| Consumer | msgs/s (median) | range | vs (b), paired per round |
| --- | ---: | ---: | ---: |
${rows.join("\n")}
`);
}

main()
  .then(() => console.log(machineLoad()))
  .catch((error: Error) => {
    console.error(error.message);
    process.exitCode = 1;
  })
  .finally(() => client.disconnect());
