import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { createInterface } from "node:readline";
import { AssignerProtocol, Kafka, logLevel, Partitioners } from "kafkajs";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Broker, Consumer } from "../../src/brokers/contract.js";
import { RANGE, rangeSplit } from "../../src/brokers/kafka/assigner.js";
import { openKafkaBroker } from "../../src/brokers/kafka/open-kafka-broker.js";
import { waitFor } from "../helpers.js";
import { ensureKafka, KAFKA_URL } from "../setup/ensure-kafka.js";

/**
 * Another Kafka client in a wqueue consumer group: kcat (librdkafka, Debian package `kcat`) as a
 * real member beside two wqueue consumers, speaking the standard "range" assignment protocol.
 */
beforeAll(() => ensureKafka(), 300_000);
beforeAll(() => {
  try {
    execFileSync("kcat", ["-V"], { stdio: "ignore" });
  } catch {
    throw new Error("kcat is not installed: apt-get install -y kcat (it joins a wqueue group as librdkafka)");
  }
});

const raw = new Kafka({ clientId: "kafka-interop-test", brokers: ["127.0.0.1:9092"], logLevel: logLevel.NOTHING });
const admin = raw.admin();
beforeAll(() => admin.connect(), 300_000);
afterAll(() => admin.disconnect());

const opened: Broker[] = [];
const children: ChildProcess[] = [];
afterEach(async () => {
  for (const proc of children.splice(0)) if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
  await Promise.all(opened.splice(0).map((broker) => broker.close()));
});

/** Receives and acks until `stop` aborts, recording each body. */
async function drain(consumer: Consumer, stop: AbortSignal, seen: string[]): Promise<void> {
  while (!stop.aborted) {
    for (const delivery of await consumer.receive(50, stop)) {
      seen.push(Buffer.from(delivery.body).toString());
      await delivery.ack();
    }
  }
}

/** kcat as a balanced-consumer member of `group`, printing each value on a line into `seen`. */
function startKcat(group: string, topic: string, seen: string[]): ChildProcess {
  const proc = spawn("kcat", ["-b", "127.0.0.1:9092", "-G", group, "-X", "auto.offset.reset=earliest", "-f", "%s\\n", "-q", "-u", topic], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(proc);
  createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on("line", (line) => seen.push(line));
  return proc;
}

/** The group once stable with `count` members: its protocol and each member's partition count. */
async function stableGroup(group: string, count: number) {
  let described: Awaited<ReturnType<typeof admin.describeGroups>>["groups"][number] | undefined;
  await waitFor(
    () => `group ${group} stable with ${count} members (${described?.state}, ${described?.members.length})`,
    async () => {
      [described] = (await admin.describeGroups([group])).groups;
      return described?.state === "Stable" && described.members.length === count;
    },
    60_000,
  );
  const group_ = described as NonNullable<typeof described>;
  const partitions = group_.members.map((member) => {
    const assignment = AssignerProtocol.MemberAssignment.decode(member.memberAssignment)?.assignment ?? {};
    return { client: member.clientId, partitions: Object.values(assignment).flat().length };
  });
  return { protocol: group_.protocol, partitions };
}

describe("kafka consumer group shared with kcat (librdkafka)", () => {
  it("splits partitions like Java's RangeAssignor", () => {
    expect([...rangeSplit(["b", "a"], [0, 1, 2])]).toEqual([
      ["a", [0, 1]],
      ["b", [2]],
    ]);
    expect([...rangeSplit(["m1", "m2", "m3"], [0, 1, 2, 3, 4, 5, 6])].map(([, range]) => range)).toEqual([[0, 1, 2], [3, 4], [5, 6]]);
    expect(rangeSplit(["a", "b"], [0]).get("b")).toEqual([]);
  });

  it.each([
    { order: "kcat joins a group of two wqueue workers", kcatFirst: false },
    { order: "two wqueue workers join kcat's group", kcatFirst: true },
  ])("$order: partitions split 3 ways, every message handled once", async ({ kcatFirst }) => {
    const id = randomUUID().slice(0, 8);
    const topic = `kafka-interop.${id}`;
    const group = `kafka-interop-${id}`;
    await admin.createTopics({ topics: [{ topic, numPartitions: 6 }], waitForLeaders: true });
    const byWqueue: string[] = [];
    const byKcat: string[] = [];
    const stop = new AbortController();
    const runs: Promise<void>[] = [];
    const startWqueue = async () => {
      for (let i = 0; i < 2; i += 1) {
        const broker = openKafkaBroker(`${KAFKA_URL}?group=${group}`);
        opened.push(broker);
        await broker.connect();
        runs.push(drain(broker.consumer(topic), stop.signal, byWqueue));
      }
    };
    try {
      if (kcatFirst) {
        startKcat(group, topic, byKcat);
        await stableGroup(group, 1);
        await startWqueue();
      } else {
        await startWqueue();
        await stableGroup(group, 2);
        startKcat(group, topic, byKcat);
      }
      const { protocol, partitions } = await stableGroup(group, 3);
      expect(protocol).toBe(RANGE);
      expect(partitions.map((member) => member.partitions)).toEqual([2, 2, 2]);

      const producer = raw.producer({ createPartitioner: Partitioners.DefaultPartitioner });
      await producer.connect();
      const count = 600;
      await producer.send({ topic, messages: Array.from({ length: count }, (_, n) => ({ key: `k${n}`, value: `m${n}` })) });
      await producer.disconnect();
      await waitFor(
        () => `every message (wqueue ${byWqueue.length}, kcat ${byKcat.length})`,
        () => new Set([...byWqueue, ...byKcat]).size === count,
        60_000,
      );
      expect(byKcat.length).toBeGreaterThan(0);
      expect(byWqueue.length).toBeGreaterThan(0);
      expect(byWqueue.length + byKcat.length).toBe(count); // none handled twice
    } finally {
      stop.abort();
      await Promise.all(runs);
    }
  }, 180_000);
});
