/**
 * `npm run bench:latency`: how long a message waits between its publish and its handler, at a fixed
 * rate, on Redis:
 *   (raw) an ioredis `BLPOP` loop on a list, pushed with `RPUSH`: the floor one connection gets;
 *   (wqueue) `wqueue`'s Worker on the reliable list (the default Redis mode), default concurrency,
 *            published with the adapter; the handler sees the decoded body.
 * The producer sends one message every 1000/RATE ms (in the same process, paced against the clock
 * from the start, so a late timer sends the overdue ones at once), each carrying the time just before
 * its publish; the handler records now minus that. Each case gets an unrecorded warm-up, then
 * interleaved rounds, each starting with the other case. Reported: p50, p99 and max per round
 * (median over rounds for p50 and p99, max over all rounds for max), and the machine's load.
 *
 *   BENCH_RATE=500 BENCH_SECONDS=10 BENCH_ROUNDS=3 npm run bench:latency
 */
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { WQueue } from "../src/app/WQueue.js";
import { createBroker } from "../src/brokers/registry.js";
import { createLogger } from "../src/log/logger.js";
import { Worker } from "../src/worker/Worker.js";
import { headline, machineLoad, median } from "./harness.js";

const RATE = Number(process.env.BENCH_RATE ?? 500);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const REDIS = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";
const WARM_UP_SECONDS = 2;

/** One consumer: `run` sends `count` messages at RATE and resolves with their latencies (ms). */
interface Case {
  name: string;
  run(count: number): Promise<number[]>;
}

/** Sends `count` messages at RATE through `send(sentAt)`; resolves once all were sent. */
async function paced(count: number, send: (sentAt: number) => Promise<unknown>): Promise<void> {
  const interval = 1000 / RATE;
  const start = performance.now();
  for (let i = 0; i < count; i += 1) {
    const due = start + i * interval;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    await send(performance.now());
  }
}

/** Resolves with every latency once `count` were recorded. */
function recorder(count: number) {
  const latencies: number[] = [];
  let finish: () => void = () => {};
  const done = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const record = (sentAt: number) => {
    latencies.push(performance.now() - sentAt);
    if (latencies.length === count) finish();
  };
  return { record, done: done.then(() => latencies) };
}

const raw: Case = {
  name: "raw ioredis BLPOP loop",
  async run(count) {
    const queue = `bench.latency.raw.${randomUUID().slice(0, 8)}`;
    const producer = new Redis(REDIS);
    const consumer = new Redis(REDIS);
    const { record, done } = recorder(count);
    let stopped = false;
    const loop = (async () => {
      while (!stopped) {
        const got = await consumer.blpop(queue, 0.1);
        if (got) record((JSON.parse(got[1]) as { sentAt: number }).sentAt);
      }
    })();
    await paced(count, (sentAt) => producer.rpush(queue, JSON.stringify({ event: "signup", sentAt })));
    const latencies = await done;
    stopped = true;
    await loop;
    await producer.del(queue);
    producer.disconnect();
    consumer.disconnect();
    return latencies;
  },
};

const wqueue: Case = {
  name: "wqueue worker, reliable list (default)",
  async run(count) {
    const queue = `bench.latency.wqueue.${randomUUID().slice(0, 8)}`;
    const { record, done } = recorder(count);
    const app = new WQueue();
    app.listenEvents(queue, async (message: { body: { sentAt: number } }) => record(message.body.sentAt));
    const worker = new Worker(app, { broker: REDIS, logger: createLogger("silent") });
    await worker.start();
    const producer = await createBroker(REDIS);
    await producer.connect();
    await paced(count, (sentAt) => producer.publish(queue, [{ body: Buffer.from(JSON.stringify({ event: "signup", sentAt })) }]));
    const latencies = await done;
    await worker.stop();
    await producer.close();
    const redis = new Redis(REDIS);
    const keys = await redis.keys(`${queue}*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
    return latencies;
  },
};

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
const ms = (value: number) => value.toFixed(2);

const cases = [raw, wqueue];
for (const test of cases) {
  const latencies = await test.run(RATE * WARM_UP_SECONDS);
  process.stderr.write(`warm-up ${test.name}: p50 ${ms(percentile(latencies.sort((a, b) => a - b), 50))} ms (not recorded)\n`);
}
const stats = cases.map(() => ({ p50: [] as number[], p99: [] as number[], max: [] as number[] }));
for (let round = 0; round < ROUNDS; round += 1) {
  const order = round % 2 === 0 ? [0, 1] : [1, 0];
  for (const index of order) {
    const test = cases[index] as Case;
    const sorted = (await test.run(RATE * SECONDS)).sort((a, b) => a - b);
    const got = { p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted[sorted.length - 1] as number };
    stats[index]?.p50.push(got.p50);
    stats[index]?.p99.push(got.p99);
    stats[index]?.max.push(got.max);
    process.stderr.write(`round ${round + 1} ${test.name}: p50 ${ms(got.p50)} ms, p99 ${ms(got.p99)} ms, max ${ms(got.max)} ms\n`);
  }
}

const p99s = stats.map((s) => median(s.p99));
const worstMax = Math.max(...(stats[1]?.max ?? []));
const p99Ratio = (p99s[1] as number) / (p99s[0] as number);
headline({ what: `p99 latency at ${RATE} msg/s, reliable worker / raw BLPOP loop`, value: p99Ratio, unit: "x", target: "<= 1.5x", met: p99Ratio <= 1.5 });
headline({ what: `max latency at ${RATE} msg/s, reliable worker`, value: worstMax, unit: "ms", target: "<= 10 ms", met: worstMax <= 10 });
console.log(`### Latency at a fixed rate (Redis)

${RATE} msg/s for ${SECONDS} s per case (${(RATE * SECONDS).toLocaleString("en")} messages), publish to handler, producer and
consumer in one process, a ${WARM_UP_SECONDS} s warm-up per case, ${ROUNDS} rounds alternating which case runs first, Node ${process.version}.
${machineLoad()}

| consumer | p50 ms (median of rounds) | p99 ms (median of rounds) | max ms (all rounds) |
| --- | ---: | ---: | ---: |
${cases.map((test, index) => `| ${test.name} | ${ms(median(stats[index]?.p50 ?? []))} | ${ms(median(stats[index]?.p99 ?? []))} | ${ms(Math.max(...(stats[index]?.max ?? [])))} |`).join("\n")}`);
process.exit(0);
