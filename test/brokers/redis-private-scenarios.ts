import { randomUUID } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Broker, Delivery } from "../../src/brokers/contract.js";
import { openRedisBroker } from "../../src/brokers/redis/open-redis-broker.js";
import { countCommands, read, receiveN, text, waitFor } from "./redis-helpers.js";
import { type PrivateRedis, startPrivateRedis } from "./redis-private-server.js";

/**
 * The scenarios of the at-least-once Redis modes that need a redis-server of their own (killed,
 * restarted, or its commands counted), run by redis-reliable.private.test.ts and
 * redis-stream.private.test.ts with their mode.
 */
export function privateServerScenarios(mode: "reliable" | "stream"): void {
  let plain: PrivateRedis | undefined;
  let persistent: PrivateRedis | undefined;
  beforeAll(async () => {
    [plain, persistent] = await Promise.all([startPrivateRedis(), startPrivateRedis({ persistent: true })]);
  });
  afterAll(async () => {
    await Promise.all([plain?.stop(), persistent?.stop()]);
  });
  const opened: Broker[] = [];
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((broker) => broker.close()));
  });
  const open = async (server: PrivateRedis | undefined, log?: (line: string) => void) => {
    const broker = openRedisBroker(`${(server as PrivateRedis).url}?mode=${mode}`, (level, message) => log?.(`${level} ${message}`));
    opened.push(broker);
    await broker.connect();
    return broker;
  };
  const queueName = () => `private-${mode}.${randomUUID().slice(0, 8)}`;

  describe(`redis ${mode} on a private redis-server`, () => {
    it("takes a backlog of 1000 in far fewer than 1000 round trips, and acks in batches", async () => {
      const broker = await open(plain);
      const queue = queueName();
      await broker.publish(queue, Array.from({ length: 1000 }, (_, i) => ({ body: text(`m${i}`) })));
      const consumer = broker.consumer(queue);
      await receiveN(consumer, 1).then((got) => Promise.all(got.map((d) => d.ack()))); // the reader is up
      const monitored = await countCommands((plain as PrivateRedis).client());
      const seen = new Set<string>(["m0"]);
      const signal = AbortSignal.timeout(10_000);
      while (seen.size < 1000 && !signal.aborted) {
        const got = await consumer.receive(100, signal);
        for (const delivery of got) seen.add(read(delivery));
        await Promise.all(got.map((delivery) => delivery.ack())); // a worker acks as handlers finish: in the same turn here
      }
      await monitored.caughtUp();
      monitored.stop();
      expect(seen.size).toBe(1000);
      const summary = [...monitored.counts].map(([name, n]) => `${name}=${n}`).join(" ");
      // 999 messages: 10 batches of 100, each one claim/read call plus one ack call, and a few housekeeping calls.
      expect(monitored.total(), summary).toBeLessThan(60);
    });

    it("resumes consuming after Redis is killed and restarted, without operator action", async () => {
      const events: string[] = [];
      const broker = await open(plain, (line) => events.push(line));
      const queue = queueName();
      const consumer = broker.consumer(queue);
      await broker.publish(queue, [{ body: text("before") }]);
      const [before] = await receiveN(consumer, 1);
      await before?.ack();
      const pending = consumer.receive(10, AbortSignal.timeout(20_000));
      await (plain as PrivateRedis).restart(); // no persistence: every key is gone
      await broker.publish(queue, [{ body: text("after-restart") }]);
      const got = await pending;
      const all = got.length > 0 ? got : await receiveN(consumer, 1, 15_000);
      expect(all.map(read)).toEqual(["after-restart"]);
      expect(events.some((line) => line.includes("reconnected"))).toBe(true);
    }, 40_000);

    it("loses nothing across a SIGKILL restart of a Redis with appendfsync always", async () => {
      const producer = await open(persistent);
      const broker = await open(persistent);
      const queue = queueName();
      const total = 1500;
      const received = new Set<string>();
      let deliveries = 0;
      const stop = new AbortController();
      const consumer = broker.consumer(queue);
      const consuming = (async () => {
        while (!stop.signal.aborted) {
          const got: Delivery[] = await consumer.receive(20, stop.signal);
          deliveries += got.length;
          for (const delivery of got) received.add(read(delivery));
          await new Promise((resolve) => setTimeout(resolve, 5)); // the handlers' work: a backlog builds up
          for (const delivery of got) delivery.ack().catch(() => {}); // a lost ack only means a redelivery
        }
      })();
      const publish = async (from: number, count: number) => {
        const batch = Array.from({ length: count }, (_, i) => ({ body: text(`m${from + i}`) }));
        for (;;) {
          try {
            return await producer.publish(queue, batch);
          } catch {
            await new Promise((resolve) => setTimeout(resolve, 50)); // Redis is down: publish again
          }
        }
      };
      const producing = (async () => {
        for (let start = 0; start < 1000; start += 100) await publish(start, 100);
        for (let start = 1000; start < total; start += 10) {
          await publish(start, 10);
          await new Promise((resolve) => setTimeout(resolve, 3)); // pacing, so the restart falls mid-production
        }
      })();
      await waitFor("a fifth of the messages", () => received.size >= total / 5, 15_000);
      // Now ~1000 messages wait in the queue, 20 are being handled, and more are yet to be published.
      await (persistent as PrivateRedis).restart();
      await producing;
      await waitFor("every message", () => received.size === total, 30_000).catch(() => {});
      stop.abort();
      await consuming;
      const lost = Array.from({ length: total }, (_, i) => `m${i}`).filter((body) => !received.has(body));
      expect(lost, `${lost.length} lost, ${deliveries - received.size} redelivered`).toEqual([]);
    }, 60_000);
  });
}
