/**
 * Adaptive concurrency (`concurrency: "auto"`) beside fixed concurrencies, same run: the handler
 * stands for a resource (a database) that takes 20 requests at once at its base latency (10 ms)
 * and slows down past that, as latency = 10 ms * (in flight / 20)^2 (at 40 in flight: 40 ms). So
 * the best fixed concurrency is 20, and fewer or more lose throughput.
 *
 * Cases: fixed 5, 10, 20, 40, 100, and "auto" (max 200, the worker's pool 200); each on a fresh
 * in-memory queue (the broker is not what is measured) preloaded with BENCH_MESSAGES, rounds
 * interleaved, medians reported. For "auto" the limit it found is sampled every 50 ms; the one it
 * settled at is the median of the samples of the second half of each run.
 *
 *   npm run bench:adaptive                               # 2,000 messages, 3 rounds
 *   BENCH_MESSAGES=1000 BENCH_ROUNDS=1 npm run bench:adaptive
 */
import { randomUUID } from "node:crypto";
import type { ListenOptions } from "../src/app/types.js";
import { WQueue } from "../src/app/WQueue.js";
import { createLogger } from "../src/log/logger.js";
import { Worker } from "../src/worker/Worker.js";
import { format, machineLoad, median, ratioAtLeast, within } from "./harness.js";

const N = Number(process.env.BENCH_MESSAGES ?? 2000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const KNEE = 20;
const BASE_MS = 10;
/** The simulated resource: flat up to KNEE requests at once, quadratically slower past it. */
const latencyAt = (inFlight: number) => (inFlight <= KNEE ? BASE_MS : BASE_MS * (inFlight / KNEE) ** 2);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Case {
  name: string;
  concurrency: ListenOptions["concurrency"];
}
const cases: Case[] = [
  ...[5, 10, 20, 40, 100].map((n) => ({ name: `fixed ${n}`, concurrency: n })),
  { name: "auto (max 200)", concurrency: { max: 200 } },
];

interface Run {
  rate: number;
  /** auto only: the median limit over the second half of the run. */
  settled?: number;
}

async function run(test: Case, count: number): Promise<Run> {
  const queue = `bench.adaptive.${randomUUID().slice(0, 8)}`;
  const app = new WQueue({ broker: `memory://${queue}` });
  let active = 0;
  let done = 0;
  let finished: () => void = () => {};
  const all = new Promise<void>((resolve) => {
    finished = resolve;
  });
  app.listenEvents(
    queue,
    async () => {
      active += 1;
      await sleep(latencyAt(active));
      active -= 1;
      done += 1;
      if (done === count) finished();
    },
    { concurrency: test.concurrency, retry: false },
  );
  for (let i = 0; i < count; i += 500) {
    await Promise.all(Array.from({ length: Math.min(500, count - i) }, (_, j) => app.publish(queue, { n: i + j })));
  }
  const worker = new Worker(app, { concurrency: 200, logger: createLogger("error") });
  const limits: number[] = [];
  const sampler = setInterval(() => {
    const limit = worker.adaptiveLimits().values().next().value;
    if (limit !== undefined) limits.push(limit);
  }, 50);
  const started = process.hrtime.bigint();
  await worker.start();
  await within(all, 120_000, `${count} messages handled (${test.name})`);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  clearInterval(sampler);
  await worker.stop(1000);
  await app.close();
  const secondHalf = limits.slice(Math.floor(limits.length / 2));
  return { rate: count / seconds, settled: secondHalf.length > 0 ? median(secondHalf) : undefined };
}

async function main(): Promise<void> {
  for (const test of cases) await run(test, Math.min(N, 300)); // warm-up, unrecorded
  const runs: Run[][] = cases.map(() => []);
  for (let round = 1; round <= ROUNDS; round += 1) {
    const order = cases.map((_, i) => (i + round - 1) % cases.length);
    for (const index of order) {
      const test = cases[index] as Case;
      const result = await run(test, N);
      runs[index]?.push(result);
      const settled = result.settled === undefined ? "" : `, settled at ${result.settled}`;
      process.stderr.write(`round ${round} ${test.name}: ${format(result.rate)} msgs/s${settled}\n`);
    }
  }
  const medians = runs.map((r) => median(r.map((one) => one.rate)));
  const autoIndex = cases.length - 1;
  const fixedMedians = medians.slice(0, autoIndex);
  const best = Math.max(...fixedMedians);
  const bestName = cases[fixedMedians.indexOf(best)]?.name ?? "";
  const settled = median((runs[autoIndex] ?? []).map((one) => one.settled ?? Number.NaN));
  const rows = cases.map(({ name }, i) => {
    const rates = (runs[i] ?? []).map((one) => one.rate);
    const limit = i === autoIndex ? `settled at ${settled}` : "";
    return `| ${name} | ${format(medians[i] as number)} | ${format(Math.min(...rates))} - ${format(Math.max(...rates))} | ${limit} |`;
  });
  const ratio = (medians[autoIndex] as number) / best;
  const nearKnee = settled >= KNEE * 0.75 && settled <= KNEE * 1.5;
  console.log(`### Adaptive concurrency: a resource that slows past ${KNEE} in flight

${N} messages per run, ${ROUNDS} rounds, in-memory queue, handler latency ${BASE_MS} ms up to ${KNEE} in flight, ${BASE_MS} ms * (in flight / ${KNEE})^2 past it.

| concurrency | median msgs/s | min - max | |
|---|---|---|---|
${rows.join("\n")}

"auto" settled at ${settled} (the knee is ${KNEE}: ${nearKnee ? "near it" : "NOT near it"}); its throughput vs the best fixed one (${bestName}): ${ratioAtLeast("adaptive concurrency vs the best fixed", ratio, 0.8)}`);
}

main()
  .then(() => console.log(machineLoad()))
  .catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  });
