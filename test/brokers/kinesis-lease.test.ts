import { randomUUID } from "node:crypto";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import type { Broker, Consumer, Delivery } from "../../src/brokers/contract.js";
import { openKinesisBroker } from "../../src/brokers/kinesis/open-kinesis-broker.js";
import { waitFor } from "../helpers.js";
import { REDIS_URL } from "../setup/ensure-redis.js";
import { dropKinesisApp, requireKinesis } from "./kinesis-server.js";
import { type PrivateRedis, startPrivateRedis } from "./redis-private-server.js";

/**
 * Long handlers on Kinesis: a record stays with the worker running it for as long as it runs (the
 * shard lease is renewed meanwhile, and a hand-over waits for it), and a checkpoint store lost
 * after start shows as a failing receive until it answers again.
 */
const server = requireKinesis({ prefix: "kinesis-lease" });
const app = `lease-${randomUUID().slice(0, 8)}`;
const LEASE_MS = 1000;
const opened: Broker[] = [];
const privateRedis: PrivateRedis[] = [];

afterEach(async () => {
  await Promise.all(opened.splice(0).map((broker) => broker.close()));
  await Promise.all(privateRedis.splice(0).map((redis) => redis.stop()));
});
afterAll(() => dropKinesisApp(app));

function open(checkpoints = REDIS_URL): Broker {
  const broker = openKinesisBroker(server.url(`?app=${app}&checkpoints=${checkpoints}&lease=${LEASE_MS}&poll=50`));
  opened.push(broker);
  return broker;
}

const text = (delivery: Delivery) => Buffer.from(delivery.body).toString();
/** A receive that fails yields [] after a short pause (a polling interval, as the worker backs off). */
const orNothing = (receiving: Promise<Delivery[]>) =>
  receiving.catch(() => new Promise<Delivery[]>((resolve) => setTimeout(() => resolve([]), 50)));

/** What `consumer` receives until `ms` pass (the window is the test's condition, not a delay). */
async function receiveFor(consumer: Consumer, ms: number): Promise<Delivery[]> {
  const signal = AbortSignal.timeout(ms);
  const got: Delivery[] = [];
  while (!signal.aborted) got.push(...(await orNothing(consumer.receive(10, signal))));
  return got;
}

async function receiveAtLeast(consumer: Consumer, count: number, timeoutMs = 15_000): Promise<Delivery[]> {
  const signal = AbortSignal.timeout(timeoutMs);
  const got: Delivery[] = [];
  while (got.length < count && !signal.aborted) got.push(...(await consumer.receive(10, signal)));
  return got;
}

describe("kinesis: long handlers and the lease store", () => {
  it("records running 3x the lease are not handed to a second worker, not even when it takes over a shard", async () => {
    const stream = server.streamName();
    await server.createStream(stream, 2);
    await server.put(stream, [
      { data: "r0", key: "k0" },
      { data: "r1", key: "k1" },
      { data: "r2", key: "k2" },
      { data: "r3", key: "k3" },
    ]);
    const first = open().consumer(stream, { onePerPartition: true });
    // One record of each shard, running (held unsettled) while a second worker joins.
    const running = await receiveAtLeast(first, 2);
    expect(new Set(running.map((delivery) => delivery.partition)).size).toBe(2);
    const second = open().consumer(stream, { onePerPartition: true });
    const stolen = await receiveFor(second, 3 * LEASE_MS + 500);
    expect(stolen.map(text).filter((body) => running.map(text).includes(body))).toEqual([]);
    for (const delivery of [...running, ...stolen]) await delivery.ack();
  }, 40_000);

  it("a checkpoint store lost after start: receive rejects (readiness shows it), then consuming resumes", async () => {
    const redis = await startPrivateRedis();
    privateRedis.push(redis);
    const stream = server.streamName();
    const broker = open(redis.url);
    await broker.connect();
    const consumer = broker.consumer(stream);
    await broker.publish(stream, [{ body: Buffer.from("before") }]);
    const [before] = await receiveAtLeast(consumer, 1);
    await before?.ack();
    await redis.kill();
    const signal = AbortSignal.timeout(20_000);
    let failure: Error | undefined;
    while (failure === undefined && !signal.aborted) {
      failure = await consumer.receive(10, signal).then(
        () => undefined,
        (error: Error) => error,
      );
    }
    expect(failure?.message).toMatch(/lease store of .+ does not answer/);
    await redis.start();
    await broker.publish(stream, [{ body: Buffer.from("after") }]);
    const after: Delivery[] = [];
    // ("before" may come again: its checkpoint may not have reached the store before the kill.)
    await waitFor(
      () => `"after" received (got ${after.map(text)})`,
      async () => {
        for (const delivery of await orNothing(consumer.receive(10, AbortSignal.timeout(500)))) {
          after.push(delivery);
          await delivery.ack();
        }
        return after.map(text).includes("after");
      },
      30_000,
    );
  }, 60_000);

  it("a record running while its shard's lease is lost and taken again by the same worker: not handed out again meanwhile, and its verdict is given once", async () => {
    const redis = await startPrivateRedis();
    privateRedis.push(redis);
    const stream = server.streamName();
    let lost = false;
    const broker = openKinesisBroker(server.url(`?app=${app}&checkpoints=${redis.url}&lease=${LEASE_MS}&poll=50`), (_level, message) => {
      lost ||= message.includes("lost the lease");
    });
    opened.push(broker);
    await broker.connect();
    const consumer = broker.consumer(stream);
    await broker.publish(stream, [{ body: Buffer.from("held"), key: "k" }, { body: Buffer.from("next"), key: "k" }]);
    const first = await receiveAtLeast(consumer, 2);
    const held = first.find((delivery) => text(delivery) === "held");
    for (const delivery of first) if (delivery !== held) await delivery.ack();
    expect(held).toBeDefined();

    // The store goes away for longer than the lease: the worker drops the lease while "held" runs.
    await redis.kill();
    await waitFor("the worker to drop the lease", async () => {
      await orNothing(consumer.receive(10, AbortSignal.timeout(200)));
      return lost;
    }, 20_000);
    await redis.start();
    // The worker takes the shard again and reads it from the checkpoint, below "held": "next" comes
    // again (its checkpoint was not stored, or stored below "held"), "held" must not while it runs.
    const again: Delivery[] = [];
    await waitFor(
      () => `"next" handed out again (got ${again.map(text)})`,
      async () => {
        for (const delivery of await orNothing(consumer.receive(10, AbortSignal.timeout(500)))) {
          again.push(delivery);
          if (text(delivery) !== "held") await delivery.ack();
        }
        return again.some((delivery) => text(delivery) === "next");
      },
      30_000,
    );
    again.push(...(await receiveFor(consumer, 3 * LEASE_MS)));
    expect(again.map(text).filter((body) => body === "held"), "handed out again while its first run went on").toEqual([]);

    // The first run's verdict lands on the lease held now: one dead letter, and "held" is finished.
    await held?.deadLetter({ reason: "poison", error: { name: "Error", message: "killed its sandbox 3 times" } });
    const dead = broker.consumer(`${stream}.dead`);
    const letters = await receiveFor(dead, 3 * LEASE_MS);
    expect(letters.map(text)).toEqual(["held"]);
    expect((await receiveFor(consumer, 2 * LEASE_MS)).map(text)).toEqual([]);
  }, 90_000);

  it("close() of consumer and broker finishes while the checkpoint store does not answer (the leases then expire instead)", async () => {
    const redis = await startPrivateRedis();
    privateRedis.push(redis);
    const stream = server.streamName();
    const broker = open(redis.url);
    const consumer = broker.consumer(stream);
    await broker.publish(stream, [{ body: Buffer.from("held") }]);
    const [held] = await receiveAtLeast(consumer, 1);
    expect(held && text(held)).toBe("held");
    await redis.kill();
    // Within the test's timeout: unbounded, the consumer took 36 s and the broker never finished.
    await consumer.close();
    await broker.close();
  }, 20_000);
});
