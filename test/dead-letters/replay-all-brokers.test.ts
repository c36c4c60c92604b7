import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import type { Broker, Delivery } from "../../src/brokers/contract.js";
import { createBroker } from "../../src/brokers/registry.js";
import { runCli } from "../cli/run-cli.js";
import { edgeBrokers } from "../delivery/edge-brokers.js";
import { REDIS_URL } from "../setup/ensure-redis.js";

/**
 * `wqueue dead-letters list | replay | purge` through the CLI (built: `npm run build`) on every
 * broker. What it attacks: replay's drain stopping before a slow consumer attached (a Kafka group
 * join, a Kinesis lease pickup) and reporting 0 with letters waiting; a replay that loses a letter,
 * its headers, or leaves it on the dead queue; a purge that leaves one behind.
 */
const brokers = [
  ...edgeBrokers("dlreplay").map(({ name, setup }) => ({ name, setup: async () => {
    const target = await setup();
    return { url: target.url, queue: target.queue, close: () => target.close() };
  } })),
  // At most once, so not among the edge brokers; its dead letters are a list like the others'.
  { name: "redis list", setup: async () => ({ url: `${REDIS_URL}?mode=list`, queue: `dlreplay.${randomUUID().slice(0, 8)}`, close: async () => {} }) },
];

/** Takes `count` messages off `queue`, acking each, waiting as long as a slow consumer needs to attach. */
async function take(broker: Broker, queue: string, count: number): Promise<Delivery[]> {
  const consumer = broker.consumer(queue);
  const taken: Delivery[] = [];
  const signal = AbortSignal.timeout(90_000);
  try {
    while (taken.length < count && !signal.aborted) {
      const batch = await consumer.receive(count - taken.length, signal);
      for (const delivery of batch) await delivery.ack();
      taken.push(...batch);
    }
  } finally {
    await consumer.close();
  }
  return taken;
}

/** Publishes `bodies` to `queue` and dead-letters each, as a failing handler would. */
async function makeDeadLetters(broker: Broker, queue: string, bodies: string[]): Promise<void> {
  await broker.publish(queue, bodies.map((body) => ({ body: Buffer.from(body), headers: { "x-origin": "test" } })));
  const consumer = broker.consumer(queue);
  const got: Delivery[] = [];
  const signal = AbortSignal.timeout(90_000);
  try {
    while (got.length < bodies.length && !signal.aborted) got.push(...(await consumer.receive(bodies.length - got.length, signal)));
    for (const delivery of got) {
      await delivery.deadLetter({ reason: "handler-failed", error: { name: "TypeError", message: `bad ${Buffer.from(delivery.body)}` } });
    }
  } finally {
    await consumer.close();
  }
  expect(got, `the ${bodies.length} messages to dead-letter`).toHaveLength(bodies.length);
}

const text = (delivery: { body: Uint8Array }) => Buffer.from(delivery.body).toString();
// kafkajs 2.2 sets negative timers, which Node 24 reports as a warning on stderr; the lines asserted are wqueue's own.
const env = { NODE_NO_WARNINGS: "1" };
const listed = async (queue: string, url: string) => {
  const result = await runCli(["dead-letters", "list", queue, "--broker", url, "--json"], { env });
  expect(result.code, result.stderr).toBe(0);
  return result.stdout.split("\n").filter(Boolean).map((line) => JSON.parse(line) as { queue: string; reason: string; body: string });
};

describe.concurrent("wqueue dead-letters on every broker", () => {
  it.each(brokers)(
    "$name: list shows them and leaves them, replay puts every one back with its headers, purge empties the dead queue",
    async ({ setup }) => {
      const { url, queue, close } = await setup();
      const broker = await createBroker(url);
      try {
        await broker.connect();
        await makeDeadLetters(broker, queue, ['{"id":1}', '{"id":2}']);

        for (let round = 0; round < 2; round += 1) {
          const rows = await listed(queue, url);
          expect(rows.map((r) => [r.queue, r.reason, r.body]).sort()).toEqual([
            [queue, "handler-failed", '{"id":1}'],
            [queue, "handler-failed", '{"id":2}'],
          ]);
        }

        const replayed = await runCli(["dead-letters", "replay", queue, "--broker", url], { env });
        expect(replayed.code, replayed.stderr).toBe(0);
        expect(replayed.stderr).toContain(`replayed 2 dead letter(s) from ${queue}.dead`);
        const back = await take(broker, queue, 2);
        expect(back.map(text).sort()).toEqual(['{"id":1}', '{"id":2}']);
        if (broker.features.headers) for (const delivery of back) expect(delivery.headers["x-origin"]).toBe("test");
        expect(await listed(queue, url)).toEqual([]);

        await makeDeadLetters(broker, queue, ['{"id":3}']);
        const purged = await runCli(["dead-letters", "purge", queue, "--broker", url], { env });
        expect(purged.code, purged.stderr).toBe(0);
        // A purge right after a replay: on SQS a drain that waited on a receive left a long poll open on
        // the server, which took this letter out of sight, so purge said 0 (dead-letters.ts, drain).
        expect(purged.stderr).toContain("purged 1 dead letter(s)");
        expect(await listed(queue, url)).toEqual([]);
        // An empty dead queue: replay reports 0 (without waiting for letters that are not there).
        expect((await runCli(["dead-letters", "replay", queue, "--broker", url], { env })).stderr).toContain("replayed 0 dead letter(s)");
      } finally {
        await broker.close();
        await close();
      }
    },
    300_000,
  );
});
