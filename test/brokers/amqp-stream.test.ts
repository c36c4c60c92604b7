import { randomUUID } from "node:crypto";
import type { ConsumeMessage } from "amqplib";
import { afterEach, describe, expect, it } from "vitest";
import { openAmqpBroker } from "../../src/brokers/amqp/open-amqp-broker.js";
import type { Broker } from "../../src/brokers/contract.js";
import { ConfigError } from "../../src/errors.js";
import { runCli, tempDir, writeApp } from "../cli/run-cli.js";
import { requireRabbit, waitFor } from "./amqp-server.js";

// A queue the user declared as a RabbitMQ stream: wqueue refuses it with one line and takes nothing.
const rabbit = requireRabbit("stream");
const text = (value: string) => new TextEncoder().encode(value);

const opened: Broker[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((broker) => broker.close()));
});

/** Declares `queue` as a stream holding five messages, as a user's own producer would. */
async function streamWithFive(): Promise<string> {
  const queue = `amqp-stream.${randomUUID().slice(0, 8)}`;
  const channel = await (await rabbit.raw()).createConfirmChannel();
  await channel.assertQueue(queue, { durable: true, arguments: { "x-queue-type": "stream" } });
  for (let i = 1; i <= 5; i += 1) channel.sendToQueue(queue, Buffer.from(`m${i}`), { persistent: true });
  await channel.waitForConfirms();
  await channel.close();
  return queue;
}

/** Every message in the stream, read from its first offset by a plain stream consumer. */
async function readStream(queue: string, expected: number): Promise<string[]> {
  const channel = await (await rabbit.raw()).createChannel();
  await channel.prefetch(100);
  const bodies: string[] = [];
  await channel.consume(queue, (message: ConsumeMessage | null) => {
    if (message === null) return;
    bodies.push(message.content.toString());
    channel.ack(message);
  }, { arguments: { "x-stream-offset": "first" } });
  await waitFor(`${expected} messages in ${queue}`, () => bodies.length >= expected);
  await channel.close();
  return bodies;
}

describe("amqp stream queues", () => {
  it("a consumer refuses a stream queue with one ConfigError line, takes nothing, and publish refuses too", async () => {
    const queue = await streamWithFive();
    const broker = openAmqpBroker(rabbit.url);
    opened.push(broker);
    await broker.connect();
    const consumer = broker.consumer(queue);
    const refusal = await consumer.ready?.().catch((error: unknown) => error);
    expect(refusal).toBeInstanceOf(ConfigError);
    const line = (refusal as Error).message;
    expect(line).toContain(`queue ${queue} is a RabbitMQ stream`);
    expect(line).not.toContain("\n");
    await expect(consumer.receive(10, AbortSignal.timeout(2000))).rejects.toBeInstanceOf(ConfigError);
    await expect(broker.publish(queue, [{ body: text("more") }])).rejects.toBeInstanceOf(ConfigError);
    await broker.close();
    expect(await readStream(queue, 5)).toEqual(["m1", "m2", "m3", "m4", "m5"]);
  });

  it("`wqueue worker` on a stream queue exits 2 with one line, redacted, before ready", async () => {
    const queue = await streamWithFive();
    const dir = tempDir();
    const app = writeApp(dir, "app.mjs", `export const app = new WQueue();\napp.listenEvents(${JSON.stringify(queue)}, () => { console.log("HANDLED"); });`);
    const result = await runCli(["worker", "-a", app, "--broker", rabbit.url], { cwd: dir });
    expect(result.code).toBe(2);
    const lines = result.stderr.split("\n").filter((l) => l.trim() !== "");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`queue ${queue} is a RabbitMQ stream`);
    expect(lines[0]).toContain("guest:***@");
    expect(result.stdout).not.toContain("HANDLED");
    expect(result.stdout).not.toContain("ready");
    expect(await readStream(queue, 5)).toEqual(["m1", "m2", "m3", "m4", "m5"]);
  }, 30_000);
});
