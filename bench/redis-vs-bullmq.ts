// `npm run bench:bullmq`: WQueue's at-least-once Redis modes against BullMQ, in one run.
// BullMQ: its Worker with a no-op processor at concurrency 50, jobs added with addBulk before the
// clock starts. WQueue: `wqueue`'s Worker with a no-op handler at concurrency 50 on the reliable list
// and on Streams, messages pushed before the clock starts. Each clock runs from the first handled
// message to the last. Every case first runs once unrecorded (warm-up: JIT, connections, Redis's
// memory), then interleaved rounds, each starting with another case (round 1 BullMQ first, round 2
// the reliable list, ...), so neither the first slot nor the machine's changing load favours one.
// Medians and the median of each round's ratio; the machine's load before and after.
//   BENCH_MESSAGES=50000 BENCH_ROUNDS=3 npm run bench:bullmq
import { Queue, Worker as BullWorker } from "bullmq";
import { Redis } from "ioredis";
import { WQueue } from "../src/app/WQueue.js";
import { createBroker } from "../src/brokers/registry.js";
import { createLogger } from "../src/log/logger.js";
import { Worker } from "../src/worker/Worker.js";
import { headline, machineLoad } from "./harness.js";

const N = Number(process.env.BENCH_MESSAGES ?? 50_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const REDIS = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";
const CONCURRENCY = 50;
const payload = { event: "signup", n: 0 };

/** Resolves with msgs/s once `count` handler calls happened, timed from the first. */
function counter(count: number) {
  let handled = 0;
  let started = 0;
  let finish: (rate: number) => void = () => {};
  const done = new Promise<number>((resolve) => {
    finish = resolve;
  });
  const tick = () => {
    if (handled === 0) started = performance.now();
    handled += 1;
    if (handled === count) finish(count / ((performance.now() - started) / 1000));
  };
  return { tick, done };
}

async function bullmq(round: number | string, n = N): Promise<number> {
  const name = `bench-bullmq-${round}-${Date.now()}`;
  const connection = { host: "127.0.0.1", port: 6379 };
  const queue = new Queue(name, { connection });
  for (let i = 0; i < n; i += 1000) {
    await queue.addBulk(Array.from({ length: Math.min(1000, n - i) }, () => ({ name: "job", data: payload, opts: { removeOnComplete: true } })));
  }
  const { tick, done } = counter(n);
  const worker = new BullWorker(name, async () => tick(), { connection, concurrency: CONCURRENCY });
  const rate = await done;
  await worker.close();
  await queue.obliterate({ force: true });
  await queue.close();
  return rate;
}

async function wqueue(mode: "reliable" | "stream", round: number | string, n = N): Promise<number> {
  const queue = `bench.${mode}.${round}.${Date.now()}`;
  const url = `${REDIS}?mode=${mode}`;
  const producer = await createBroker(url);
  await producer.connect();
  const body = Buffer.from(JSON.stringify(payload));
  for (let i = 0; i < n; i += 1000) await producer.publish(queue, Array.from({ length: Math.min(1000, n - i) }, () => ({ body })));
  await producer.close();
  const app = new WQueue();
  const { tick, done } = counter(n);
  app.listenEvents(queue, () => tick());
  const worker = new Worker(app, { broker: url, concurrency: CONCURRENCY, logger: createLogger("silent") });
  await worker.start();
  const rate = await done;
  await worker.stop();
  const redis = new Redis(REDIS);
  const keys = await redis.keys(`${queue}*`);
  if (keys.length > 0) await redis.del(...keys);
  redis.disconnect();
  return rate;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;
const cases = [
  { name: "bullmq", run: (round: number | string, n?: number) => bullmq(round, n) },
  { name: "reliable", run: (round: number | string, n?: number) => wqueue("reliable", round, n) },
  { name: "stream", run: (round: number | string, n?: number) => wqueue("stream", round, n) },
] as const;
type CaseName = (typeof cases)[number]["name"];

const WARM_UP = Math.max(1000, Math.floor(N / 10));
for (const { name, run } of cases) {
  const rate = await run(`warmup-${name}`, WARM_UP);
  process.stderr.write(`warm-up ${name}: ${Math.round(rate)} msgs/s (${WARM_UP} messages, not recorded)\n`);
}
const rates: Record<CaseName, number[]> = { bullmq: [], reliable: [], stream: [] };
const ratios = { reliable: [] as number[], stream: [] as number[] };
for (let round = 0; round < ROUNDS; round++) {
  const order = cases.map((_, i) => cases[(round + i) % cases.length] as (typeof cases)[number]);
  const got = {} as Record<CaseName, number>;
  for (const { name, run } of order) got[name] = await run(round);
  for (const { name } of cases) rates[name].push(got[name]);
  ratios.reliable.push(got.reliable / got.bullmq);
  ratios.stream.push(got.stream / got.bullmq);
  process.stderr.write(
    `round ${round + 1} (${order.map((c) => c.name).join(" → ")}): BullMQ ${Math.round(got.bullmq)}, reliable ${Math.round(got.reliable)}, stream ${Math.round(got.stream)} msgs/s\n`,
  );
}
const f = (n: number) => Math.round(n).toLocaleString("en");
for (const [mode, what] of [["reliable", "Reliable Redis worker / BullMQ Worker (c50)"], ["stream", "Redis Streams worker / BullMQ Worker (c50)"]] as const) {
  const value = median(ratios[mode]);
  headline({ what, value, unit: "x", target: ">= 8x", met: value >= 8 });
}
console.log(`### WQueue on Redis vs BullMQ

${N.toLocaleString("en")} messages per case, no-op handler, concurrency 50, a warm-up of ${WARM_UP.toLocaleString("en")} per case, ${ROUNDS} interleaved rounds (each starting with another case), Node ${process.version}.
${machineLoad()}

| consumer | msgs/s (median) | vs BullMQ (median of round ratios) | target |
| --- | ---: | ---: | --- |
| BullMQ Worker | ${f(median(rates.bullmq))} | 1.00x | |
| WQueue, reliable list | ${f(median(rates.reliable))} | ${median(ratios.reliable).toFixed(2)}x | >= 8x |
| WQueue, Streams | ${f(median(rates.stream))} | ${median(ratios.stream).toFixed(2)}x | >= 8x |`);
process.exit(0);
