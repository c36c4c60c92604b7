// `npm run bench:metrics`: what Prometheus metrics cost a no-op handler on Redis (list mode).
// The same worker runs with and without the metrics registry (what --http adds: the handler
// duration histogram, counters read at scrape time, plus one scrape per second during the run),
// in interleaved rounds on freshly preloaded lists. The in-memory per-queue counters are always on.
//   BENCH_MESSAGES=100000 BENCH_ROUNDS=5 npm run bench:metrics
import * as prom from "prom-client";
import { Redis } from "ioredis";
import { WQueue } from "../src/app/WQueue.js";
import { createLogger } from "../src/log/logger.js";
import { createMetricsRegistry } from "../src/observability/prometheus.js";
import { Worker } from "../src/worker/Worker.js";
import { headline, machineLoad } from "./harness.js";

const N = Number(process.env.BENCH_MESSAGES ?? 100_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const URL = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";
const redis = new Redis(URL);
const body = JSON.stringify({ event: "signup", n: 0 });

async function preload(queue: string): Promise<void> {
  await redis.del(queue);
  for (let i = 0; i < N; i += 1000) await redis.rpush(queue, ...Array(Math.min(1000, N - i)).fill(body));
}

async function run(withMetrics: boolean, round: number): Promise<number> {
  const queue = `bench.metrics.${withMetrics ? "on" : "off"}.${round}`;
  await preload(queue);
  const app = new WQueue();
  let handled = 0;
  let started = 0;
  let finish = () => {};
  const finished = new Promise<void>((resolve) => {
    finish = resolve;
  });
  app.listenEvents(queue, () => {
    if (handled === 0) started = performance.now();
    handled += 1;
    if (handled === N) finish();
  });
  const worker = new Worker(app, { broker: `${URL}?mode=list`, concurrency: 100, logger: createLogger("silent") });
  await worker.start();
  let scraper: NodeJS.Timeout | undefined;
  if (withMetrics) {
    const registry = createMetricsRegistry(
      {
        observer: worker.observer,
        inFlight: () => worker.inFlightBySubscription(),
        backlog: () => worker.backlog(),
      },
      prom,
    );
    scraper = setInterval(() => void registry.metrics(), 1000);
  }
  await finished;
  const rate = N / ((performance.now() - started) / 1000);
  clearInterval(scraper);
  await worker.stop();
  await redis.del(queue);
  return rate;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;
const off: number[] = [];
const on: number[] = [];
const ratios: number[] = [];
await run(false, -1); // warm-up
for (let round = 0; round < ROUNDS; round++) {
  const [first, second] = round % 2 === 0 ? [false, true] : [true, false];
  const a = await run(first, round);
  const b = await run(second, round);
  const [without, withM] = first ? [b, a] : [a, b];
  off.push(without);
  on.push(withM);
  ratios.push(withM / without);
  process.stderr.write(`round ${round + 1}: without ${Math.round(without)} msg/s, with ${Math.round(withM)} msg/s\n`);
}
redis.disconnect();
const cost = (1 - median(ratios)) * 100;
headline({ what: "Prometheus metrics cost (Redis list worker)", value: cost, unit: "%", target: "< 5%", met: cost < 5 });
console.log(`### Metrics overhead (Redis list, no-op handler, concurrency 100)

${N.toLocaleString("en")} messages per run, ${ROUNDS} interleaved rounds, Node ${process.version}.

| worker | msgs/s (median) |
| --- | ---: |
| without the metrics registry | ${Math.round(median(off)).toLocaleString("en")} |
| with the metrics registry, scraped every second | ${Math.round(median(on)).toLocaleString("en")} |

Median of each round's with/without ratio: ${median(ratios).toFixed(3)}x, a cost of ${cost.toFixed(1)}% (target < 5%).

${machineLoad()}`);
