import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { Kafka, logLevel } from "kafkajs";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Broker, Consumer, Delivery } from "../../src/brokers/contract.js";
import { SESSION_TIMEOUT_MS } from "../../src/brokers/kafka/group-member.js";
import { openKafkaBroker } from "../../src/brokers/kafka/open-kafka-broker.js";
import { waitFor } from "../helpers.js";
import { ensureKafka, KAFKA_URL } from "../setup/ensure-kafka.js";

/**
 * Who owns a Kafka record while its handler runs, on the real broker: a worker that dies holding
 * one (a child process SIGKILLed, as a handler that kills its worker would), and one that holds it
 * far longer than the group's session timeout.
 */
beforeAll(() => ensureKafka(), 300_000);

const child = fileURLToPath(new URL("./kafka-child.ts", import.meta.url));
const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
const text = (value: string) => new TextEncoder().encode(value);
const read = (delivery: Delivery) => Buffer.from(delivery.body).toString();
const names = () => {
  const id = randomUUID().slice(0, 8);
  return { topic: `kafka-crash.${id}`, group: `kafka-crash-${id}` };
};

const raw = new Kafka({ clientId: "kafka-ownership-test", brokers: ["127.0.0.1:9092"], logLevel: logLevel.NOTHING });
const admin = raw.admin();
beforeAll(() => admin.connect(), 300_000);
afterAll(() => admin.disconnect());

const opened: Broker[] = [];
const children: ChildProcess[] = [];
async function open(url: string): Promise<Broker> {
  const broker = openKafkaBroker(url);
  opened.push(broker);
  await broker.connect();
  return broker;
}
afterEach(async () => {
  for (const proc of children.splice(0)) if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
  await Promise.all(opened.splice(0).map((broker) => broker.close()));
});

async function receiveN(consumer: Consumer, count: number, timeoutMs = 30_000): Promise<Delivery[]> {
  const signal = AbortSignal.timeout(timeoutMs);
  const got: Delivery[] = [];
  while (got.length < count && !signal.aborted) got.push(...(await consumer.receive(count - got.length, signal)));
  return got;
}

/** The child's first stdout line, or a failure if it exits or `timeoutMs` passes first. */
function firstLine(proc: ChildProcess, timeoutMs = 45_000): Promise<string> {
  return new Promise((done, fail) => {
    const lines = createInterface({ input: proc.stdout as NodeJS.ReadableStream });
    let stderr = "";
    proc.stderr?.on("data", (chunk) => {
      stderr += String(chunk);
    });
    const timer = setTimeout(() => fail(new Error(`child printed nothing in ${timeoutMs} ms: ${stderr}`)), timeoutMs);
    lines.once("line", (line) => {
      clearTimeout(timer);
      done(line);
    });
    proc.once("exit", (code) => fail(new Error(`child exited (${code}) before printing: ${stderr}`)));
  });
}

/** Starts a child consumer of the group, waits for the record it took, then SIGKILLs it. */
async function takeAndDie(url: string, topic: string): Promise<{ id: string; attempt: number; body: string }> {
  const proc = spawn(process.execPath, ["--import", "tsx", child, "receive", url, topic], { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] });
  children.push(proc);
  const taken = JSON.parse(await firstLine(proc)) as { id: string; attempt: number; body: string };
  const gone = new Promise((resolve) => proc.once("exit", (_code, signal) => resolve(signal)));
  proc.kill("SIGKILL");
  expect(await gone).toBe("SIGKILL");
  return taken;
}

describe("kafka adapter, worker killed holding a record", () => {
  it("counts the delivery before the record runs: the next owners see attempt 2, then 3, and the partition moves on", async () => {
    const { topic, group } = names();
    const url = `${KAFKA_URL}?group=${group}`;
    const publisher = await open(url);
    await publisher.publish(topic, ["poison", "after-1", "after-2"].map((body) => ({ body: text(body) })));

    // Each owner dies at once, before any timer of its own could have committed anything.
    const attempts: number[] = [];
    for (let i = 0; i < 2; i += 1) {
      const taken = await takeAndDie(url, topic);
      expect(taken).toMatchObject({ id: "0:0", body: "poison" });
      attempts.push(taken.attempt);
    }
    const [third] = await receiveN((await open(url)).consumer(topic), 1, 45_000);
    expect(third && read(third)).toBe("poison");
    attempts.push(third?.attempt ?? 0);
    expect(attempts).toEqual([1, 2, 3]);
    // A verdict is reachable: settling it lets the records behind it run.
    await third?.ack();
    const rest = third ? await receiveN((await open(url)).consumer(topic), 2, 45_000) : [];
    expect(rest.map(read)).toEqual(["after-1", "after-2"]);
  }, 120_000);
});

describe("kafka adapter, a handler running 3x the session timeout", () => {
  it("keeps its record: heartbeats go on while it runs, the other member never gets it, its ack commits", async () => {
    const { topic, group } = names();
    const url = `${KAFKA_URL}?group=${group}&partitions=2`;
    await admin.createTopics({ topics: [{ topic, numPartitions: 2 }], waitForLeaders: true });
    const a = (await open(url)).consumer(topic);
    const b = (await open(url)).consumer(topic);
    // Both members join first (each owns one partition), so no join moves a record during the hold.
    await waitFor("both members in a stable group", async () => {
      const { groups } = await admin.describeGroups([group]);
      return groups[0]?.state === "Stable" && groups[0].members.length === 2;
    }, 60_000);
    const producer = raw.producer();
    await producer.connect();
    await producer.send({ topic, messages: [{ partition: 0, value: "slow-0" }, { partition: 1, value: "slow-1" }] });
    await producer.disconnect();
    const held = await Promise.all([a, b].map((consumer) => receiveN(consumer, 1, 60_000)));
    expect(held.flat().map(read).sort()).toEqual(["slow-0", "slow-1"]);

    // Both "handlers" run for 3 session timeouts while each member keeps asking for more.
    const again: string[] = [];
    const holdUntil = AbortSignal.timeout(3 * SESSION_TIMEOUT_MS);
    await Promise.all(
      [a, b].map(async (consumer) => {
        while (!holdUntil.aborted) again.push(...(await consumer.receive(10, holdUntil)).map(read));
      }),
    );
    expect(again).toEqual([]);
    await Promise.all(held.flat().map((delivery) => delivery.ack()));
    await Promise.all([a, b].map((consumer) => consumer.close()));
    const [committed] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
    expect(committed?.partitions.map((p) => p.offset)).toEqual(["1", "1"]);
  }, 120_000);
});
