import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Broker, Consumer, Delivery } from "../../src/brokers/contract.js";
import { openKafkaBroker } from "../../src/brokers/kafka/open-kafka-broker.js";
import { ensureKafka, KAFKA_URL } from "../setup/ensure-kafka.js";

/**
 * The Kafka adapter when a worker dies holding a record (a child process SIGKILLed, as a handler
 * that kills its worker would), on the real broker.
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
