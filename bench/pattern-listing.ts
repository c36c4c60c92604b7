/**
 * What one listing of a Redis queue pattern costs (subscriptions by pattern, issue 19): the
 * reliable mode's listQueues("tenant.*") over 1,000 matching list queues among BENCH_KEYS other
 * keys, on a redis-server of its own (the listing SCANs the whole keyspace, so its cost grows with
 * every key of the database, not with the matches). Median of 5 listings per size. A pattern
 * subscription pays this once per `discoverMs` (default 5000).
 *
 *   npm run bench:pattern-listing                          # 10,000, 100,000 and 1,000,000 other keys
 *   BENCH_KEYS=10000,50000 npm run bench:pattern-listing
 */
import { openRedisBroker } from "../src/brokers/redis/open-redis-broker.js";
import { startPrivateRedis } from "../test/brokers/redis-private-server.js";
import { machineLoad } from "./harness.js";

const SIZES = (process.env.BENCH_KEYS ?? "10000,100000,1000000").split(",").map(Number);
const QUEUES = 1000;
const RUNS = 5;
const FILL_CHUNK = 10_000;

const server = await startPrivateRedis();
const redis = server.client();
const broker = openRedisBroker(server.url);
try {
  await broker.connect();
  const listQueues = broker.listQueues?.bind(broker) as (pattern: string) => Promise<string[]>;
  for (const size of SIZES) {
    await redis.flushall();
    for (let start = 0; start < size; start += FILL_CHUNK) {
      const pairs: string[] = [];
      for (let i = start; i < Math.min(size, start + FILL_CHUNK); i += 1) pairs.push(`other:${i}`, "x");
      await redis.mset(...pairs);
    }
    const pipeline = redis.pipeline();
    for (let i = 0; i < QUEUES; i += 1) pipeline.rpush(`tenant.t${i}`, "x");
    await pipeline.exec();
    const times: number[] = [];
    for (let run = 0; run < RUNS; run += 1) {
      const from = performance.now();
      const found = await listQueues("tenant.*");
      times.push(performance.now() - from);
      if (found.length !== QUEUES) throw new Error(`found ${found.length} queues, expected ${QUEUES}`);
    }
    times.sort((a, b) => a - b);
    const ms = (value: number | undefined) => `${(value ?? 0).toFixed(1)} ms`;
    console.log(`${(size + QUEUES).toLocaleString("en")} keys: one listing ${ms(times[2])} (median of ${RUNS}; ${ms(times[0])} to ${ms(times[RUNS - 1])})`);
  }
} finally {
  await broker.close();
  await server.stop();
}
console.log(machineLoad());
