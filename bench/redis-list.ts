/**
 * Throughput of the Redis list adapter against raw ioredis loops on the same Redis, same run:
 *   (a) raw BLPOP, one message per round trip (the seed's consumer loop);
 *   (b) raw `LPOP key 100` (about the most one connection gets out of a list);
 *   (c) the adapter, driven as the worker drives it: receive(100), then for each delivery a no-op
 *       async handler and ack(), awaited one after the other;
 *   (d) the full worker (src/worker: WQueue app + Worker, concurrency 100, JSON decoding, a no-op
 *       handler), when it loads: it adds the dispatcher's and the pipeline's own costs to (c);
 * plus, for reference, (b+): raw `LPOP key 100` followed by the same per-message awaits as (c) (the
 * no-op handler, and an already-settled promise standing for ack()). That is the most (c) could
 * reach with an adapter costing nothing, so (c)/(b+) is the adapter's own overhead.
 * Each case runs on a freshly preloaded list after an unmeasured warm-up pass; rounds are
 * interleaved and the median is reported, since single runs on a shared machine are noisy.
 *
 *   npm run bench:redis                      # 200,000 messages, 3 rounds
 *   BENCH_MESSAGES=50000 BENCH_ROUNDS=5 BENCH_REDIS_URL=redis://127.0.0.1:6379 npm run bench:redis
 */
import { randomUUID } from "node:crypto";
import { cpus } from "node:os";
import { Redis } from "ioredis";
import type { Delivery } from "../src/brokers/contract.js";
import { openRedisBroker } from "../src/brokers/redis/open-redis-broker.js";
import { headline, machineLoad, within } from "./harness.js";

const N = Number(process.env.BENCH_MESSAGES ?? 200_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const URL = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";
/** The adapter under test is the plain list mode, no longer redis://'s default (mode=reliable is). */
const LIST_URL = `${URL}${URL.includes("?") ? "&" : "?"}mode=list`;
const WARMUP = Math.min(20_000, Math.ceil(N / 10));
/** A small JSON event, as `RPUSH queue '{"n":5}'` from any producer would send. */
const body = (i: number) => `{"event":"signup","n":${i}}`;

const client = new Redis(URL, { lazyConnect: true, connectTimeout: 3000, retryStrategy: () => null });

async function preload(count: number): Promise<string> {
  const queue = `bench.redis-list.${randomUUID().slice(0, 8)}`;
  for (let start = 0; start < count; start += 10_000) {
    const pipeline = client.pipeline();
    const end = Math.min(count, start + 10_000);
    for (let chunk = start; chunk < end; chunk += 1000) {
      const values: string[] = [];
      for (let i = chunk; i < Math.min(end, chunk + 1000); i += 1) values.push(body(i));
      pipeline.rpush(queue, ...values);
    }
    await pipeline.exec();
  }
  return queue;
}

/**
 * One case: `start` connects (untimed), then `consume` is timed until `count` messages were
 * handled, then `stop` closes (untimed). Connection setup is not throughput.
 */
interface Case {
  name: string;
  start(queue: string, count: number): Promise<{ consume(): Promise<void>; stop(): Promise<void> }>;
}

const noopHandler = async (_message: Delivery | Buffer): Promise<void> => {};
const settled = Promise.resolve();

/** A case on the shared raw client, which is connected already. */
const raw = (name: string, consume: (queue: string, count: number) => Promise<void>): Case => ({
  name,
  start: async (queue, count) => ({ consume: () => consume(queue, count), stop: async () => {} }),
});

const rawBlpop = raw("(a) raw `BLPOP`, one message per call", async (queue, count) => {
  for (let got = 0; got < count; got += 1) {
    if ((await client.blpopBuffer(queue, 5)) === null) throw new Error("BLPOP timed out: list drained early");
  }
});

const rawLpop100 = raw("(b) raw `LPOP key 100`", async (queue, count) => {
  for (let got = 0; got < count; ) {
    const items = await client.lpopBuffer(queue, 100);
    if (items === null) throw new Error("LPOP found an empty list: drained early");
    got += items.length;
  }
});

const rawLpop100Awaits = raw("(b+) raw `LPOP key 100` + the same per-message awaits as (c)", async (queue, count) => {
  for (let got = 0; got < count; ) {
    const items = await client.lpopBuffer(queue, 100);
    if (items === null) throw new Error("LPOP found an empty list: drained early");
    for (const item of items) {
      await noopHandler(item);
      await settled;
    }
    got += items.length;
  }
});

const adapter: Case = {
  name: "(c) adapter: `receive(100)` + no-op handler + `ack()` per message",
  async start(queue, count) {
    const broker = openRedisBroker(LIST_URL);
    await broker.connect();
    // The blocking connection opens on the first receive: open it now, on an empty queue.
    await broker.consumer(`${queue}.warm-up`).receive(1, AbortSignal.timeout(20));
    const consumer = broker.consumer(queue);
    const signal = AbortSignal.timeout(600_000);
    const consume = async () => {
      for (let got = 0; got < count; ) {
        const deliveries = await consumer.receive(100, signal);
        for (const delivery of deliveries) {
          await noopHandler(delivery);
          await delivery.ack();
        }
        got += deliveries.length;
      }
    };
    return { consume, stop: () => broker.close() };
  },
};

/**
 * The worker is written alongside this adapter and loaded lazily, so the other cases run without
 * it. It starts consuming as soon as it has started, so its clock starts at the first message.
 */
const worker: Case = {
  name: "(d) worker: `WQueue` + `Worker`, concurrency 100, JSON decode, no-op handler",
  async start(queue, count) {
    const [{ WQueue }, { Worker }, { createLogger }] = await Promise.all([
      import("../src/app/WQueue.js"),
      import("../src/worker/Worker.js"),
      import("../src/log/logger.js"),
    ]);
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
    app.listenEvents(queue, () => {
      handled += 1;
      if (handled === 1) first();
      if (handled === count) last();
    });
    const running = new Worker(app, { broker: LIST_URL, concurrency: 100, logger: createLogger("silent") });
    await running.start();
    await within(firstSeen, 10_000, "the worker's first message");
    return { consume: () => within(lastSeen, 300_000, "the worker's last message"), stop: () => running.stop() };
  },
};

/** Fails instead of hanging when a promise does not settle in time. */
async function measure(test: Case, count: number): Promise<number> {
  const queue = await preload(count);
  const run = await test.start(queue, count);
  const started = process.hrtime.bigint();
  await run.consume();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  await run.stop();
  const left = await client.llen(queue);
  await client.del(queue);
  if (left !== 0) throw new Error(`${left} messages left in ${queue}`);
  return count / seconds;
}

const format = (rate: number) => Math.round(rate).toLocaleString("en-US");
const median = (values: number[]) => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)] as number;
/** "0.640x (target >= 0.6x: met)", also recorded as a headline for `npm run bench`. */
const ratio = (x: number, target: number, what: string) => {
  headline({ what, value: x, unit: "x", target: `>= ${target}x`, met: x >= target });
  return `${x.toFixed(x < 10 ? 3 : 1)}x (target >= ${target}x: ${x >= target ? "met" : "NOT met"})`;
};

async function main(): Promise<void> {
  try {
    await client.connect();
  } catch (error) {
    throw new Error(`Redis is not reachable at ${URL} (${(error as Error).message}); start it with:
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no`);
  }
  const cases: Case[] = [];
  for (const test of [rawBlpop, rawLpop100, rawLpop100Awaits, adapter, worker]) {
    try {
      await measure(test, WARMUP);
      cases.push(test);
    } catch (error) {
      if (test !== worker) throw error;
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
  const rates = samples.map(median);
  /** Median over rounds of x/y within each round: the two ran back to back, under the same load. */
  const paired = (x: Case, y: Case) => {
    const [xs, ys] = [samples[cases.indexOf(x)] ?? [], samples[cases.indexOf(y)] ?? []];
    return median(xs.map((value, round) => value / (ys[round] ?? Number.NaN)));
  };
  const ratios = [
    `- (c)/(a): ${ratio(paired(adapter, rawBlpop), 2, "Redis list adapter / raw BLPOP loop")}`,
    `- (c)/(b): ${ratio(paired(adapter, rawLpop100), 0.7, "Redis list adapter / raw LPOP key 100 loop")}`,
    `- (c)/(b+): ${paired(adapter, rawLpop100Awaits).toFixed(2)}x, the adapter's own cost once the per-message awaits of the loop are set aside`,
    ...(cases.includes(worker)
      ? [
          `- (d)/(a): ${ratio(paired(worker, rawBlpop), 2, "Redis list worker / raw BLPOP loop")}`,
          `- (d)/(b): ${ratio(paired(worker, rawLpop100), 0.7, "Redis list worker / raw LPOP key 100 loop")}`,
        ]
      : ["- (d): the worker did not run"]),
  ];
  const version = /redis_version:(\S+)/.exec(await client.info("server"))?.[1] ?? "?";
  const rows = cases.map(({ name }, index) => {
    const values = samples[index] ?? [];
    return `| ${name} | ${format(rates[index] ?? 0)} | ${format(Math.min(...values))} - ${format(Math.max(...values))} |`;
  });
  console.log(`### Redis list adapter throughput

${N.toLocaleString("en-US")} messages of about ${Buffer.byteLength(body(N))} bytes (\`${body(0)}\`), one consumer. Each case
on a freshly preloaded list, after a ${WARMUP.toLocaleString("en-US")}-message warm-up; median of ${ROUNDS} interleaved rounds.
Connection setup is outside the clock (the worker's clock starts at its first message).
Redis ${version} on loopback, Node ${process.version}, ${cpus()[0]?.model.trim() ?? "unknown CPU"} (${cpus().length} cores,
shared with Redis). (c) drives the adapter directly (a \`consumer.receive\` loop); (d) runs the worker on it.

| Consumer | msgs/s (median) | range |
| --- | ---: | ---: |
${rows.join("\n")}

Ratios (median over rounds of each round's ratio):

${ratios.join("\n")}
`);
}

main()
  .then(() => console.log(machineLoad()))
  .catch((error: Error) => {
    console.error(error.message);
    process.exitCode = 1;
  })
  .finally(() => client.disconnect());
