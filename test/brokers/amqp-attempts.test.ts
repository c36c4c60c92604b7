import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { openAmqpBroker } from "../../src/brokers/amqp/open-amqp-broker.js";
import type { Broker } from "../../src/brokers/contract.js";
import { requireRabbit } from "./amqp-server.js";

// Delivery counting when workers die holding a message: every death must count one attempt, on
// classic queues (which keep no count) as on quorum queues (x-delivery-count).
const rabbit = requireRabbit("attempts");
const child = fileURLToPath(new URL("./amqp-child.ts", import.meta.url));
const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
const queueName = () => `amqp-attempts.${randomUUID().slice(0, 8)}`;
const text = (value: string) => new TextEncoder().encode(value);

const opened: Broker[] = [];
const children: ChildProcess[] = [];
async function open(url: string, events: string[] = []): Promise<Broker> {
  const broker = openAmqpBroker(url, (_level, message) => events.push(message));
  opened.push(broker);
  await broker.connect();
  return broker;
}

afterEach(async () => {
  for (const proc of children.splice(0)) if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
  await Promise.all(opened.splice(0).map((broker) => broker.close()));
});

interface Held {
  id: string;
  attempt: number;
  body: string;
}

/** Starts a worker process that takes one message of `queue`, reports it, and is then SIGKILLed. */
async function holdAndKill(url: string, queue: string): Promise<Held> {
  const proc = spawn(process.execPath, ["--import", "tsx", child, "hold", url, queue], { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] });
  children.push(proc);
  const line = await new Promise<string>((done, fail) => {
    let stderr = "";
    proc.stderr?.on("data", (chunk) => {
      stderr += String(chunk);
    });
    const timer = setTimeout(() => fail(new Error(`child printed nothing in 20 s: ${stderr}`)), 20_000);
    createInterface({ input: proc.stdout as NodeJS.ReadableStream }).once("line", (first) => {
      clearTimeout(timer);
      done(first);
    });
    proc.once("exit", (code) => fail(new Error(`child exited (${code}) before printing: ${stderr}`)));
  });
  const gone = new Promise((resolve) => proc.once("exit", (_code, signal) => resolve(signal)));
  proc.kill("SIGKILL");
  expect(await gone).toBe("SIGKILL");
  return JSON.parse(line) as Held;
}

/** Three workers die holding the message; the fourth sees attempt 4; a neighbour stays at 1. */
async function killThreeTimes(url: string, queue: string, events: string[] = []): Promise<void> {
  const broker = await open(url, events);
  await broker.publish(queue, [{ body: text("poison") }]);
  const held: Held[] = [];
  for (let kill = 0; kill < 3; kill += 1) held.push(await holdAndKill(url, queue));
  expect(held.map((h) => [h.body, h.attempt])).toEqual([
    ["poison", 1],
    ["poison", 2],
    ["poison", 3],
  ]);
  expect(new Set(held.map((h) => h.id)).size).toBe(1); // one message throughout, its id kept
  await broker.publish(queue, [{ body: text("good") }]);
  const consumer = broker.consumer(queue);
  const got = [];
  const signal = AbortSignal.timeout(10_000);
  while (got.length < 2 && !signal.aborted) got.push(...(await consumer.receive(2, signal)));
  const seen = got.map((delivery) => [new TextDecoder().decode(delivery.body), delivery.attempt]);
  expect(seen.sort()).toEqual([
    ["good", 1],
    ["poison", 4],
  ]);
  await Promise.all(got.map((delivery) => delivery.ack()));
}

describe("amqp attempts across killed workers", () => {
  it("classic queue (the default): each SIGKILLed holder counts one attempt (1, 2, 3, then 4)", async () => {
    await killThreeTimes(rabbit.url, queueName());
  }, 60_000);

  it("quorum queue: each SIGKILLed holder counts one attempt (x-delivery-count)", async () => {
    await killThreeTimes(`${rabbit.url}?queueType=quorum`, queueName());
  }, 60_000);

  it("an existing classic queue that a quorum URL cannot re-declare still counts every death", async () => {
    const queue = queueName();
    const raw = await (await rabbit.raw()).createChannel();
    await raw.assertQueue(queue, { durable: true, arguments: { "x-max-priority": 5 } });
    const events: string[] = [];
    await killThreeTimes(`${rabbit.url}?queueType=quorum`, queue, events);
    expect(events.some((message) => message.includes(`queue ${queue} exists with other arguments`))).toBe(true);
  }, 60_000);
});
