import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { randomUUID } from "node:crypto";
import { createBroker } from "../../src/brokers/registry.js";
import { dropKinesisApp, requireKinesis } from "../brokers/kinesis-server.js";
import { requireNats } from "../brokers/nats-server.js";
import { dropSchema, schemaUrl, testSchema } from "../brokers/postgres-helpers.js";
import { type PrivateRedis, startPrivateRedis } from "../brokers/redis-private-server.js";
import { requireSqs } from "../brokers/sqs-server.js";
import { KAFKA_URL } from "../setup/ensure-kafka.js";
import { REDIS_URL } from "../setup/ensure-redis.js";
import { type RunningCli, startCli, tempDir, writeApp } from "../cli/run-cli.js";
import { waitFor } from "../helpers.js";

/**
 * The delivery promise end to end: a real `wqueue worker` child process killed with SIGKILL at
 * random moments (reliable Redis on a private redis-server, RabbitMQ, Kafka, SQS on ElasticMQ, Kinesis
 * on kinesis-local, NATS JetStream), and a private Redis server itself killed and restarted. Every message must be handled
 * at least once.
 */
const running: RunningCli[] = [];
const servers: PrivateRedis[] = [];
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cli of running.splice(0)) cli.child.kill("SIGKILL");
  await Promise.all(servers.splice(0).map((server) => server.stop()));
  await Promise.all(cleanups.splice(0).map((cleanup) => cleanup()));
});

/** An app whose handler takes about 1 ms and appends each message's id to a file once it is done. */
function recordingApp(dir: string, queue = "work"): { file: string; out: string } {
  const out = path.join(dir, "handled.txt");
  const file = writeApp(
    dir,
    "app.ts",
    `import { appendFileSync } from "node:fs";
export const app = new WQueue({ retry: { maxAttempts: 50, baseDelayMs: 10, maxDelayMs: 100 } });
app.listenEvents(${JSON.stringify(queue)}, async (m: { body: { id: number } }) => {
  await new Promise((resolve) => setTimeout(resolve, 1));
  appendFileSync(${JSON.stringify(out)}, m.body.id + "\\n");
});`,
  );
  return { file, out };
}

const handledIds = (out: string) => (existsSync(out) ? readFileSync(out, "utf8").split("\n").filter(Boolean).map(Number) : []);

async function pushIds(server: PrivateRedis, count: number): Promise<void> {
  const client = server.client();
  for (let start = 0; start < count; start += 1000) {
    const batch = Array.from({ length: Math.min(1000, count - start) }, (_, i) => JSON.stringify({ id: start + i }));
    await client.rpush("work", ...batch);
  }
}

function summary(ids: number[], count: number) {
  const seen = new Set(ids);
  const lost = Array.from({ length: count }, (_, i) => i).filter((id) => !seen.has(id));
  return { handled: ids.length, unique: seen.size, duplicates: ids.length - seen.size, lost: lost.length };
}

describe("nothing lost (worker child processes killed, brokers restarted)", () => {
  // Their queues (SQS) and streams (NATS) are deleted when the file ends.
  const sqs = requireSqs({ prefix: "kill" });
  const nats = requireNats("kill");
  const kinesis = requireKinesis({ prefix: "kill" });
  /** Each broker: where the worker reads (a fresh queue) and how the test publishes to it. */
  const brokers: {
    name: string;
    setup: () => Promise<{ url: string; queue: string; publish: (ids: number[]) => Promise<void> }>;
    /** The most messages one kill may make the next worker handle again, where the adapter states it. */
    duplicatesPerKill?: (concurrency: number) => number;
  }[] = [
    {
      name: "reliable Redis (private server)",
      setup: async () => {
        const server = await startPrivateRedis();
        servers.push(server);
        const client = server.client();
        return { url: `${server.url}?heartbeatTtl=1000`, queue: "work", publish: async (ids) => void (await client.rpush("work", ...ids.map((id) => JSON.stringify({ id })))) };
      },
    },
    {
      // A killed worker's claimed rows come back once their lease (2 s) runs out.
      name: "PostgreSQL",
      setup: async () => {
        const schema = testSchema("wqueue_kill");
        cleanups.push(() => dropSchema(schema).then(() => {}));
        return viaAdapter(schemaUrl(schema, "lease=2000"), `kill.${randomUUID().slice(0, 8)}`);
      },
    },
    {
      name: "RabbitMQ",
      setup: async () => viaAdapter("amqp://guest:guest@127.0.0.1:5672", `kill.${randomUUID().slice(0, 8)}`),
    },
    {
      name: "Kafka",
      setup: async () => viaAdapter(`${KAFKA_URL}?group=kill-${randomUUID().slice(0, 8)}`, `kill.${randomUUID().slice(0, 8)}`),
      // Acks are committed once `concurrency` of them wait (and every 200 ms), so a kill redoes what
      // was out with handlers at the last commit (at most the concurrency) and the acks since
      // (under the concurrency, plus one commit round trip's), plus what finished above a slower
      // one (none here): 2x the concurrency.
      duplicatesPerKill: (concurrency) => 2 * concurrency,
    },
    {
      // A killed worker's received messages come back once their visibility (2 s) runs out.
      name: "SQS (ElasticMQ)",
      setup: async () => viaAdapter(sqs.url("&visibility=2"), sqs.queueName()),
    },
    {
      // The restarted worker takes the shards over once the killed one's leases expire (1.5 s).
      name: "Kinesis (kinesis-local, checkpoints in Redis)",
      setup: async () => {
        const app = `kill-${randomUUID().slice(0, 8)}`;
        cleanups.push(() => dropKinesisApp(app));
        const stream = kinesis.streamName();
        return viaAdapter(kinesis.url(`app=${app}&checkpoints=${REDIS_URL}&lease=1500&poll=50&shards=4`), stream);
      },
    },
    {
      // A killed worker's unacked messages go to the next one after ackWait (2 s).
      name: "NATS JetStream",
      setup: async () => viaAdapter(`${nats.url}&ackWait=2000`, `kill.${randomUUID().slice(0, 8)}`),
    },
  ];

  /** Publishes through WQueue's own adapter (as any producer of that broker could). */
  async function viaAdapter(url: string, queue: string) {
    const broker = await createBroker(url);
    await broker.connect();
    cleanups.push(() => broker.close());
    const publish = (ids: number[]) => broker.publish(queue, ids.map((id) => ({ body: Buffer.from(JSON.stringify({ id })) })));
    return { url, queue, publish };
  }

  it.each(brokers)("$name: 5,000 messages, the worker killed with SIGKILL 5 times at random moments and restarted", async ({ name, setup, duplicatesPerKill }) => {
    const { url, queue, publish } = await setup();
    const dir = tempDir();
    const { file, out } = recordingApp(dir, queue);
    const count = 5000;
    for (let start = 0; start < count; start += 500) await publish(Array.from({ length: Math.min(500, count - start) }, (_, i) => start + i));
    const concurrency = 20;
    const start = () => {
      const cli = startCli(["worker", "-a", file, "--broker", url, "--concurrency", String(concurrency)]);
      running.push(cli);
      return cli;
    };
    let kills = 0;
    while (kills < 5) {
      const cli = start();
      const before = handledIds(out).length;
      // Let it make progress, then kill it at a random point.
      const target = before + 200 + Math.floor(Math.random() * 500);
      await waitFor(() => `progress past ${target} (at ${handledIds(out).length})`, () => handledIds(out).length >= target || new Set(handledIds(out)).size >= count, 60_000);
      cli.child.kill("SIGKILL");
      await cli.exited;
      kills += 1;
    }
    const last = start();
    await waitFor(() => `every id (${JSON.stringify(summary(handledIds(out), count))})`, () => new Set(handledIds(out)).size === count, 90_000);
    last.child.kill("SIGTERM");
    expect(await last.exited).toBe(0);
    const result = summary(handledIds(out), count);
    console.log(`kill test on ${name}: ${count} messages, ${kills} SIGKILLs: ${JSON.stringify(result)}`);
    expect(result.lost).toBe(0);
    if (duplicatesPerKill) expect(result.duplicates).toBeLessThanOrEqual(kills * duplicatesPerKill(concurrency));
  }, 300_000);

  it("10,000 messages, the Redis server killed and restarted twice (AOF): the worker resumes by itself", async () => {
    const server = await startPrivateRedis({ persistent: true });
    servers.push(server);
    const dir = tempDir();
    const { file, out } = recordingApp(dir);
    const count = 10_000;
    await pushIds(server, count);
    const cli = startCli(["worker", "-a", file, "--broker", `${server.url}?heartbeatTtl=2000`, "--concurrency", "50"]);
    running.push(cli);
    for (const fraction of [0.25, 0.6]) {
      await waitFor(() => `${fraction * count} handled`, () => handledIds(out).length >= fraction * count, 60_000);
      await server.restart();
    }
    await waitFor(() => `every id (${JSON.stringify(summary(handledIds(out), count))})`, () => new Set(handledIds(out)).size === count, 90_000);
    const result = summary(handledIds(out), count);
    console.log(`restart test: ${count} messages, 2 Redis restarts: ${JSON.stringify(result)}`);
    expect(result.lost).toBe(0);
    cli.child.kill("SIGTERM");
    expect(await cli.exited).toBe(0);
  }, 240_000);
});
