import { randomUUID } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import type { Broker, Consumer, Delivery } from "../brokers/contract.js";

/**
 * The broker conformance suite (in the manner of Watermill's universal Pub/Sub tests): every
 * adapter runs it against a real broker. Cases that do not apply to a broker are skipped with the
 * reason the adapter gives; features decide the rest. Each case uses its own fresh queue name.
 */
export const CONFORMANCE_CASES = [
  "publish-receive",
  "credit",
  "batch",
  "ack-removes",
  "nack-redelivers",
  "nack-delay",
  "dead-letter",
  "close-during-receive",
  "abort-during-receive",
  "wakes-on-publish",
  "order",
  "unsettled-return-on-close",
  "competing-consumers",
  "broker-restart",
] as const;

export type ConformanceCase = (typeof CONFORMANCE_CASES)[number];

/** A `skip` that runs only `only` (e.g. the restart case on a private server), all others skipped for `reason`. */
export function skipAllBut(only: ConformanceCase[], reason: string): Partial<Record<ConformanceCase, string>> {
  return Object.fromEntries(CONFORMANCE_CASES.filter((name) => !only.includes(name)).map((name) => [name, reason]));
}

export interface ConformanceOptions {
  /** Shown in the describe block, e.g. "redis list". */
  name: string;
  /** A new, unconnected broker on the same storage each call. */
  open: () => Broker | Promise<Broker>;
  /** Cases that do not apply, each with the reason a reader can check. */
  skip?: Partial<Record<ConformanceCase, string>>;
  /** Restarts the broker server, for the reconnect case. */
  restartBroker?: () => Promise<void>;
  /** How long an assertion that nothing arrives waits; default 300 ms. */
  quietMs?: number;
}

const text = (value: string) => new TextEncoder().encode(value);

/**
 * Aborts when `parent` does or after `ms`. Not AbortSignal.any(.., AbortSignal.timeout()): on Node 20
 * the garbage collector may drop the timeout signal inside any() so it never fires (nodejs#57736).
 */
async function withTimeout<T>(parent: AbortSignal, ms: number, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), ms);
  const onAbort = () => controller.abort();
  parent.addEventListener("abort", onAbort, { once: true });
  try {
    return await work(controller.signal);
  } finally {
    clearTimeout(timer);
    parent.removeEventListener("abort", onAbort);
  }
}
const read = (delivery: Delivery) => new TextDecoder().decode(delivery.body);

export function brokerConformanceSuite(options: ConformanceOptions): void {
  const quietMs = options.quietMs ?? 300;
  const opened: Broker[] = [];
  const open = async () => {
    const broker = await options.open();
    opened.push(broker);
    await broker.connect();
    return broker;
  };
  const queueName = () => `conformance.${randomUUID().slice(0, 8)}`;

  /** Receives until `count` deliveries arrived, failing after `timeoutMs`. */
  const receiveN = async (consumer: Consumer, count: number, timeoutMs = 5000, max = count) => {
    const signal = AbortSignal.timeout(timeoutMs);
    const got: Delivery[] = [];
    while (got.length < count && !signal.aborted) got.push(...(await consumer.receive(max, signal)));
    return got;
  };
  /** Receives for `quietMs` and returns what came (the "nothing arrives" check). */
  const receiveQuiet = (consumer: Consumer) => consumer.receive(100, AbortSignal.timeout(quietMs));

  const skipped = options.skip ?? {};
  const test = (name: ConformanceCase, body: () => Promise<void>, timeoutMs = 15000) => {
    const reason = skipped[name];
    if (reason !== undefined) it.skip(`${name} (skipped: ${reason})`, body);
    else it(name, body, timeoutMs);
  };

  describe(`broker conformance: ${options.name}`, () => {
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((broker) => broker.close()));
    });

    test("publish-receive", async () => {
      const broker = await open();
      const queue = queueName();
      await broker.publish(queue, [{ body: text("hello"), headers: { "x-one": "1" }, key: "k1" }]);
      const [delivery] = await receiveN(broker.consumer(queue), 1);
      expect(delivery).toBeDefined();
      expect(read(delivery as Delivery)).toBe("hello");
      expect(delivery?.queue).toBe(queue);
      expect(delivery?.attempt).toBe(1);
      expect(typeof delivery?.id).toBe("string");
      if (broker.features.headers) {
        expect(delivery?.headers["x-one"]).toBe("1");
        expect(delivery?.key).toBe("k1");
      }
      await delivery?.ack();
    });

    test("credit", async () => {
      const broker = await open();
      const queue = queueName();
      await broker.publish(queue, Array.from({ length: 5 }, (_, i) => ({ body: text(`m${i}`) })));
      const consumer = broker.consumer(queue);
      const first = await consumer.receive(2, AbortSignal.timeout(5000));
      expect(first.length).toBeGreaterThanOrEqual(1);
      expect(first.length).toBeLessThanOrEqual(2);
      const rest = await receiveN(consumer, 5 - first.length, 5000, 10);
      expect(rest.length).toBe(5 - first.length);
      await Promise.all([...first, ...rest].map((d) => d.ack()));
    });

    test("batch", async () => {
      const broker = await open();
      const queue = queueName();
      await broker.publish(queue, Array.from({ length: 200 }, (_, i) => ({ body: text(String(i)) })));
      const consumer = broker.consumer(queue);
      let calls = 0;
      const got: Delivery[] = [];
      const signal = AbortSignal.timeout(5000);
      while (got.length < 200 && !signal.aborted) {
        got.push(...(await consumer.receive(100, signal)));
        calls += 1;
      }
      expect(new Set(got.map(read)).size).toBe(200);
      // A backlog is read in batches, not one round trip per message.
      expect(calls).toBeLessThan(20);
      await Promise.all(got.map((d) => d.ack()));
    });

    test("ack-removes", async () => {
      const broker = await open();
      const queue = queueName();
      await broker.publish(queue, [{ body: text("once") }]);
      const consumer = broker.consumer(queue);
      const [delivery] = await receiveN(consumer, 1);
      await delivery?.ack();
      await delivery?.ack(); // idempotent
      await consumer.close();
      expect(await receiveQuiet((await open()).consumer(queue))).toEqual([]);
    });

    test("nack-redelivers", async () => {
      const broker = await open();
      const queue = queueName();
      await broker.publish(queue, [{ body: text("again"), headers: { "x-keep": "yes" } }]);
      const consumer = broker.consumer(queue);
      const [first] = await receiveN(consumer, 1);
      await first?.nack();
      await first?.ack(); // the first settle wins: this must not remove the redelivered copy
      const [second] = await receiveN(consumer, 1);
      expect(second && read(second)).toBe("again");
      expect(second?.attempt).toBe(2);
      if (broker.features.headers) expect(second?.headers["x-keep"]).toBe("yes");
      await second?.ack();
    });

    test("nack-delay", async () => {
      const broker = await open();
      const queue = queueName();
      await broker.publish(queue, [{ body: text("later") }]);
      const consumer = broker.consumer(queue);
      const [first] = await receiveN(consumer, 1);
      const nackedAt = Date.now();
      await first?.nack({ delayMs: 800 });
      expect(await consumer.receive(1, AbortSignal.timeout(400))).toEqual([]);
      const [second] = await receiveN(consumer, 1, 5000);
      expect(second && read(second)).toBe("later");
      expect(Date.now() - nackedAt).toBeGreaterThanOrEqual(750);
      await second?.ack();
    });

    test("dead-letter", async () => {
      const broker = await open();
      const queue = queueName();
      await broker.publish(queue, [{ body: text("poison"), headers: { "x-origin": "test" } }]);
      const [delivery] = await receiveN(broker.consumer(queue), 1);
      await delivery?.deadLetter({ reason: "handler-failed", error: { name: "TypeError", message: "boom" } });
      const [dead] = await receiveN(broker.consumer(`${queue}.dead`), 1);
      expect(dead && read(dead)).toBe("poison");
      if (broker.features.headers) {
        expect(dead?.headers["x-wqueue-dead-reason"]).toBe("handler-failed");
        expect(dead?.headers["x-wqueue-dead-error-name"]).toBe("TypeError");
        expect(dead?.headers["x-wqueue-dead-error-message"]).toBe("boom");
        expect(dead?.headers["x-wqueue-dead-queue"]).toBe(queue);
        expect(dead?.headers["x-origin"]).toBe("test");
      }
      await dead?.ack();
      expect(await receiveQuiet(broker.consumer(queue))).toEqual([]);
    });

    test("close-during-receive", async () => {
      const broker = await open();
      const consumer = broker.consumer(queueName());
      const pending = consumer.receive(10, new AbortController().signal);
      await new Promise((resolve) => setTimeout(resolve, 50)); // let the blocking read start
      const started = Date.now();
      await Promise.all([consumer.close(), consumer.close()]);
      expect(await pending).toEqual([]);
      await broker.close();
      await broker.close();
      expect(Date.now() - started).toBeLessThan(2000);
    });

    test("abort-during-receive", async () => {
      const broker = await open();
      const queue = queueName();
      const consumer = broker.consumer(queue);
      const controller = new AbortController();
      const pending = consumer.receive(10, controller.signal);
      await new Promise((resolve) => setTimeout(resolve, 50));
      const started = Date.now();
      controller.abort();
      expect(await pending).toEqual([]);
      expect(Date.now() - started).toBeLessThan(1000);
      // The consumer still works after an aborted receive.
      await broker.publish(queue, [{ body: text("after") }]);
      const [delivery] = await receiveN(consumer, 1);
      expect(delivery && read(delivery)).toBe("after");
      await delivery?.ack();
    });

    test("wakes-on-publish", async () => {
      const broker = await open();
      const queue = queueName();
      const consumer = broker.consumer(queue);
      const pending = consumer.receive(10, AbortSignal.timeout(5000));
      await new Promise((resolve) => setTimeout(resolve, 50));
      const publisher = await open();
      const published = Date.now();
      await publisher.publish(queue, [{ body: text("ping") }]);
      const got = await pending;
      expect(got.map(read)).toEqual(["ping"]);
      expect(Date.now() - published).toBeLessThan(500);
      await got[0]?.ack();
    });

    test("order", async () => {
      const broker = await open();
      const queue = queueName();
      const bodies = Array.from({ length: 50 }, (_, i) => `m${i}`);
      await broker.publish(queue, bodies.map((b) => ({ body: text(b) })));
      const got = await receiveN(broker.consumer(queue), 50, 5000, 7);
      expect(got.map(read)).toEqual(bodies);
      await Promise.all(got.map((d) => d.ack()));
    });

    test("unsettled-return-on-close", async () => {
      const broker = await open();
      const queue = queueName();
      await broker.publish(queue, [{ body: text("a") }, { body: text("b") }]);
      const consumer = broker.consumer(queue);
      const got = await receiveN(consumer, 2, 5000, 2);
      await got[0]?.ack();
      await consumer.close(); // "b" was received but never settled
      await broker.close();
      const again = await receiveN((await open()).consumer(queue), 1, 10000);
      expect(again.map(read)).toEqual(["b"]);
      expect(again[0]?.attempt).toBe(2);
      await again[0]?.ack();
    });

    test("competing-consumers", async () => {
      const a = await open();
      const b = await open();
      const queue = queueName();
      await a.publish(queue, Array.from({ length: 100 }, (_, i) => ({ body: text(String(i)) })));
      const consumers = [a.consumer(queue), b.consumer(queue)];
      const seen: string[] = [];
      const signal = AbortSignal.timeout(5000);
      await Promise.all(
        consumers.map(async (consumer) => {
          while (seen.length < 100 && !signal.aborted) {
            const got = await withTimeout(signal, quietMs, (bounded) => consumer.receive(7, bounded));
            for (const d of got) {
              seen.push(read(d));
              await d.ack();
            }
          }
        }),
      );
      expect(seen.length).toBe(100);
      expect(new Set(seen).size).toBe(100);
    });

    test("broker-restart", async () => {
      const restart = options.restartBroker;
      if (!restart) throw new Error("broker-restart needs restartBroker, or a skip reason");
      const broker = await open();
      const queue = queueName();
      const consumer = broker.consumer(queue);
      await restart();
      await broker.publish(queue, [{ body: text("after-restart") }]);
      const [delivery] = await receiveN(consumer, 1, 20000);
      expect(delivery && read(delivery)).toBe("after-restart");
      await delivery?.ack();
    }, 40000);
  });
}
