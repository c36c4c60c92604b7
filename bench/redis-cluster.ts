/**
 * No-op throughput of the at-least-once Redis modes on a Redis Cluster of this bench's own
 * (3 masters, no replicas, on loopback, started and removed here as the cluster tests do) beside
 * the raw ioredis Cluster client's own loops on the same cluster, and beside the same adapters on
 * one Redis (a private redis-server of the same build), in one run:
 *   (b) raw Cluster `LPOP key 100` (at most once);
 *   (m) raw Cluster reliable-queue loop (Redis's documented pattern, at least once): 100
 *       `LMOVE queue {queue}:raw:processing LEFT RIGHT` in one pipeline, the no-op handlers, then
 *       `DEL` of the processing list;
 *   (x) raw Cluster `XREADGROUP COUNT 100` + one `XACK` of the batch;
 *   (r) / (s) mode=reliable / mode=stream adapter on the Cluster;
 *   (r1) / (s1) the same on one Redis;
 *   (wr) / (ws) the full worker (WQueue + Worker, concurrency 100) on the Cluster, mode=reliable / stream;
 *   (wr1) / (ws1) the same worker on one Redis.
 * Every case consumes QUEUES queues (default 3, one per master) at once, one loop per queue (the
 * worker: its consumers); each adapter loop is driven as a worker with concurrency 100 drives it:
 * `receive(100)`, a no-op async handler per delivery, `ack()` as each finishes (acks of one turn
 * coalesce), the batch's acks awaited before the next receive. Each case runs on freshly preloaded
 * queues after an unmeasured warm-up; rounds are interleaved (each starts with the next case) and
 * medians are reported, with the paired ratios issue 16 asks: each adapter on the Cluster against
 * the raw client's loop of its kind, (r) / (m) and (s) / (x) (target >= 1.0x), and Cluster / one Redis.
 *
 *   npm run bench:redis-cluster                       # 60,000 messages, 5 rounds, a 60,000-message warm-up
 *   BENCH_MESSAGES=30000 BENCH_ROUNDS=5 npm run bench:redis-cluster
 */
import { randomUUID } from "node:crypto";
import { cpus } from "node:os";
import { Cluster, Redis } from "ioredis";
import type { Delivery } from "../src/brokers/contract.js";
import { openRedisBroker } from "../src/brokers/redis/open-redis-broker.js";
import { startPrivateRedisCluster } from "../test/brokers/redis-private-cluster.js";
import { startPrivateRedis } from "../test/brokers/redis-private-server.js";
import { interleavedRounds, machineLoad, median, ratioAtLeast, type Sample, summarize, timed, within } from "./harness.js";

const N = Number(process.env.BENCH_MESSAGES ?? 60_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const QUEUES = Number(process.env.BENCH_QUEUES ?? 3);
const BATCH = 100;
// A full unrecorded pass per case: the adapters' first passes of N run 20-40% below their later
// ones (the raw loops' do not), and a consumer in service runs warm.
const WARMUP = Number(process.env.BENCH_WARMUP ?? N);
const body = (i: number) => `{"event":"signup","n":${i}}`;
const noop = async (_message: unknown): Promise<void> => {};

type Kind = "list" | "stream";
type Place = "cluster" | "single";
interface Case {
  name: string;
  kind: Kind;
  place: Place;
  /** Sets up consuming `each` messages from every queue; `consume` runs the clock. */
  start(queues: string[], each: number): Promise<{ consume(): Promise<void>; stop(): Promise<void> }>;
}

const cluster = await startPrivateRedisCluster({ replicas: 0 });
const single = await startPrivateRedis();
const clusterUrl = (mode: string) => `${cluster.seeds}?cluster=true&mode=${mode}`;
const singleUrl = (mode: string) => `${single.url}?mode=${mode}`;
const clusterClient = new Cluster(cluster.ports.map((port) => ({ host: "127.0.0.1", port })));
const singleClient = new Redis(single.url);
const clientOf = (place: Place): Redis | Cluster => (place === "cluster" ? clusterClient : singleClient);

/** Queue names, one per master in turn, so the load spreads as a deployment's queues do. */
async function newQueues(place: Place): Promise<string[]> {
  const prefix = `bench.cluster.${randomUUID().slice(0, 8)}.`;
  if (place === "single") return Array.from({ length: QUEUES }, (_, i) => `${prefix}${i}`);
  const picked: string[] = [];
  const masters = new Set<number>();
  for (let index = 0; picked.length < QUEUES; index += 1) {
    const queue = `${prefix}${index}`;
    const { master } = await cluster.ownerOf(queue);
    if (masters.size < 3 && masters.has(master)) continue;
    masters.add(master);
    picked.push(queue);
  }
  return picked;
}

/** `each` messages in every queue (a pipeline per queue: one slot each). */
async function preload(test: Case, each: number): Promise<string[]> {
  const queues = await newQueues(test.place);
  const client = clientOf(test.place);
  await Promise.all(
    queues.map(async (queue) => {
      for (let start = 0; start < each; start += 10_000) {
        const pipeline = client.pipeline();
        const end = Math.min(each, start + 10_000);
        if (test.kind === "stream") for (let i = start; i < end; i += 1) pipeline.xadd(queue, "*", "body", body(i));
        else
          for (let chunk = start; chunk < end; chunk += 1000) {
            pipeline.rpush(queue, ...Array.from({ length: Math.min(end, chunk + 1000) - chunk }, (_, i) => body(chunk + i)));
          }
        await pipeline.exec();
      }
    }),
  );
  return queues;
}

/** Every key of the place matching `pattern` (on a Cluster, from every master). */
async function keysMatching(place: Place, pattern: string): Promise<string[]> {
  const nodes = place === "cluster" ? clusterClient.nodes("master") : [singleClient];
  return (await Promise.all(nodes.map((node) => node.keys(pattern)))).flat();
}

/** Messages still in the queues or held unacked, then every key of the queues removed. */
async function leftOverAndClean(test: Case, queues: string[]): Promise<number> {
  const client = clientOf(test.place);
  let left = 0;
  for (const queue of queues) {
    // The bookkeeping keys are `<queue>:wqueue:*`, or `{<queue>}:wqueue:*` on a Cluster.
    const keys = [...(await keysMatching(test.place, `${queue}*`)), ...(await keysMatching(test.place, `{${queue}}*`))];
    if (test.kind === "list") {
      left += await client.llen(queue);
      for (const key of keys.filter((key) => key.includes(":processing"))) left += await client.llen(key);
    } else {
      const pending = (await client.xpending(queue, "wqueue").catch(() => [0])) as [number];
      left += pending[0];
    }
    for (const key of keys) await client.del(key);
  }
  return left;
}

/** A raw loop per queue on the Cluster client, all at once. */
const raw = (name: string, kind: Kind, loop: (queue: string, each: number) => Promise<void>): Case => ({
  name,
  kind,
  place: "cluster",
  start: async (queues, each) => ({ consume: async () => void (await Promise.all(queues.map((queue) => loop(queue, each)))), stop: async () => {} }),
});

const rawLpop = raw("(b) raw Cluster `LPOP key 100` (at most once)", "list", async (queue, each) => {
  for (let got = 0; got < each; ) {
    const items = await clusterClient.lpopBuffer(queue, BATCH);
    if (items === null) throw new Error("LPOP found an empty list: drained early");
    for (const item of items) await noop(item);
    got += items.length;
  }
});

const rawLmove = raw("(m) raw Cluster 100 x `LMOVE` to a processing list + `DEL` per batch", "list", async (queue, each) => {
  const processing = `{${queue}}:raw:processing`;
  for (let got = 0; got < each; ) {
    const pipeline = clusterClient.pipeline();
    for (let i = 0; i < Math.min(BATCH, each - got); i += 1) pipeline.lmoveBuffer(queue, processing, "LEFT", "RIGHT");
    const items = ((await pipeline.exec()) ?? []).map(([error, item]) => {
      if (error) throw error;
      return item;
    });
    if (items.some((item) => item === null)) throw new Error("LMOVE found an empty list: drained early");
    await Promise.all(items.map((item) => noop(item)));
    await clusterClient.del(processing);
    got += items.length;
  }
});

const rawStream = raw("(x) raw Cluster `XREADGROUP COUNT 100` + `XACK` per batch", "stream", async (queue, each) => {
  await clusterClient.xgroup("CREATE", queue, "wqueue", "0", "MKSTREAM");
  for (let got = 0; got < each; ) {
    const reply = (await clusterClient.xreadgroup("GROUP", "wqueue", "bench", "COUNT", BATCH, "STREAMS", queue, ">")) as
      | [string, [string, string[]][]][]
      | null;
    const entries = reply?.[0]?.[1] ?? [];
    if (entries.length === 0) throw new Error("XREADGROUP found nothing: drained early");
    for (const entry of entries) await noop(entry);
    await clusterClient.xack(queue, "wqueue", ...entries.map(([id]) => id));
    got += entries.length;
  }
});

const adapter = (name: string, kind: Kind, place: Place, mode: string): Case => ({
  name,
  kind,
  place,
  async start(queues, each) {
    const broker = openRedisBroker(place === "cluster" ? clusterUrl(mode) : singleUrl(mode));
    await broker.connect();
    const signal = AbortSignal.timeout(600_000);
    const loop = async (queue: string) => {
      const consumer = broker.consumer(queue);
      for (let got = 0; got < each; ) {
        const deliveries = await consumer.receive(BATCH, signal);
        await Promise.all(deliveries.map((delivery: Delivery) => noop(delivery).then(() => delivery.ack())));
        got += deliveries.length;
      }
    };
    return { consume: async () => void (await Promise.all(queues.map(loop))), stop: () => broker.close() };
  },
});

/** The worker is loaded lazily. Its clock starts at its first message, after its start-up. */
const worker = (name: string, kind: Kind, place: Place, mode: string): Case => ({
  name,
  kind,
  place,
  async start(queues, each) {
    const [{ WQueue }, { Worker }, { createLogger }] = await Promise.all([
      import("../src/app/WQueue.js"),
      import("../src/worker/Worker.js"),
      import("../src/log/logger.js"),
    ]);
    const app = new WQueue();
    const total = queues.length * each;
    let handled = 0;
    const seen = { first: () => {}, last: () => {} };
    const first = new Promise<void>((resolve) => {
      seen.first = resolve;
    });
    const last = new Promise<void>((resolve) => {
      seen.last = resolve;
    });
    for (const queue of queues) {
      app.listenEvents(queue, () => {
        handled += 1;
        if (handled === 1) seen.first();
        if (handled === total) seen.last();
      });
    }
    const running = new Worker(app, { broker: place === "cluster" ? clusterUrl(mode) : singleUrl(mode), concurrency: BATCH, logger: createLogger("silent") });
    await running.start();
    await within(first, 10_000, "the worker's first message");
    return { consume: () => within(last, 600_000, "the worker's last message"), stop: () => running.stop() };
  },
});

async function measure(test: Case, total: number): Promise<Sample> {
  const each = Math.ceil(total / QUEUES);
  const queues = await preload(test, each);
  const run = await test.start(queues, each);
  const sample = await timed(each * queues.length - (test.name.startsWith("(w") ? 1 : 0), run.consume);
  await run.stop();
  const left = await leftOverAndClean(test, queues);
  if (left !== 0) throw new Error(`${test.name}: ${left} messages left unacked`);
  return sample;
}

/** Median over rounds of x/y within each round: the two ran back to back, under the same load. */
function paired(cases: Case[], samples: Sample[][], x: string, y: string): number {
  const at = (tag: string) => samples[cases.findIndex((test) => test.name.startsWith(`(${tag})`))];
  const [xs, ys] = [at(x), at(y)];
  if (!xs || !ys) return Number.NaN;
  return median(xs.map((sample, round) => sample.rate / (ys[round]?.rate ?? Number.NaN)));
}

async function main(): Promise<void> {
  const all: Case[] = [
    rawLpop,
    rawLmove,
    rawStream,
    adapter("(r) mode=reliable adapter on the Cluster", "list", "cluster", "reliable"),
    adapter("(s) mode=stream adapter on the Cluster", "stream", "cluster", "stream"),
    adapter("(r1) mode=reliable adapter on one Redis", "list", "single", "reliable"),
    adapter("(s1) mode=stream adapter on one Redis", "stream", "single", "stream"),
    worker("(wr) worker on the Cluster, mode=reliable", "list", "cluster", "reliable"),
    worker("(ws) worker on the Cluster, mode=stream", "stream", "cluster", "stream"),
    worker("(wr1) worker on one Redis, mode=reliable", "list", "single", "reliable"),
    worker("(ws1) worker on one Redis, mode=stream", "stream", "single", "stream"),
  ];
  // BENCH_CASES=b,m,r runs only those (the ratios then need their cases).
  const only = process.env.BENCH_CASES?.split(",");
  const cases = only ? all.filter((test) => only.includes(/^\((\w+)\)/.exec(test.name)?.[1] ?? "")) : all;
  const samples = await interleavedRounds(cases, ROUNDS, (test) => measure(test, WARMUP), (test) => measure(test, N));
  const { rows } = summarize(cases, samples);
  const ratio = (what: string, x: string, y: string, least?: number) => {
    const value = paired(cases, samples, x, y);
    if (Number.isNaN(value)) return `- ${what}: n/a (not run)`;
    return `- ${what}: ${least === undefined ? `${value.toFixed(2)}x` : ratioAtLeast(what, value, least)}`;
  };
  const version = /redis_version:(\S+)/.exec(await singleClient.info("server"))?.[1] ?? "?";
  console.log(`### Redis Cluster: wqueue's at-least-once modes against the raw ioredis Cluster client

${(Math.ceil(N / QUEUES) * QUEUES).toLocaleString("en-US")} messages of about ${Buffer.byteLength(body(N))} bytes over ${QUEUES} queues (one per master, a loop per queue at once),
batch ${BATCH}, median of ${ROUNDS} interleaved rounds after a ${WARMUP.toLocaleString("en-US")}-message warm-up. A private Redis Cluster of
3 masters (no replicas) and a private single Redis, Redis ${version}, on loopback (no persistence), Node ${process.version},
${cpus()[0]?.model.trim() ?? "unknown CPU"} (${cpus().length} cores, shared with the 4 redis-servers and other work).
${machineLoad()}

| Consumer | msgs/s (median) | range | CPU µs/msg (client) |
| --- | ---: | ---: | ---: |
${rows.join("\n")}

Paired per round (median of the rounds' ratios):
${ratio("Redis Cluster reliable adapter / raw Cluster LMOVE loop", "r", "m", 1)}
${ratio("Redis Cluster Streams adapter / raw Cluster XREADGROUP loop", "s", "x", 1)}
${ratio("reliable adapter (r) / raw Cluster LPOP 100 (b, at most once)", "r", "b")}
${ratio("reliable adapter, Cluster (r) / one Redis (r1)", "r", "r1")}
${ratio("Streams adapter, Cluster (s) / one Redis (s1)", "s", "s1")}
${ratio("worker on the Cluster, reliable (wr) / raw LMOVE loop (m)", "wr", "m")}
${ratio("worker, reliable, Cluster (wr) / one Redis (wr1)", "wr", "wr1")}
${ratio("worker, Streams, Cluster (ws) / one Redis (ws1)", "ws", "ws1")}
${ratio("worker on the Cluster, Streams (ws) / raw XREADGROUP loop (x)", "ws", "x")}
`);
}

main()
  .catch((error: Error) => {
    console.error(error.message);
    process.exitCode = 1;
  })
  .finally(async () => {
    clusterClient.disconnect();
    singleClient.disconnect();
    await cluster.stop();
    await single.stop();
  });
