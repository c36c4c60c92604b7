import { randomUUID } from "node:crypto";
import { expect } from "vitest";
import type { Broker, Consumer, Delivery } from "../brokers/contract.js";
import { type ChildBroker, type ChildJob, ChildConsumer, type HoldReport, type NackReport } from "./child-consumer.js";

/**
 * The cases of the broker conformance suite, as plain async functions so a test can run one
 * directly (runConformanceCase) and expect it to reject for a broken adapter. A case whose feature
 * the broker does not declare is skipped with the feature as the reason; every case fails when its
 * property is broken. No case asserts how long something took (the machines that run them are
 * loaded); waits are for conditions, bounded by generous deadlines.
 */
export const CONFORMANCE_CASES = [
  "publish-receive",
  "headers",
  "credit",
  "batch",
  "ack-removes",
  "nack-redelivers",
  "nack-delay",
  "durable-delay",
  "dead-letter",
  "close-during-receive",
  "abort-during-receive",
  "wakes-on-publish",
  "idle-without-credit",
  "order",
  "partitioned",
  "unsettled-return-on-close",
  "killed-consumer-returns",
  "competing-consumers",
  "broker-restart",
] as const;

export type ConformanceCase = (typeof CONFORMANCE_CASES)[number];

export interface ConformanceOptions {
  /** Shown in the describe block, e.g. "redis list". */
  name: string;
  /** A new, unconnected broker on the same storage each call. */
  open: () => Broker | Promise<Broker>;
  /** Cases that do not apply, each with the reason a reader can check. */
  skip?: Partial<Record<ConformanceCase, string>>;
  /** Stops and starts the broker server (its data kept, where it keeps any), for broker-restart. */
  restartBroker?: () => Promise<void>;
  /**
   * Why the server restartBroker restarts keeps no messages although the adapter declares itself
   * durable (e.g. a test server that keeps them in memory): broker-restart then checks reconnection only.
   */
  restartKeepsNothing?: string;
  /** How a separate OS process opens this broker, for the cases that SIGKILL a consumer. */
  child?: ChildBroker;
  /** How long an assertion that nothing arrives waits; default 300 ms. */
  quietMs?: number;
  /**
   * The longest wait for a message that must arrive or come back (past a lease, ack wait,
   * visibility timeout or group rebalance); default 30 s. Keep the adapter's leases short in the URL.
   */
  patienceMs?: number;
}

/** Thrown by a case that does not apply; runConformanceCase turns it into a skip. */
class CaseSkipped extends Error {}

interface CaseEnv {
  options: ConformanceOptions;
  patienceMs: number;
  quietMs: number;
  /** Opens and connects a broker, closed after the case. */
  open(): Promise<Broker>;
  /** A child consumer process, SIGKILLed after the case if it still runs. */
  child(job: ChildJob): ChildConsumer;
  skip(reason: string): never;
}

const text = (value: string) => new TextEncoder().encode(value);
const read = (delivery: Delivery) => new TextDecoder().decode(delivery.body);
const queueName = () => `conformance.${randomUUID().slice(0, 8)}`;
const bodies = (prefix: string, count: number) => Array.from({ length: count }, (_, i) => `${prefix}${i}`);

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

/** One receive, checked against the credit it was given. */
async function receiveChecked(consumer: Consumer, max: number, signal: AbortSignal): Promise<Delivery[]> {
  const got = await consumer.receive(max, signal);
  if (got.length > max) throw new Error(`receive(${max}) returned ${got.length} deliveries: more than its credit`);
  return got;
}

/** Receives until `count` deliveries arrived, failing with what it got after `timeoutMs`. */
async function receiveN(consumer: Consumer, count: number, timeoutMs: number, max = count): Promise<Delivery[]> {
  const signal = AbortSignal.timeout(timeoutMs);
  const got: Delivery[] = [];
  while (got.length < count && !signal.aborted) got.push(...(await receiveChecked(consumer, max, signal)));
  if (got.length < count) throw new Error(`received ${got.length} of ${count} messages within ${timeoutMs} ms: ${got.map(read)}`);
  return got;
}

/** Receives (acking each delivery) until every body of `wanted` was seen; returns all it got. */
async function receiveUntilSeen(consumer: Consumer, wanted: string[], timeoutMs: number, what: string): Promise<Delivery[]> {
  const signal = AbortSignal.timeout(timeoutMs);
  const got: Delivery[] = [];
  const missing = () => wanted.filter((body) => !got.some((delivery) => read(delivery) === body));
  while (missing().length > 0 && !signal.aborted) {
    for (const delivery of await receiveChecked(consumer, 10, signal)) {
      got.push(delivery);
      await delivery.ack();
    }
  }
  if (missing().length > 0) throw new Error(`${what}: ${missing().join(", ")} never arrived within ${timeoutMs} ms (got ${got.map(read)})`);
  return got;
}

/** `promise`, or a failure naming `what` if it has not settled after `timeoutMs` (a hang, not a slow run). */
async function settles<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, hang]);
  } finally {
    clearTimeout(timer);
  }
}

const needChild = (env: CaseEnv): void => {
  if (env.options.child === undefined) {
    throw new Error("this case kills a consumer process: give the suite `child` (how another process opens the broker), or a skip reason");
  }
};

const CASES: Record<ConformanceCase, (env: CaseEnv) => Promise<void>> = {
  async "publish-receive"(env) {
    const broker = await env.open();
    const queue = queueName();
    await broker.publish(queue, [{ body: text("hello") }]);
    const [delivery] = (await receiveN(broker.consumer(queue), 1, env.patienceMs)) as [Delivery];
    expect(read(delivery)).toBe("hello");
    expect(delivery.queue).toBe(queue);
    expect(delivery.attempt).toBe(1);
    expect(typeof delivery.id).toBe("string");
    if (!broker.features.partitioned) expect(delivery.partition, "an unpartitioned broker's partition").toBeUndefined();
    await delivery.ack();
  },

  async headers(env) {
    const broker = await env.open();
    if (!broker.features.headers) env.skip("features.headers is false: messages carry their body only");
    const queue = queueName();
    const headers = { "x-one": "1", "x-two": "two words" };
    await broker.publish(queue, [{ body: text("h"), headers, key: "k1", attempt: 3 }]);
    const [delivery] = (await receiveN(broker.consumer(queue), 1, env.patienceMs)) as [Delivery];
    expect(delivery.headers).toMatchObject(headers);
    expect(delivery.key).toBe("k1");
    expect(delivery.attempt, "a message published at attempt 3").toBe(3);
    await delivery.ack();
  },

  async credit(env) {
    const broker = await env.open();
    const queue = queueName();
    const all = bodies("m", 10);
    await broker.publish(queue, all.map((body, i) => ({ body: text(body), key: `k${i}` })));
    const holder = broker.consumer(queue, { maxInFlight: 2 });
    // receiveChecked fails any receive(max) that returns more than max.
    const held = await receiveN(holder, 2, env.patienceMs, 2);
    if (broker.features.partitioned) {
      // One consumer owns the partition: nobody else can show what it hoards. It gets the rest within its credit.
      await Promise.all(held.map((delivery) => delivery.ack()));
      const rest: Delivery[] = [];
      const signal = AbortSignal.timeout(env.patienceMs);
      while (rest.length < 8 && !signal.aborted) {
        const got = await receiveChecked(holder, 2, signal);
        rest.push(...got);
        await Promise.all(got.map((delivery) => delivery.ack()));
      }
      expect(new Set([...held, ...rest].map(read))).toEqual(new Set(all));
      return;
    }
    // While the holder holds its 2 (its maxInFlight), the broker must not hand it (prefetch, buffer)
    // more: the other 8 stay available to another consumer.
    const other = (await env.open()).consumer(queue);
    const rest = await receiveN(other, 8, env.patienceMs, 10).catch((error: Error) => {
      throw new Error(`a consumer with maxInFlight 2 holding 2 messages kept the others from a second consumer: ${error.message}`);
    });
    expect(new Set([...held, ...rest].map(read))).toEqual(new Set(all));
    await Promise.all([...held, ...rest].map((d) => d.ack()));
  },

  async batch(env) {
    const broker = await env.open();
    const queue = queueName();
    await broker.publish(queue, Array.from({ length: 200 }, (_, i) => ({ body: text(String(i)) })));
    const consumer = broker.consumer(queue);
    let calls = 0;
    const got: Delivery[] = [];
    const signal = AbortSignal.timeout(env.patienceMs);
    while (got.length < 200 && !signal.aborted) {
      got.push(...(await receiveChecked(consumer, 100, signal)));
      calls += 1;
    }
    expect(new Set(got.map(read)).size).toBe(200);
    // A backlog is read in batches, not one round trip per message.
    expect(calls).toBeLessThan(20);
    await Promise.all(got.map((d) => d.ack()));
  },

  async "ack-removes"(env) {
    const broker = await env.open();
    const queue = queueName();
    await broker.publish(queue, [{ body: text("once") }]);
    const consumer = broker.consumer(queue);
    const [delivery] = (await receiveN(consumer, 1, env.patienceMs)) as [Delivery];
    await delivery.ack();
    await delivery.ack(); // idempotent
    await consumer.close();
    expect(await (await env.open()).consumer(queue).receive(100, AbortSignal.timeout(env.quietMs))).toEqual([]);
  },

  async "nack-redelivers"(env) {
    const broker = await env.open();
    const queue = queueName();
    await broker.publish(queue, [{ body: text("again"), headers: { "x-keep": "yes" } }]);
    const consumer = broker.consumer(queue);
    const [first] = (await receiveN(consumer, 1, env.patienceMs)) as [Delivery];
    await first.nack();
    await first.ack(); // the first settle wins: this must not remove the redelivered copy
    const [second] = (await receiveN(consumer, 1, env.patienceMs)) as [Delivery];
    expect(read(second)).toBe("again");
    expect(second.attempt).toBe(2);
    if (broker.features.headers) expect(second.headers["x-keep"]).toBe("yes");
    await second.ack();
  },

  async "nack-delay"(env) {
    const broker = await env.open();
    const queue = queueName();
    await broker.publish(queue, [{ body: text("later") }]);
    const consumer = broker.consumer(queue);
    const [first] = (await receiveN(consumer, 1, env.patienceMs)) as [Delivery];
    const nackedAt = Date.now();
    await first.nack({ delayMs: 800 });
    const [second] = (await receiveN(consumer, 1, env.patienceMs)) as [Delivery];
    expect(read(second)).toBe("later");
    // A lower bound only: load can make it later, never earlier.
    expect(Date.now() - nackedAt).toBeGreaterThanOrEqual(750);
    await second.ack();
  },

  async "durable-delay"(env) {
    const broker = await env.open();
    if (!broker.features.durableDelay) env.skip("features.durableDelay is false: a delayed nack lives in the worker process and dies with it");
    needChild(env);
    const queue = queueName();
    const delayMs = 2000; // whole seconds: SQS delays in seconds
    await broker.publish(queue, [{ body: text("later") }]);
    const child = env.child({ mode: "nack-delay", queue, delayMs, timeoutMs: env.patienceMs });
    const report = await child.report<NackReport>(env.patienceMs);
    await child.kill(); // the process that asked for the delay is gone: only the broker can keep it
    const [again] = (await receiveN(broker.consumer(queue), 1, env.patienceMs + delayMs)) as [Delivery];
    expect(read(again)).toBe("later");
    expect(again.attempt).toBe(2);
    // Not handed out before the delay (counted from before the child's nack): the broker kept the delay itself.
    expect(Date.now() - report.before, "the delay kept across the nacking process's death").toBeGreaterThanOrEqual(delayMs - 100);
    await again.ack();
  },

  async "dead-letter"(env) {
    const broker = await env.open();
    const queue = queueName();
    await broker.publish(queue, [{ body: text("poison"), headers: { "x-origin": "test" } }]);
    const [delivery] = (await receiveN(broker.consumer(queue), 1, env.patienceMs)) as [Delivery];
    await delivery.deadLetter({ reason: "handler-failed", error: { name: "TypeError", message: "boom" } });
    const [dead] = (await receiveN(broker.consumer(`${queue}.dead`), 1, env.patienceMs)) as [Delivery];
    expect(read(dead)).toBe("poison");
    if (broker.features.headers) {
      expect(dead.headers["x-wqueue-dead-reason"]).toBe("handler-failed");
      expect(dead.headers["x-wqueue-dead-error-name"]).toBe("TypeError");
      expect(dead.headers["x-wqueue-dead-error-message"]).toBe("boom");
      expect(dead.headers["x-wqueue-dead-queue"]).toBe(queue);
      expect(dead.headers["x-origin"]).toBe("test");
    }
    await dead.ack();
    expect(await broker.consumer(queue).receive(100, AbortSignal.timeout(env.quietMs))).toEqual([]);
  },

  async "close-during-receive"(env) {
    const broker = await env.open();
    const consumer = broker.consumer(queueName());
    // Never aborted: only the close can end this receive.
    const pending = consumer.receive(10, new AbortController().signal);
    await Promise.all([consumer.close(), consumer.close()]);
    expect(await settles(pending, env.patienceMs, "a receive pending when its consumer closed")).toEqual([]);
    // Again on a queue just read in full batches (an adapter may read a queue it found busy
    // another way than an idle one): the close still ends the receive that finds it empty.
    const queue = queueName();
    await broker.publish(queue, bodies("m", 10).map((body) => ({ body: text(body) })));
    const busy = broker.consumer(queue);
    await Promise.all((await receiveN(busy, 10, env.patienceMs, 10)).map((delivery) => delivery.ack()));
    const afterBusy = busy.receive(10, new AbortController().signal);
    await busy.close();
    expect(await settles(afterBusy, env.patienceMs, "a receive on a queue read to empty, pending when its consumer closed")).toEqual([]);
    await settles(Promise.all([broker.close(), broker.close()]), env.patienceMs, "broker.close() after its consumer closed");
  },

  async "abort-during-receive"(env) {
    const broker = await env.open();
    const queue = queueName();
    const consumer = broker.consumer(queue);
    const controller = new AbortController();
    const pending = consumer.receive(10, controller.signal);
    controller.abort();
    expect(await settles(pending, env.patienceMs, "an aborted receive")).toEqual([]);
    // The consumer still works after an aborted receive.
    await broker.publish(queue, [{ body: text("after") }]);
    const [delivery] = (await receiveN(consumer, 1, env.patienceMs)) as [Delivery];
    expect(read(delivery)).toBe("after");
    await delivery.ack();
  },

  async "wakes-on-publish"(env) {
    const broker = await env.open();
    const queue = queueName();
    const consumer = broker.consumer(queue);
    // Started on an empty queue: it can only resolve with the message if the publish wakes it.
    const pending = consumer.receive(10, AbortSignal.timeout(env.patienceMs));
    const publisher = await env.open();
    await publisher.publish(queue, [{ body: text("ping") }]);
    const got = await pending;
    expect(got.map(read), "a receive waiting on an empty queue when another broker published").toEqual(["ping"]);
    await got[0]?.ack();
  },

  async "idle-without-credit"(env) {
    const broker = await env.open();
    const queue = queueName();
    const consumer = broker.consumer(queue);
    const { waitForMessages, take } = consumer;
    if (waitForMessages === undefined && take === undefined) env.skip("the consumer has no waitForMessages/take: an idle queue keeps a receive (and one credit) open");
    if (waitForMessages === undefined || take === undefined) throw new Error("the consumer has one of waitForMessages/take without the other: the contract asks for both or neither");
    const wait = (signal: AbortSignal) => settles(waitForMessages.call(consumer, signal), env.patienceMs, "waitForMessages");
    // A take never waits: on an empty queue it comes back with nothing.
    expect(await settles(take.call(consumer, 10), env.patienceMs, "a take on an empty queue"), "a take on an empty queue").toEqual([]);
    // A wait on an empty queue ends on abort.
    const aborted = new AbortController();
    const waitingForAbort = wait(aborted.signal);
    aborted.abort();
    await waitingForAbort;
    // A wait started on an empty queue is woken by another broker's publish, and takes nothing:
    // another consumer still receives that message.
    const waiting = wait(AbortSignal.timeout(env.patienceMs));
    const publisher = await env.open();
    await publisher.publish(queue, [{ body: text("first") }]);
    await waiting;
    const other = publisher.consumer(queue);
    const [first] = await receiveN(other, 1, env.patienceMs);
    expect(first && read(first), "the message a wait saw, received by another consumer").toBe("first");
    await first?.ack();
    await other.close();
    // A take gets at most its max, and what it takes is this consumer's to settle.
    await publisher.publish(queue, ["a", "b", "c"].map((body) => ({ body: text(body) })));
    const taken: Delivery[] = [];
    const signal = AbortSignal.timeout(env.patienceMs);
    while (taken.length < 3 && !signal.aborted) {
      await wait(signal); // a spurious wake-up is allowed: the take then finds nothing
      const got = await take.call(consumer, 2);
      if (got.length > 2) throw new Error(`take(2) returned ${got.length} deliveries: more than its max`);
      taken.push(...got);
    }
    expect(taken.map(read).sort(), "three takes' worth of messages").toEqual(["a", "b", "c"]);
    await Promise.all(taken.map((delivery) => delivery.ack()));
    // A wait pending when its consumer closes ends.
    const pending = waitForMessages.call(consumer, new AbortController().signal);
    await consumer.close();
    await settles(pending, env.patienceMs, "a wait pending when its consumer closed");
  },

  async order(env) {
    const broker = await env.open();
    if (!broker.features.ordered) env.skip("features.ordered is false: the broker keeps no order");
    const queue = queueName();
    const sent = bodies("m", 50);
    await broker.publish(queue, sent.map((b) => ({ body: text(b) })));
    const got = await receiveN(broker.consumer(queue), 50, env.patienceMs, 7);
    expect(got.map(read)).toEqual(sent);
    await Promise.all(got.map((d) => d.ack()));
  },

  async partitioned(env) {
    const broker = await env.open();
    if (!broker.features.partitioned) env.skip("features.partitioned is false: deliveries carry no partition");
    const queue = queueName();
    const sent = bodies("m", 12);
    await broker.publish(queue, sent.map((body, i) => ({ body: text(body), key: `k${i % 4}` })));
    const consumer = broker.consumer(queue, { onePerPartition: true });
    const partitionOfKey = new Map<string, string>();
    const seen = new Set<string>();
    const signal = AbortSignal.timeout(env.patienceMs);
    while (seen.size < sent.length && !signal.aborted) {
      const got = await receiveChecked(consumer, 10, signal);
      for (const delivery of got) {
        expect(typeof delivery.partition, `partition of ${read(delivery)}`).toBe("string");
        const key = delivery.key as string;
        expect(partitionOfKey.get(key) ?? delivery.partition, `the partition of key ${key}`).toBe(delivery.partition);
        partitionOfKey.set(key, delivery.partition as string);
        seen.add(read(delivery));
      }
      // onePerPartition: nothing is held, so one receive hands out at most one per partition.
      const partitions = got.map((delivery) => delivery.partition);
      expect(new Set(partitions).size, `one receive with onePerPartition: ${partitions}`).toBe(partitions.length);
      await Promise.all(got.map((delivery) => delivery.ack()));
    }
    expect(seen).toEqual(new Set(sent));
  },

  async "unsettled-return-on-close"(env) {
    const broker = await env.open();
    if (broker.features.delivery !== "at-least-once") env.skip("features.delivery is at-most-once: a received message is gone");
    const queue = queueName();
    await broker.publish(queue, [{ body: text("a") }, { body: text("b") }]);
    const consumer = broker.consumer(queue);
    const got = await receiveN(consumer, 2, env.patienceMs, 2);
    const [acked, unsettled] = got as [Delivery, Delivery];
    await acked.ack();
    await consumer.close(); // the other was received but never settled
    await broker.close();
    const again = await receiveN((await env.open()).consumer(queue), 1, env.patienceMs);
    expect(again.map(read)).toEqual([read(unsettled)]);
    expect(again[0]?.attempt).toBe(2);
    await again[0]?.ack();
  },

  async "killed-consumer-returns"(env) {
    const broker = await env.open();
    if (broker.features.delivery !== "at-least-once") env.skip("features.delivery is at-most-once: a message a killed consumer took is gone");
    needChild(env);
    const queue = queueName();
    // A partitioned broker's child takes one record per partition at a time (as the worker does),
    // so it holds one and counts as delivered only what it was handed; others hold several.
    const partitioned = broker.features.partitioned === true;
    const hold = partitioned ? 1 : 3;
    const sent = bodies("k", hold + 2);
    // Keys apart, so a FIFO broker's groups do not hold one message behind another.
    await broker.publish(queue, sent.map((body, i) => ({ body: text(body), key: `k${i}` })));
    const child = env.child({ mode: "hold", queue, ack: 1, hold, timeoutMs: env.patienceMs, onePerPartition: partitioned });
    const report = await child.report<HoldReport>(env.patienceMs);
    expect(report.held.map((m) => m.attempt)).toEqual(report.held.map(() => 1));
    const acked = new Set(report.acked.map((m) => m.body));
    const held = new Set(report.held.map((m) => m.body));
    const consumer = broker.consumer(queue);
    const got: Delivery[] = [];
    if (!partitioned) {
      // While the child lives, what it holds is its own: another consumer gets the rest, not those.
      // (Not on a partitioned broker: a new group member there takes partitions away by rebalancing.)
      const rest = sent.filter((body) => !acked.has(body) && !held.has(body));
      got.push(...(await receiveUntilSeen(consumer, rest, env.patienceMs, "while the child held the others")));
      got.push(...(await consumer.receive(100, AbortSignal.timeout(env.quietMs))));
      expect(got.map(read).filter((body) => held.has(body)), "messages a live consumer holds, handed to another").toEqual([]);
    }
    await child.kill();
    const wanted = sent.filter((body) => !acked.has(body) && !got.some((delivery) => read(delivery) === body));
    got.push(...(await receiveUntilSeen(consumer, wanted, env.patienceMs, "after the consumer holding them was SIGKILLed")));
    const back = got.filter((delivery) => held.has(read(delivery)));
    expect(back.map((d) => `${read(d)}@${d.attempt}`).sort(), "held by the killed consumer").toEqual([...held].map((body) => `${body}@2`).sort());
    // The rest arrived (above); their attempts are not checked: an adapter may count a delivery ahead
    // of its hand-out (Kafka's write-ahead claims), which a crash then leaves counted.
  },

  async "competing-consumers"(env) {
    const a = await env.open();
    if (a.features.partitioned) {
      env.skip("features.partitioned: consumers share partitions, not messages, and a suite queue may have one partition");
    }
    const b = await env.open();
    const queue = queueName();
    const sent = bodies("c", 20);
    // Keys apart, so a FIFO broker's groups let both consumers have one at once.
    await a.publish(queue, sent.map((body, i) => ({ body: text(body), key: `k${i}` })));
    const consumers = [a.consumer(queue, { maxInFlight: 1 }), b.consumer(queue, { maxInFlight: 1 })];
    // Each holds its first message unsettled until the other has one too: a broker that gives every
    // message to one consumer fails here, whatever the timing.
    const firsts = await Promise.all(
      consumers.map((consumer, i) =>
        receiveN(consumer, 1, env.patienceMs, 1).catch((error: Error) => {
          throw new Error(`consumer ${i + 1} of 2 got nothing while the other held one message: ${error.message}`);
        }),
      ),
    );
    const seen = firsts.flat().map(read);
    await Promise.all(firsts.flat().map((d) => d.ack()));
    const signal = AbortSignal.timeout(env.patienceMs);
    await Promise.all(
      consumers.map(async (consumer) => {
        while (seen.length < sent.length && !signal.aborted) {
          const got = await withTimeout(signal, env.quietMs, (bounded) => receiveChecked(consumer, 1, bounded));
          for (const d of got) {
            seen.push(read(d));
            await d.ack();
          }
        }
      }),
    );
    expect(seen.length).toBe(sent.length);
    expect(new Set(seen)).toEqual(new Set(sent));
  },

  async "broker-restart"(env) {
    const restart = env.options.restartBroker;
    if (!restart) throw new Error("broker-restart needs restartBroker, or a skip reason");
    const broker = await env.open();
    const keeps = broker.features.durable && env.options.restartKeepsNothing === undefined;
    const queue = queueName();
    await broker.publish(queue, [{ body: text("before-0") }, { body: text("before-1") }]);
    const consumer = broker.consumer(queue);
    const [inFlight] = (await receiveN(consumer, 1, env.patienceMs, 1)) as [Delivery];
    const queued = read(inFlight) === "before-0" ? "before-1" : "before-0";
    await restart();
    await broker.publish(queue, [{ body: text("after") }]);
    // The consumer opened before the restart goes on: it gets what was published after it, and
    // (durable) what was queued before it.
    const wanted = keeps ? [queued, "after"] : ["after"];
    const got = await receiveUntilSeen(consumer, wanted, env.patienceMs, "the consumer opened before the restart");
    if (!keeps || broker.features.delivery !== "at-least-once") return;
    // The message in flight at the restart comes back, to this consumer or, once it closed, to another.
    if (got.some((delivery) => read(delivery) === read(inFlight))) return;
    await consumer.close();
    await receiveUntilSeen((await env.open()).consumer(queue), [read(inFlight)], env.patienceMs, "the message in flight at the restart");
  },
};

/** Why a case is skipped before it runs (options.skip), or undefined. */
export function skipReason(options: ConformanceOptions, name: ConformanceCase): string | undefined {
  return options.skip?.[name];
}

/**
 * Runs one case on its own, outside any test runner: resolves with the skip reason when it does not
 * apply (options.skip or a feature the broker lacks), rejects when the broker breaks its property.
 * Closes every broker it opened and kills every child process it started.
 */
export async function runConformanceCase(options: ConformanceOptions, name: ConformanceCase): Promise<{ skipped?: string }> {
  const skipped = skipReason(options, name);
  if (skipped !== undefined) return { skipped };
  const opened: Broker[] = [];
  const children: ChildConsumer[] = [];
  const env: CaseEnv = {
    options,
    patienceMs: options.patienceMs ?? 30_000,
    quietMs: options.quietMs ?? 300,
    async open() {
      const broker = await options.open();
      opened.push(broker);
      await broker.connect();
      return broker;
    },
    child(job) {
      if (options.child === undefined) throw new Error("no options.child");
      const child = new ChildConsumer(options.child, job);
      children.push(child);
      return child;
    },
    skip(reason) {
      throw new CaseSkipped(reason);
    },
  };
  try {
    await CASES[name](env);
    return {};
  } catch (error) {
    if (error instanceof CaseSkipped) return { skipped: error.message };
    throw error;
  } finally {
    await Promise.all(children.map((child) => child.kill()));
    await Promise.all(opened.map((broker) => broker.close()));
  }
}
