/**
 * What an idle queue costs on the brokers that `bench:many-queues` leaves out (issue 19): RabbitMQ,
 * NATS JetStream, SQS and Kinesis. For each, one worker (WQueue + Worker in this process, no-op
 * handler) over 1 empty queue, then over BENCH_QUEUES empty queues, same run: after `ready` and a
 * settling second, this process's CPU (process.cpuUsage) over BENCH_IDLE_MS, its open sockets
 * (/proc/self/fd: the worker's are all this process holds) and its RSS. The per-queue cost is the difference divided by the extra queues.
 * Kinesis streams are slow to create on kinesis-local: it gets BENCH_KINESIS_QUEUES (default 10).
 * Prints the machine load before and after: figures from a loaded machine are not comparable.
 *
 *   npm run bench:idle-queues                      # 100 queues (Kinesis 10), 10 s idle
 *   BENCH_QUEUES=20 BENCH_IDLE_MS=3000 BENCH_BROKERS=amqp,nats npm run bench:idle-queues
 */
import { randomUUID } from "node:crypto";
import { readdirSync, readlinkSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { pino } from "pino";
import { WQueue } from "../src/app/WQueue.js";
import { Worker } from "../src/worker/Worker.js";
import { machineLoad } from "./harness.js";

const QUEUES = Number(process.env.BENCH_QUEUES ?? 100);
const KINESIS_QUEUES = Number(process.env.BENCH_KINESIS_QUEUES ?? 10);
const IDLE_MS = Number(process.env.BENCH_IDLE_MS ?? 10_000);
const REDIS = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";
const run = randomUUID().slice(0, 8);
const brokers: Record<string, { url: string; queues: number; name: (i: number) => string }> = {
  amqp: { url: process.env.BENCH_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672", queues: QUEUES, name: (i) => `bench.idle.${run}.${i}` },
  nats: { url: process.env.BENCH_NATS_URL ?? "nats://127.0.0.1:4222", queues: QUEUES, name: (i) => `bench-idle-${run}-${i}` },
  sqs: { url: process.env.BENCH_SQS_URL ?? "sqs://127.0.0.1:9324?region=us-east-1", queues: QUEUES, name: (i) => `bench-idle-${run}-${i}` },
  kinesis: {
    url: process.env.BENCH_KINESIS_URL ?? `kinesis://127.0.0.1:4568?app=bench-idle-${run}&checkpoints=${encodeURIComponent(REDIS)}`,
    queues: KINESIS_QUEUES,
    name: (i) => `bench-idle-${run}-${i}`,
  },
};
const chosen = (process.env.BENCH_BROKERS ?? "amqp,nats,sqs,kinesis").split(",").filter((name) => name in brokers);
const logger = pino({ level: "warn" });

function openSockets(): number {
  let count = 0;
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).startsWith("socket:")) count += 1;
    } catch {
      // closed while listed
    }
  }
  return count;
}

interface Idle {
  cpuMs: number;
  sockets: number;
  rssMiB: number;
}

/** A worker over `count` empty queues, idle for IDLE_MS after ready. */
async function idle(url: string, names: string[]): Promise<Idle> {
  const app = new WQueue({ broker: url });
  for (const name of names) app.listenEvents(name, async () => {});
  const worker = new Worker(app, { concurrency: Math.max(100, names.length), logger });
  await worker.start();
  try {
    await sleep(1000);
    const start = process.cpuUsage();
    await sleep(IDLE_MS);
    const used = process.cpuUsage(start);
    return { cpuMs: (used.user + used.system) / 1000, sockets: openSockets(), rssMiB: process.memoryUsage().rss / 1048576 };
  } finally {
    await worker.stop(5000);
  }
}

const rows: string[] = [];
for (const kind of chosen) {
  const broker = brokers[kind] as (typeof brokers)[string];
  const one = await idle(broker.url, [broker.name(0)]);
  const many = await idle(
    broker.url,
    Array.from({ length: broker.queues }, (_, i) => broker.name(i + 1)),
  );
  const extra = broker.queues - 1;
  const share = (cpuMs: number) => `${((cpuMs / IDLE_MS) * 100).toFixed(1)}%`;
  rows.push(
    `| ${kind} | ${broker.queues} | ${share(one.cpuMs)} | ${share(many.cpuMs)} | ${((many.cpuMs - one.cpuMs) / extra / (IDLE_MS / 1000)).toFixed(2)} ms | ` +
      `${one.sockets} / ${many.sockets} | ${Math.round(one.rssMiB)} / ${Math.round(many.rssMiB)} |`,
  );
  console.error(`${kind}: done`);
}
console.log(`### Idle queues on RabbitMQ, NATS JetStream, SQS and Kinesis

Idle for ${IDLE_MS} ms after ready: one worker over 1 queue, then over N queues, same run.
CPU is this process's share of one core; "per queue" is the extra CPU per extra queue per second
(differences within about 0.1 ms are the noise of one 10 s window, below zero included).

| broker | N | CPU, 1 queue | CPU, N queues | per queue | sockets 1 / N | RSS MiB 1 / N |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
${rows.join("\n")}

${machineLoad()}`);
process.exit(0);
