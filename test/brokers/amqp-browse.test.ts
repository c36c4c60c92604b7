import { randomUUID } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { openAmqpBroker } from "../../src/brokers/amqp/open-amqp-broker.js";
import type { Broker, Delivery } from "../../src/brokers/contract.js";
import { listDeadLetters, replayDeadLetters } from "../../src/dead-letters/dead-letters.js";
import { ConfigError } from "../../src/errors.js";
import { runCli } from "../cli/run-cli.js";
import { requireRabbit, waitFor } from "./amqp-server.js";

// `wqueue dead-letters list` on RabbitMQ: looks at a queue's head and gives everything back.
const rabbit = requireRabbit("browse");
const queueName = () => `amqp-browse.${randomUUID().slice(0, 8)}`;
const text = (value: string) => new TextEncoder().encode(value);
const read = (body: Uint8Array) => Buffer.from(body).toString();

const opened: Broker[] = [];
async function open(): Promise<Broker> {
  const broker = openAmqpBroker(rabbit.url);
  opened.push(broker);
  await broker.connect();
  return broker;
}
afterEach(async () => {
  await Promise.all(opened.splice(0).map((broker) => broker.close()));
});

/** Ready messages in `queue`, or undefined if it does not exist (own channel: a 404 closes it). */
async function readyCount(queue: string): Promise<number | undefined> {
  const channel = await (await rabbit.raw()).createChannel();
  channel.on("error", () => {});
  try {
    return (await channel.checkQueue(queue)).messageCount;
  } catch {
    return undefined;
  } finally {
    await channel.close().catch(() => {});
  }
}

/** Publishes a, b, c to `queue` and dead-letters them in that order. */
async function threeDeadLetters(broker: Broker, queue: string): Promise<void> {
  await broker.publish(queue, ["a", "b", "c"].map((body) => ({ body: text(body), headers: { "x-trace": body } })));
  const consumer = broker.consumer(queue);
  const got: Delivery[] = [];
  const signal = AbortSignal.timeout(5000);
  while (got.length < 3 && !signal.aborted) got.push(...(await consumer.receive(3 - got.length, signal)));
  for (const delivery of got) await delivery.deadLetter({ reason: "handler-failed", error: { name: "Error", message: `bad ${read(delivery.body)}` } });
  await consumer.close();
}

describe("amqp browse (dead-letters list)", () => {
  it("lists dead letters oldest first without taking them: twice the same, then replay takes them all", async () => {
    const broker = await open();
    const queue = queueName();
    await threeDeadLetters(broker, queue);
    const first = await listDeadLetters(broker, `${queue}.dead`, 10);
    expect(first.map((letter) => [read(letter.body), letter.reason, letter.error, letter.queue, letter.headers["x-trace"]])).toEqual([
      ["a", "handler-failed", "Error: bad a", queue, "a"],
      ["b", "handler-failed", "Error: bad b", queue, "b"],
      ["c", "handler-failed", "Error: bad c", queue, "c"],
    ]);
    expect((await listDeadLetters(broker, `${queue}.dead`, 2)).map((letter) => read(letter.body))).toEqual(["a", "b"]);
    const again = await listDeadLetters(broker, `${queue}.dead`, 10);
    expect(again.map((letter) => [letter.id, read(letter.body)])).toEqual(first.map((letter) => [letter.id, read(letter.body)]));
    await waitFor("the three to be back", async () => (await readyCount(`${queue}.dead`)) === 3);

    expect(await replayDeadLetters(broker, `${queue}.dead`, { limit: 10 })).toBe(3);
    const consumer = broker.consumer(queue);
    const replayed: Delivery[] = [];
    const signal = AbortSignal.timeout(5000);
    while (replayed.length < 3 && !signal.aborted) replayed.push(...(await consumer.receive(3, signal)));
    expect(replayed.map((delivery) => [read(delivery.body), delivery.attempt]).sort()).toEqual([
      ["a", 1],
      ["b", 1],
      ["c", 1],
    ]);
    await Promise.all(replayed.map((delivery) => delivery.ack()));
    expect(await readyCount(`${queue}.dead`)).toBe(0);
  });

  it("a queue that does not exist lists as empty and is not created", async () => {
    const broker = await open();
    const queue = queueName();
    expect(await broker.browse?.(`${queue}.dead`, 10)).toEqual([]);
    expect(await readyCount(`${queue}.dead`)).toBeUndefined();
    await broker.publish(queue, [{ body: text("still connected") }]);
  });

  it("a stream queue is refused with a ConfigError before anything is read; the connection stays usable", async () => {
    const broker = await open();
    const queue = queueName();
    const raw = await (await rabbit.raw()).createConfirmChannel();
    await raw.assertQueue(queue, { durable: true, arguments: { "x-queue-type": "stream" } });
    raw.sendToQueue(queue, Buffer.from("kept"));
    await raw.waitForConfirms();
    await expect(broker.browse?.(queue, 10)).rejects.toBeInstanceOf(ConfigError);
    const other = queueName();
    await broker.publish(other, [{ body: text("after") }]);
    expect(await readyCount(other)).toBe(1);
  });

  it("`wqueue dead-letters list` prints them on amqp, and they stay", async () => {
    const broker = await open();
    const queue = queueName();
    await threeDeadLetters(broker, queue);
    const result = await runCli(["dead-letters", "list", queue, "--broker", rabbit.url]);
    expect(result.code).toBe(0);
    const lines = result.stdout.split("\n").filter((line) => line !== "");
    expect(lines).toHaveLength(3);
    expect(lines.map((line) => line.split("\t")[2])).toEqual(["handler-failed", "handler-failed", "handler-failed"]);
    expect(result.stderr).toContain(`3 dead letter(s) in ${queue}.dead`);
    await waitFor("the three to be back", async () => (await readyCount(`${queue}.dead`)) === 3);
  }, 30_000);
});
