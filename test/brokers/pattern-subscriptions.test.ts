import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Message } from "../../src/app/types.js";
import { WQueue } from "../../src/app/WQueue.js";
import { BrokerSet } from "../../src/brokers/BrokerSet.js";
import { Worker } from "../../src/worker/Worker.js";
import { memoryLogger, waitFor } from "../helpers.js";
import { deleteKeysStartingWith } from "./redis-helpers.js";
import { ensureKafka, KAFKA_URL } from "../setup/ensure-kafka.js";
import { requireRabbit } from "./amqp-server.js";
import { type PrivateRedisCluster, startPrivateRedisCluster } from "./redis-private-cluster.js";
import { requireNats } from "./nats-server.js";
import { dropSchema, schemaUrl, testSchema } from "./postgres-helpers.js";

/**
 * Subscriptions by pattern (issue 19) on real brokers, with a real worker: `listenEvents("<p>.*")`
 * consumes the matching queues that exist at start, picks up a queue created after `ready` (within
 * its `discoverMs`), hands the handler the concrete queue name, keeps stats per concrete queue,
 * and leaves alone the queues it does not match. Brokers that cannot list queues refuse a pattern
 * at start, naming the broker.
 */
const dir = mkdtempSync(join(tmpdir(), "wqueue-pattern-"));
const redis = new Redis(6379, "127.0.0.1", { lazyConnect: true });
const workers: Worker[] = [];
const apps: WQueue[] = [];
const redisPrefixes: string[] = [];
const schemas: string[] = [];

afterEach(async () => {
  await Promise.all(workers.splice(0).map((worker) => worker.stop(5000)));
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

afterAll(async () => {
  for (const prefix of redisPrefixes) await deleteKeysStartingWith(redis, prefix);
  redis.disconnect();
  for (const schema of schemas) await dropSchema(schema);
  rmSync(dir, { recursive: true, force: true });
});

/** A prefix of queue names unique to this run: `pattern-<label>-<random>`. */
function prefixFor(label: string): string {
  return `pattern-${label}-${randomUUID().slice(0, 8)}`;
}

interface Handled {
  queue: string;
  body: unknown;
}

/**
 * The scenario every broker that takes patterns runs: `<p>.early` exists before the worker starts,
 * `<p>.late` is created after `ready`; `<p>.late.eu` (one segment too many) and `<p>x.late` (another
 * prefix) exist too and must not be consumed.
 */
/** The brokers whose idle queues hold no credit (consumers with waitForMessages and take). */
const CREDIT_FREE = /^(memory:|sqlite:|redis:\/\/[^?]*(\?(?!.*mode=list)|$))/;

async function pickUpLateQueue(broker: string, prefix: string, waitMs = 15_000, discoverMs = 200): Promise<void> {
  const publisher = new WQueue({ broker });
  apps.push(publisher);
  await publisher.publish(`${prefix}.early`, { n: 1 });

  const app = new WQueue({ broker });
  const handled: Handled[] = [];
  app.listenEvents(`${prefix}.*`, (message: Message) => void handled.push({ queue: message.queue, body: message.body }), { discoverMs });
  const { logger, lines } = memoryLogger();
  // Concurrency 1. Where an idle queue holds a receive open, the early queue's receive holds the
  // only credit, so the late queue is served only if the worker-wide limit grows with the queues
  // found (CreditPool.addSharer); where idle queues hold no credit (waitForMessages/take), the
  // limit stays 1 and the late queue is served within it.
  const worker = new Worker(app, { logger, broker, concurrency: 1 });
  workers.push(worker);
  await worker.start();
  const ready = lines.find((line) => String(line.msg).startsWith("ready:"));
  expect(ready?.msg).toContain(`${prefix}.early`);
  expect(ready?.msg).toContain(`watching for new queues: ${prefix}.* (every ${discoverMs} ms)`);
  await waitFor("the early queue's message", () => handled.some((h) => h.queue === `${prefix}.early`), waitMs);

  await publisher.publish(`${prefix}.late.eu`, { n: 3 });
  await publisher.publish(`${prefix}x.late`, { n: 4 });
  await publisher.publish(`${prefix}.late`, { n: 2 });
  await waitFor("the late queue's message", () => handled.some((h) => h.queue === `${prefix}.late`), waitMs);

  expect(handled).toEqual([
    { queue: `${prefix}.early`, body: { n: 1 } },
    { queue: `${prefix}.late`, body: { n: 2 } },
  ]);
  // Per-queue stats name each concrete queue, not the pattern.
  const stats = [...worker.observer.queues.values()].map((q) => q.queue).sort();
  expect(stats).toEqual([`${prefix}.early`, `${prefix}.late`]);
  expect(lines.some((line) => line.msg === `${prefix}.late: new queue matching ${prefix}.*, consuming it`)).toBe(true);
  expect(worker.model.concurrency).toBe(CREDIT_FREE.test(broker) ? 1 : 2);
  // The dashboard's dead letters of a concrete queue are found through its pattern.
  expect((await worker.deadLettersOf(`${prefix}.late`))?.deadQueue).toBe(`${prefix}.late.dead`);
  // The queues it does not match still hold their message.
  const brokers = new BrokerSet(broker);
  try {
    const opened = await brokers.get();
    for (const queue of [`${prefix}.late.eu`, `${prefix}x.late`]) {
      const waiting = opened.backlog ? await opened.backlog(queue) : (await opened.browse?.(queue, 10))?.length;
      expect(waiting, queue).toBe(1);
    }
  } finally {
    await brokers.close();
  }
}

describe("subscriptions by pattern", () => {
  it("Redis reliable (default): picks up a queue created after ready; others are left alone", async () => {
    const prefix = prefixFor("reliable");
    redisPrefixes.push(prefix);
    await pickUpLateQueue("redis://127.0.0.1:6379", prefix);
  });

  for (const mode of ["list", "stream"]) {
    it(`Redis ?mode=${mode}: picks up a queue created after ready; others are left alone`, async () => {
      const prefix = prefixFor(mode);
      redisPrefixes.push(prefix);
      await pickUpLateQueue(`redis://127.0.0.1:6379?mode=${mode}`, prefix);
    });
  }

  describe("Redis Cluster", () => {
    let cluster: PrivateRedisCluster;
    beforeAll(async () => {
      cluster = await startPrivateRedisCluster();
    }, 120_000);
    afterAll(() => cluster?.stop());

    it("Redis Cluster (reliable): lists every master's queues, and picks up a queue created after ready", async () => {
      const prefix = prefixFor("cluster");
      const url = `${cluster.seeds}?cluster=true`;
      // Twelve queues before the start, spread over the masters (a SCAN sees one node's keys only).
      const queues = Array.from({ length: 12 }, (_, i) => `${prefix}.q${i}`);
      const owners = new Set(await Promise.all(queues.map(async (queue) => (await cluster.ownerOf(queue)).master)));
      expect(owners.size).toBeGreaterThan(1);
      const publisher = new WQueue({ broker: url });
      apps.push(publisher);
      for (const queue of queues) await publisher.publish(queue, { queue });
      const brokers = new BrokerSet(url);
      try {
        expect(await (await brokers.get()).listQueues?.(`${prefix}.*`)).toEqual([...queues].sort());
      } finally {
        await brokers.close();
      }
      await pickUpLateQueue(url, prefixFor("cluster-late"), 30_000);
    }, 120_000);
  });

  it("PostgreSQL: picks up a queue created after ready; others are left alone", async () => {
    const schema = testSchema("wqueue_pattern");
    schemas.push(schema);
    await pickUpLateQueue(schemaUrl(schema), prefixFor("postgres"));
  });

  it("PostgreSQL: a new queue's NOTIFY opens it at once, not at the next listing (discoverMs 10 minutes)", async () => {
    const schema = testSchema("wqueue_pattern");
    schemas.push(schema);
    await pickUpLateQueue(schemaUrl(schema), prefixFor("postgres-notify"), 15_000, 600_000);
  });

  describe("NATS", () => {
    const nats = requireNats("pattern"); // a subject prefix of this file's own, its streams deleted at the end
    it("NATS JetStream: picks up a queue created after ready; others are left alone", async () => {
      await pickUpLateQueue(nats.url, prefixFor("nats"));
    });
  });

  describe("Kafka", () => {
    beforeAll(() => ensureKafka(), 300_000);
    it("Kafka: picks up a topic created after ready; others are left alone", async () => {
      // Topics are created by the publisher; a group of its own, so offsets start fresh.
      const prefix = prefixFor("kafka");
      await pickUpLateQueue(`${KAFKA_URL}?group=${prefix}`, prefix, 60_000);
    }, 120_000);
  });

  it("memory://: picks up a queue created after ready; others are left alone", async () => {
    await pickUpLateQueue(`memory://${prefixFor("memory")}`, prefixFor("memory"));
  });

  describe("RabbitMQ", () => {
    const rabbit = requireRabbit("pattern"); // a vhost of its own, deleted at the end
    it("RabbitMQ refuses a pattern at start, naming the broker, and takes nothing", async () => {
      const queue = prefixFor("amqp");
      const publisher = new WQueue({ broker: rabbit.url });
      apps.push(publisher);
      await publisher.publish(`${queue}.a`, { n: 1 });
      const app = new WQueue({ broker: rabbit.url });
      app.listenEvents(`${queue}.*`, () => {});
      const worker = new Worker(app, { logger: memoryLogger().logger, broker: rabbit.url });
      const error = await worker.start().then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      expect(error?.name).toBe("ConfigError");
      expect(error?.message).toContain(`listenEvents("${queue}.*"): the amqp broker amqp://guest:`);
      expect(error?.message).toContain("cannot list its queues, so it takes no queue pattern");
      expect(error?.message).not.toContain("guest:guest");
      const channel = await (await rabbit.raw()).createChannel();
      expect((await channel.checkQueue(`${queue}.a`)).messageCount).toBe(1);
      await channel.close();
    });
  });

  it("SQLite (default broker): picks up a queue created after ready; others are left alone", async () => {
    const prefix = prefixFor("sqlite");
    const url = `sqlite://${join(dir, `${prefix}.db`)}`;
    await pickUpLateQueue(url, prefix);
  });
});
