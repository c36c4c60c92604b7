import { afterEach, describe, expect, it } from "vitest";
import type { Delivery } from "../../src/brokers/contract.js";
import { openSqsBroker } from "../../src/brokers/sqs/open-sqs-broker.js";
import { sqsQueueName } from "../../src/brokers/sqs/queue-names.js";
import type { SqsBroker } from "../../src/brokers/sqs/SqsBroker.js";
import { runCli } from "../cli/run-cli.js";
import { requireSqs } from "./sqs-server.js";

/** Broker.browse on SQS (ElasticMQ): look at messages and give them back at once. */
const sqs = requireSqs({ prefix: "sqs-browse" });
const text = (body: Uint8Array) => Buffer.from(body).toString();
const brokers: SqsBroker[] = [];
async function open(): Promise<SqsBroker> {
  const broker = openSqsBroker(sqs.url("&visibility=30")) as SqsBroker;
  brokers.push(broker);
  await broker.connect();
  return broker;
}
afterEach(async () => {
  await Promise.all(brokers.splice(0).map((broker) => broker.close()));
});

/** Publishes `bodies` to `queue` and dead-letters each, as a failing handler would. */
async function makeDeadLetters(broker: SqsBroker, queue: string, bodies: string[]): Promise<void> {
  await broker.publish(queue, bodies.map((body) => ({ body: Buffer.from(body), headers: { "x-origin": "test" } })));
  const consumer = broker.consumer(queue);
  const got: Delivery[] = [];
  const signal = AbortSignal.timeout(10_000);
  while (got.length < bodies.length && !signal.aborted) got.push(...(await consumer.receive(bodies.length - got.length, signal)));
  for (const delivery of got) await delivery.deadLetter({ reason: "handler-failed", error: { name: "TypeError", message: `bad ${text(delivery.body)}` } });
  await consumer.close();
}

describe("sqs browse", () => {
  it("lists up to the limit without taking: every listed message is visible again at once", async () => {
    const broker = await open();
    const queue = sqs.queueName();
    const bodies = Array.from({ length: 15 }, (_, i) => `m${i}`);
    await broker.publish(queue, bodies.map((body) => ({ body: Buffer.from(body), headers: { "x-n": body }, key: `k-${body}` })));
    const five = await broker.browse(queue, 5);
    expect(five).toHaveLength(5);
    const all = await broker.browse(queue, 100);
    expect(all.map((message) => text(message.body)).sort()).toEqual([...bodies].sort());
    expect(all.every((message) => message.headers["x-n"] === text(message.body) && message.key === `k-${text(message.body)}`)).toBe(true);
    // Given back, not hidden for the listing's 30 s: all visible to SQS and a consumer right away.
    expect(await sqs.counts(sqsQueueName(queue).name)).toEqual([15, 0]);
    const consumer = broker.consumer(queue);
    const got: Delivery[] = [];
    const signal = AbortSignal.timeout(10_000);
    while (got.length < 15 && !signal.aborted) got.push(...(await consumer.receive(15, signal)));
    expect(got.map((delivery) => text(delivery.body)).sort()).toEqual([...bodies].sort());
    await Promise.all(got.map((delivery) => delivery.ack()));
  }, 30_000);

  it("`wqueue dead-letters list` works on sqs and leaves the dead letters where they are", async () => {
    const broker = await open();
    const queue = sqs.queueName();
    await makeDeadLetters(broker, queue, ['{"id":1}', '{"id":2}']);
    const env = { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" }; // the AWS SDK's Node 20 notice (README)
    const listed = await runCli(["dead-letters", "list", queue, "--broker", sqs.url(), "--json"], { env });
    expect(listed.stderr).toBe("");
    expect(listed.code).toBe(0);
    const rows = listed.stdout.split("\n").filter(Boolean).map((line) => JSON.parse(line));
    expect(rows.map((r) => [r.queue, r.reason, r.error, r.body]).sort()).toEqual([
      [queue, "handler-failed", 'TypeError: bad {"id":1}', '{"id":1}'],
      [queue, "handler-failed", 'TypeError: bad {"id":2}', '{"id":2}'],
    ]);
    const again = await runCli(["dead-letters", "list", queue, "--broker", sqs.url(), "--json"], { env });
    expect(again.stdout.split("\n").filter(Boolean)).toHaveLength(2);
    expect(await sqs.counts(sqsQueueName(`${queue}.dead`).name)).toEqual([2, 0]);
  }, 60_000);
});
