/**
 * Many queues, one worker (issue 19): the full worker (WQueue + Worker, concurrency 100, no-op
 * handler, JSON decoding) handling BENCH_MESSAGES messages preloaded over 1 queue, and spread
 * evenly over BENCH_QUEUES queues, on the reliable Redis default, Redis Streams and SQLite: after
 * an unrecorded warm-up of both, BENCH_ROUNDS interleaved rounds (default 3), medians; then
 * fairness (one queue of BENCH_FAIR_BIG messages, the others BENCH_FAIR_SMALL each: how
 * far into the run the last small queue is first served); then an idle `wqueue worker -a app.ts`
 * (the built CLI, as a user runs it: `npm run build` first) over BENCH_QUEUES empty queues: its CPU
 * over BENCH_IDLE_MS, its RSS (now and peak), and its connections to Redis (CLIENT LIST, by
 * wqueue's client names).
 * Prints the machine load before and after: figures from a loaded machine are not comparable.
 *
 *   npm run build && npm run bench:many-queues     # 20,000 messages, 1,000 queues, 10 s idle
 *   BENCH_MESSAGES=5000 BENCH_QUEUES=200 BENCH_IDLE_MS=2000 BENCH_BROKERS=sqlite npm run bench:many-queues
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { pino } from "pino";
import { WQueue } from "../src/app/WQueue.js";
import { SqliteBroker } from "../src/brokers/sqlite/SqliteBroker.js";
import { Worker } from "../src/worker/Worker.js";
import { format, headline, interleavedRounds, machineLoad, median, ratioAtLeast, type Sample } from "./harness.js";
import { cpuSeconds, memoryMiB, startUntilReady, stopProcess } from "./process-stats.js";

const N = Number(process.env.BENCH_MESSAGES ?? 20_000);
const QUEUES = Number(process.env.BENCH_QUEUES ?? 1000);
const IDLE_MS = Number(process.env.BENCH_IDLE_MS ?? 10_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
/** The fairness case: one big queue and QUEUES - 1 small ones. */
const FAIR_BIG = Number(process.env.BENCH_FAIR_BIG ?? 10_000);
const FAIR_SMALL = Number(process.env.BENCH_FAIR_SMALL ?? 10);
const REDIS = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";
const ROOT = join(import.meta.dirname, "..");
const dir = mkdtempSync(join(tmpdir(), "wqueue-bench-many-"));
const brokers: Record<string, string> = {
  reliable: REDIS,
  stream: `${REDIS}${REDIS.includes("?") ? "&" : "?"}mode=stream`,
  sqlite: `sqlite://${join(dir, "bench.db")}`,
};
const chosen = (process.env.BENCH_BROKERS ?? "reliable,stream,sqlite").split(",").filter((name) => name in brokers);
const client = new Redis(REDIS, { lazyConnect: true, connectionName: `bench-many-queues-${process.pid}` });
const prefixes: string[] = [];
const logger = pino({ level: "warn" });

function queueNames(count: number): string[] {
  const prefix = `bench.many.${randomUUID().slice(0, 8)}.`;
  prefixes.push(prefix);
  return Array.from({ length: count }, (_, i) => `${prefix}${i}`);
}

/** `count` messages spread evenly over `queues`, written straight to the broker. */
async function preload(kind: string, url: string, queues: string[], count: number): Promise<void> {
  const per = (index: number) => Math.floor(count / queues.length) + (index < count % queues.length ? 1 : 0);
  if (kind === "sqlite") {
    const broker = new SqliteBroker(url);
    for (const [index, queue] of queues.entries()) {
      await broker.publish(queue, Array.from({ length: per(index) }, (_, i) => ({ body: Buffer.from(`{"n":${i}}`) })));
    }
    await broker.close();
    return;
  }
  let pipeline = client.pipeline();
  for (const [index, queue] of queues.entries()) {
    for (let i = 0; i < per(index); i += 1) {
      if (kind === "stream") pipeline.xadd(queue, "*", "body", `{"n":${i}}`);
      else pipeline.rpush(queue, `{"n":${i}}`);
    }
    if (pipeline.length >= 5000) {
      await pipeline.exec();
      pipeline = client.pipeline();
    }
  }
  await pipeline.exec();
}

async function startWorker(url: string, queues: string[], onMessage: () => void): Promise<Worker> {
  const app = new WQueue({ broker: url });
  for (const queue of queues) app.listenEvents(queue, onMessage);
  const worker = new Worker(app, { broker: url, concurrency: 100, logger });
  await worker.start();
  return worker;
}

/**
 * Messages per second of a worker over `queueCount` queues draining N preloaded messages, timed
 * from the end of worker.start() (its loops start in its last synchronous step), and the start-up.
 */
async function throughput(kind: string, url: string, queueCount: number): Promise<Sample & { startup: number }> {
  const queues = queueNames(queueCount);
  await preload(kind, url, queues, N);
  let handled = 0;
  let done = () => {};
  const finished = new Promise<void>((resolve) => {
    done = resolve;
  });
  const starting = process.hrtime.bigint();
  const worker = await startWorker(url, queues, () => {
    handled += 1;
    if (handled === N) done();
  });
  const started = process.hrtime.bigint();
  const cpu = process.cpuUsage();
  await finished;
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const used = process.cpuUsage(cpu);
  await worker.stop(5000);
  return { rate: N / seconds, cpuMicros: (used.user + used.system) / N, startup: Number(started - starting) / 1e9 };
}

/** Connections of process `pid` to Redis under wqueue's client names. */
async function wqueueConnections(pid: number): Promise<number> {
  const list = (await client.client("LIST")) as string;
  return list.split("\n").filter((line) => / name=wqueue-\S+ /.test(line) && line.includes(`-${pid} `)).length;
}

/**
 * An idle worker over QUEUES empty queues as a user starts it: `wqueue worker -a app.ts
 * --concurrency 100` (the built CLI, the app loaded through tsx), an app of QUEUES `listenEvents`
 * with a no-op handler. After its ready line and a settling second: its CPU time over IDLE_MS
 * (/proc), its RSS now and at peak, and its connections to Redis (CLIENT LIST, by wqueue's client names).
 */
async function idle(kind: string, url: string): Promise<string> {
  // Inside the project, so that the app's `import "wqueue"` resolves to this package.
  const appDir = mkdtempSync(join(ROOT, "bench/.idle-many-"));
  try {
    writeFileSync(
      join(appDir, "app.ts"),
      `import { WQueue } from "wqueue";
export const app = new WQueue({ broker: ${JSON.stringify(url)} });
for (const queue of ${JSON.stringify(queueNames(QUEUES))}) app.listenEvents(queue, async (_message) => {});
`,
    );
    const name = `wqueue worker over ${QUEUES} ${kind} queues`;
    const child = await startUntilReady(name, [join(ROOT, "bin/wqueue.js"), "worker", "-a", "app.ts", "--concurrency", "100"], appDir, /ready: /);
    const pid = child.pid as number;
    try {
      await new Promise((resolve) => setTimeout(resolve, 1000)); // past the start-up
      const before = cpuSeconds([pid]);
      await new Promise((resolve) => setTimeout(resolve, IDLE_MS));
      const cpu = cpuSeconds([pid]) - before;
      const { rss, peak } = memoryMiB(pid);
      const connections = kind === "sqlite" ? "-" : String(await wqueueConnections(pid));
      const share = (cpu * 1000 * 100) / IDLE_MS;
      headline({ what: `idle worker over ${format(QUEUES)} ${kind} queues, CPU share of a core`, value: share, unit: "%", target: "< 2%", met: share < 2 });
      headline({ what: `idle worker over ${format(QUEUES)} ${kind} queues, peak RSS`, value: peak, unit: "MiB", target: "< 100 MiB", met: peak < 100 });
      return `${cpu.toFixed(2)} s CPU per ${IDLE_MS / 1000} s (${share.toFixed(1)}% of a core), ${rss.toFixed(0)} MiB RSS (peak ${peak.toFixed(0)}), ${connections} Redis connections`;
    } finally {
      await stopProcess(child, name);
    }
  } finally {
    rmSync(appDir, { recursive: true, force: true });
  }
}

/**
 * Fairness: one queue holding FAIR_BIG messages and QUEUES - 1 holding FAIR_SMALL each, preloaded;
 * how far into the run (handled messages / all) the last small queue got its first message served.
 */
async function fairness(kind: string, url: string): Promise<number> {
  const [big, ...small] = queueNames(QUEUES) as [string, ...string[]];
  await preload(kind, url, [big], FAIR_BIG);
  await preload(kind, url, small, FAIR_SMALL * small.length);
  const total = FAIR_BIG + FAIR_SMALL * small.length;
  const firstServedAt = new Map<string, number>();
  let handled = 0;
  let done = () => {};
  const finished = new Promise<void>((resolve) => {
    done = resolve;
  });
  const app = new WQueue({ broker: url });
  for (const queue of [big, ...small]) {
    app.listenEvents(queue, () => {
      handled += 1;
      if (!firstServedAt.has(queue)) firstServedAt.set(queue, handled);
      if (handled === total) done();
    });
  }
  const worker = new Worker(app, { broker: url, concurrency: 100, logger });
  await worker.start();
  await finished;
  await worker.stop(5000);
  const last = Math.max(...small.map((queue) => firstServedAt.get(queue) ?? Number.POSITIVE_INFINITY));
  const share = last / total;
  headline({ what: `${kind}: last of ${format(small.length)} small queues first served at this share of the run`, value: share * 100, unit: "%", target: "<= 20%", met: share <= 0.2 });
  return share;
}

async function cleanUp(): Promise<void> {
  for (const prefix of prefixes) {
    let cursor = "0";
    do {
      const [next, keys] = await client.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
      cursor = next;
      if (keys.length > 0) await client.del(...keys);
    } while (cursor !== "0");
  }
}

async function main(): Promise<void> {
  console.log(machineLoad());
  console.log(`${format(N)} messages, 1 queue vs ${format(QUEUES)} queues; idle over ${format(QUEUES)} queues for ${IDLE_MS / 1000} s`);
  console.log(`Fairness: 1 queue of ${format(FAIR_BIG)} and ${format(QUEUES - 1)} of ${format(FAIR_SMALL)}, preloaded: how far into the run the last small queue was first served.`);
  console.log(`Throughput: medians of ${ROUNDS} interleaved rounds after a warm-up (min-max in brackets).`);
  console.log("| broker | 1 queue (msg/s) | many queues (msg/s) | ratio | start-up over many queues | fairness: last small queue first served at | idle over many queues (a worker process of its own) |");
  console.log("|---|---:|---:|---:|---:|---:|---|");
  await client.connect();
  try {
    for (const kind of chosen) {
      const url = brokers[kind] as string;
      const cases = [{ name: `${kind}, 1 queue`, queues: 1 }, { name: `${kind}, ${format(QUEUES)} queues`, queues: QUEUES }];
      const startups: number[] = [];
      const samples = await interleavedRounds(cases, ROUNDS, (test) => throughput(kind, url, test.queues), async (test) => {
        const sample = await throughput(kind, url, test.queues);
        if (test.queues > 1) startups.push(sample.startup);
        return sample;
      });
      const [one, many] = samples.map((values) => median(values.map((sample) => sample.rate))) as [number, number];
      const range = (values: Sample[]) => `${format(Math.min(...values.map((v) => v.rate)))}-${format(Math.max(...values.map((v) => v.rate)))}`;
      const fair = await fairness(kind, url);
      const idleFigures = await idle(kind, url);
      ratioAtLeast(`${kind}: ${format(QUEUES)} queues / 1 queue throughput (medians of ${ROUNDS} interleaved rounds)`, many / one, 0.8);
      const ratio = (many / one).toFixed(2);
      console.log(`| ${kind} | ${format(one)} (${range(samples[0] ?? [])}) | ${format(many)} (${range(samples[1] ?? [])}) | ${ratio}x | ${median(startups).toFixed(2)} s | ${(fair * 100).toFixed(1)}% | ${idleFigures} |`);
    }
  } finally {
    await cleanUp();
    client.disconnect();
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(machineLoad());
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
