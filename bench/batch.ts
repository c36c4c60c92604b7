/**
 * Batch handlers on reliable Redis (the default mode) beside the raw client, same Redis, same run:
 *   (b)   raw ioredis `LPOP key 100` loop, a no-op per message (at most once): the ceiling;
 *   (w)   the full worker, a single-message no-op handler, concurrency 100 (for reference);
 *   (wb)  the full worker, a no-op batch handler { maxSize: 100, maxWaitMs: 50 }, concurrency 100;
 *   (wb2) the same with concurrency 200 (one batch fills while another runs).
 * Each case runs on a freshly preloaded list after an unmeasured warm-up; rounds are interleaved,
 * medians reported, each worker case also as a ratio to (b) in the same round.
 *
 *   npm run bench:batch                                  # 100,000 messages, 3 rounds
 *   BENCH_MESSAGES=20000 BENCH_ROUNDS=1 npm run bench:batch
 */
import { randomUUID } from "node:crypto";
import { cpus } from "node:os";
import { Redis } from "ioredis";
import { WQueue } from "../src/app/WQueue.js";
import { createLogger } from "../src/log/logger.js";
import { Worker } from "../src/worker/Worker.js";
import { format, machineLoad, median, ratioAtLeast, within } from "./harness.js";

const N = Number(process.env.BENCH_MESSAGES ?? 100_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const URL = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";
const WARMUP = Math.min(10_000, Math.ceil(N / 10));
const body = (i: number) => `{"event":"signup","n":${i}}`;
const client = new Redis(URL, { lazyConnect: true, connectTimeout: 3000, retryStrategy: () => null });

interface Case {
  name: string;
  /** Starts consuming `queue` (holding `count` messages); resolves with a wait for the last one. */
  start(queue: string, count: number): Promise<{ consume(): Promise<void>; stop(): Promise<void> }>;
}

async function preload(count: number): Promise<string> {
  const queue = `bench.batch.${randomUUID().slice(0, 8)}`;
  for (let start = 0; start < count; start += 10_000) {
    const pipeline = client.pipeline();
    const end = Math.min(count, start + 10_000);
    for (let chunk = start; chunk < end; chunk += 1000) {
      pipeline.rpush(queue, ...Array.from({ length: Math.min(end, chunk + 1000) - chunk }, (_, i) => body(chunk + i)));
    }
    await pipeline.exec();
  }
  return queue;
}

async function leftOver(queue: string): Promise<number> {
  let left = await client.llen(queue);
  for (const key of await client.keys(`${queue}:wqueue:processing:*`)) left += await client.llen(key);
  return left;
}

async function cleanUp(queue: string): Promise<void> {
  const keys = await client.keys(`${queue}*`);
  if (keys.length > 0) await client.del(...keys);
}

const noop = async (_message: unknown): Promise<void> => {};

const rawLpop: Case = {
  name: "(b) raw `LPOP key 100` (at most once)",
  async start(queue, count) {
    const consume = async () => {
      for (let got = 0; got < count; ) {
        const items = await client.lpopBuffer(queue, 100);
        if (items === null) throw new Error("LPOP found an empty list: drained early");
        for (const item of items) await noop(item);
        got += items.length;
      }
    };
    return { consume, stop: async () => {} };
  },
};

/** The full worker (WQueue + Worker, JSON decoding); its clock starts at its first message. */
const worker = (name: string, concurrency: number, batch?: { maxSize: number; maxWaitMs: number }): Case => ({
  name,
  async start(queue, count) {
    const app = new WQueue();
    let handled = 0;
    let first = () => {};
    let last = () => {};
    const firstSeen = new Promise<void>((resolve) => {
      first = resolve;
    });
    const lastSeen = new Promise<void>((resolve) => {
      last = resolve;
    });
    const seen = (n: number) => {
      if (handled === 0) first();
      handled += n;
      if (handled >= count) last();
    };
    if (batch) app.listenEvents(queue, async (messages) => seen(messages.length), { batch });
    else app.listenEvents(queue, async () => seen(1));
    const running = new Worker(app, { broker: URL, concurrency, logger: createLogger("silent") });
    await running.start();
    await within(firstSeen, 10_000, "the worker's first message");
    return { consume: () => within(lastSeen, 300_000, "the worker's last message"), stop: () => running.stop() };
  },
});

async function measure(test: Case, count: number): Promise<number> {
  const queue = await preload(count);
  try {
    const run = await test.start(queue, count);
    const started = process.hrtime.bigint();
    await run.consume();
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    await run.stop();
    const left = await leftOver(queue);
    if (left !== 0) throw new Error(`${left} messages left unacked in ${queue}`);
    return count / seconds;
  } finally {
    await cleanUp(queue);
  }
}

async function main(): Promise<void> {
  try {
    await client.connect();
  } catch (error) {
    throw new Error(`Redis is not reachable at ${URL} (${(error as Error).message})`);
  }
  const cases = [
    rawLpop,
    worker("(w) worker, single-message handler, concurrency 100", 100),
    worker("(wb) worker, batch handler maxSize 100, concurrency 100", 100, { maxSize: 100, maxWaitMs: 50 }),
    worker("(wb2) worker, batch handler maxSize 100, concurrency 200", 200, { maxSize: 100, maxWaitMs: 50 }),
  ];
  for (const test of cases) await measure(test, WARMUP);
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
  // Issue 14's target, for `npm run bench`: the batch case as the README advises it (concurrency 2x maxSize).
  const target = ratioAtLeast("batch handler (maxSize 100, concurrency 200, no-op) on reliable Redis vs raw `LPOP key 100`", versusLpop(samples[3] ?? []), 0.6);
  const version = /redis_version:(\S+)/.exec(await client.info("server"))?.[1] ?? "?";
  console.log(`### Batch handlers on reliable Redis: no-op throughput

${N.toLocaleString("en-US")} messages of about ${Buffer.byteLength(body(N))} bytes, one worker, median of ${ROUNDS} interleaved rounds
after a ${WARMUP.toLocaleString("en-US")}-message warm-up. Redis ${version} on loopback, Node ${process.version},
${cpus()[0]?.model.trim() ?? "unknown CPU"} (${cpus().length} cores, shared with Redis).

| Consumer | msgs/s (median) | range | vs (b), paired per round |
| --- | ---: | ---: | ---: |
${rows.join("\n")}

(wb2) vs (b): ${target}
`);
}

main()
  .then(() => console.log(machineLoad()))
  .catch((error: Error) => {
    console.error(error.message);
    process.exitCode = 1;
  })
  .finally(() => client.disconnect());
