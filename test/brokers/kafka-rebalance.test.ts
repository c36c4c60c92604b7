import { randomUUID } from "node:crypto";
import { Kafka, logLevel } from "kafkajs";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Broker, Consumer, Delivery } from "../../src/brokers/contract.js";
import { openKafkaBroker } from "../../src/brokers/kafka/open-kafka-broker.js";
import { waitFor } from "../helpers.js";
import { ensureKafka, KAFKA_URL } from "../setup/ensure-kafka.js";

/**
 * A rebalance while records run, on the real broker. A rebalance takes every partition away from
 * every member (the eager protocol kafkajs speaks); the promise under attack: a record whose
 * handler still runs is never handed to the partition's next owner meanwhile, and nothing is lost
 * (each member holds its rejoin until its running records are settled and committed).
 */
beforeAll(() => ensureKafka(), 300_000);

const PARTITIONS = 6;
/** Long enough for an unheld member to rejoin and its partitions' new owner to fetch (about 1-2 s). */
const WATCH_MS = 8000;

const raw = new Kafka({ clientId: "kafka-rebalance-test", brokers: ["127.0.0.1:9092"], logLevel: logLevel.NOTHING });
const admin = raw.admin();
const producer = raw.producer();
beforeAll(async () => {
  await admin.connect();
  await producer.connect();
}, 300_000);
afterAll(async () => {
  await producer.disconnect();
  await admin.disconnect();
});

const opened: Broker[] = [];
afterEach(async () => {
  for (const member of members.splice(0)) member.stop();
  await Promise.all(opened.splice(0).map((broker) => broker.close()));
});

/** Every hand-out of the test, in order: which member got which record. */
interface Received {
  member: string;
  id: string;
}

/**
 * A worker stand-in: receives in a loop; while `holding`, the first record of each partition it
 * gets "runs" (is held unsettled until release()), the others are acked at once.
 */
interface Member {
  readonly name: string;
  readonly consumer: Consumer;
  readonly held: Delivery[];
  holding: boolean;
  release(): Promise<void>;
  stop(): void;
  loop: Promise<void>;
}

const members: Member[] = [];

async function join(name: string, url: string, topic: string, log: Received[]): Promise<Member> {
  const broker = openKafkaBroker(url);
  opened.push(broker);
  await broker.connect();
  const consumer = broker.consumer(topic, { maxInFlight: 100 });
  const stopped = new AbortController();
  const heldPartitions = new Set<string | undefined>();
  const member: Member = {
    name,
    consumer,
    held: [],
    holding: true,
    async release() {
      await Promise.all(member.held.splice(0).map((delivery) => delivery.ack()));
    },
    stop: () => stopped.abort(),
    loop: Promise.resolve(),
  };
  member.loop = (async () => {
      while (!stopped.signal.aborted) {
        const batch = await consumer.receive(100, stopped.signal);
        for (const delivery of batch) {
          log.push({ member: name, id: Buffer.from(delivery.body).toString() });
          if (member.holding && !heldPartitions.has(delivery.partition)) {
            heldPartitions.add(delivery.partition);
            member.held.push(delivery);
          } else await delivery.ack();
        }
      }
  })();
  members.push(member);
  return member;
}

async function groupState(group: string): Promise<{ state: string; members: number }> {
  const [described] = (await admin.describeGroups([group])).groups;
  return { state: described?.state ?? "Unknown", members: described?.members.length ?? 0 };
}

async function stable(group: string, count: number): Promise<boolean> {
  const { state, members: size } = await groupState(group);
  return state === "Stable" && size === count;
}

/** Whether `check` became true within `ms` (a watch window for something that must not happen). */
async function happensWithin(ms: number, check: () => boolean | Promise<boolean>): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return false;
}

async function publish(topic: string, ids: string[]): Promise<void> {
  await producer.send({ topic, messages: ids.map((id, i) => ({ partition: i % PARTITIONS, value: id })) });
}

const ids = (from: number, count: number) => Array.from({ length: count }, (_, i) => `r${from + i}`);

/** Which member holds ("runs") which record now; the members hold no more from here on. */
function holders(of: Member[]): Map<string, string> {
  for (const member of of) member.holding = false;
  return new Map(of.flatMap((member) => member.held.map((delivery) => [Buffer.from(delivery.body).toString(), member.name] as const)));
}

/** Held records that a member other than their holder was handed (a second run at once). */
function takenOver(log: Received[], holderOf: Map<string, string>): string[] {
  return log.filter(({ member, id }) => holderOf.has(id) && holderOf.get(id) !== member).map(({ id }) => id);
}

async function setUp(): Promise<{ topic: string; group: string; url: string; log: Received[] }> {
  const id = randomUUID().slice(0, 8);
  const topic = `kafka-rebalance.${id}`;
  const group = `kafka-rebalance-${id}`;
  await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS }], waitForLeaders: true });
  return { topic, group, url: `${KAFKA_URL}?group=${group}`, log: [] };
}

/** Every published id was handed out exactly once (no crash here: no redelivery is due either). */
function expectEachOnce(log: Received[], published: string[]): void {
  const counts = new Map<string, number>();
  for (const { id } of log) counts.set(id, (counts.get(id) ?? 0) + 1);
  expect([...counts.keys()].sort()).toEqual([...published].sort());
  expect([...counts].filter(([, count]) => count > 1)).toEqual([]);
}

describe("kafka adapter, a rebalance while records run", () => {
  it("a member joining waits until the running records are settled; none runs twice at once, none is lost", async () => {
    const { topic, group, url, log } = await setUp();
    const first = ids(0, 60);
    await publish(topic, first);
    const a = await join("a", url, topic, log);
    await waitFor(() => `a to hold one record per partition (${a.held.length})`, () => log.length === first.length && a.held.length === PARTITIONS, 60_000);

    const running = holders([a]);
    const b = await join("b", url, topic, log);
    await waitFor("the rebalance to begin", async () => (await groupState(group)).state === "PreparingRebalance", 30_000);
    await happensWithin(WATCH_MS, () => takenOver(log, running).length > 0);
    expect(takenOver(log, running), "held records handed to the joining member").toEqual([]);
    expect(await stable(group, 2), "the group completed its rebalance while a's records still ran").toBe(false);

    await a.release();
    await waitFor("the group to settle with both members", () => stable(group, 2), 60_000);
    const second = ids(60, 60);
    await publish(topic, second);
    await waitFor(() => `every record handed out (${log.length})`, () => log.length >= first.length + second.length, 60_000);
    expect(takenOver(log, running)).toEqual([]);
    expectEachOnce(log, [...first, ...second]);
    expect(log.some(({ member }) => member === b.name), "b got partitions").toBe(true);
  }, 180_000);

  it("a member leaving gracefully: the others hold their rejoin until their running records are settled; none runs twice at once, none is lost", async () => {
    const { topic, group, url, log } = await setUp();
    const a = await join("a", url, topic, log);
    const b = await join("b", url, topic, log);
    const c = await join("c", url, topic, log);
    await waitFor("three members in a stable group", () => stable(group, 3), 60_000);
    const first = ids(0, 60);
    await publish(topic, first);
    await waitFor(() => `each member to hold one record per partition it owns (${log.length})`, () => log.length === first.length && a.held.length + b.held.length + c.held.length === PARTITIONS, 60_000);

    // c leaves as a worker stopping does: its running records finish, then it leaves the group.
    const running = holders([a, b]);
    holders([c]);
    await c.release();
    c.stop();
    await c.loop;
    await c.consumer.close();
    await happensWithin(WATCH_MS, () => takenOver(log, running).length > 0);
    expect(takenOver(log, running), "held records handed to another member").toEqual([]);
    expect(await stable(group, 2), "the group completed its rebalance while records still ran").toBe(false);

    await Promise.all([a.release(), b.release()]);
    await waitFor("the group to settle with two members", () => stable(group, 2), 60_000);
    const second = ids(60, 60);
    await publish(topic, second);
    await waitFor(() => `every record handed out (${log.length})`, () => log.length >= first.length + second.length, 60_000);
    expectEachOnce(log, [...first, ...second]);
  }, 180_000);
});
