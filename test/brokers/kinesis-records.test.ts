import { randomUUID } from "node:crypto";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import type { Broker, Consumer, Delivery } from "../../src/brokers/contract.js";
import { openKinesisBroker } from "../../src/brokers/kinesis/open-kinesis-broker.js";
import { REDIS_URL } from "../setup/ensure-redis.js";
import { dropKinesisApp, requireKinesis } from "./kinesis-server.js";

/** What a consumer that is not wqueue reads from the records wqueue writes (issue 12, item 18). */
const server = requireKinesis({ prefix: "kinesis-records" });
const app = `records-${randomUUID().slice(0, 8)}`;
const opened: Broker[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((broker) => broker.close()));
});
afterAll(() => dropKinesisApp(app));

function open(query = ""): Broker {
  const broker = openKinesisBroker(server.url(`?app=${app}&checkpoints=${REDIS_URL}&lease=1500&poll=50${query}`));
  opened.push(broker);
  return broker;
}

async function receiveOne(consumer: Consumer): Promise<Delivery> {
  const signal = AbortSignal.timeout(10_000);
  for (;;) {
    const [delivery] = await consumer.receive(1, signal);
    if (delivery) return delivery;
    if (signal.aborted) throw new Error("nothing received");
  }
}

describe("kinesis records as other consumers see them", () => {
  it("publish: the bare payload, the key as partition key; headers (only) put it in the envelope", async () => {
    const stream = server.streamName();
    const broker = open();
    await broker.publish(stream, [{ body: Buffer.from('{"n":1}') }, { body: Buffer.from('{"n":2}'), key: "order-7" }]);
    await broker.publish(stream, [{ body: Buffer.from('{"n":3}'), key: "order-7", headers: { "x-trace": "t1" } }]);
    const records = await server.readAll(stream);
    expect(records.map((record) => record.data.toString())).toEqual(['{"n":1}', '{"n":2}', expect.stringMatching(/^\{"__wqueue__":1,"b":"/)]);
    expect(records.slice(1).map((record) => record.key)).toEqual(["order-7", "order-7"]);
  });

  it("dead letters: the envelope with the reason by default; ?deadLetters=plain writes the payload as it was", async () => {
    for (const [query, plain] of [
      ["", false],
      ["&deadLetters=plain", true],
    ] as const) {
      const stream = server.streamName();
      const broker = open(query);
      await server.createStream(stream, 1);
      await server.put(stream, [{ data: '{"bad":true}', key: "customer-3" }]);
      const delivery = await receiveOne(broker.consumer(stream));
      await delivery.deadLetter({ reason: "handler-failed", error: { name: "TypeError", message: "boom" } });
      const [dead] = await server.readAll(`${stream}.dead`);
      expect(dead?.key).toBe("customer-3");
      if (plain) {
        expect(dead?.data.toString()).toBe('{"bad":true}');
      } else {
        const envelope = JSON.parse(dead?.data.toString() ?? "{}");
        expect(envelope.__wqueue__).toBe(1);
        expect(Buffer.from(envelope.b, "base64").toString()).toBe('{"bad":true}');
        expect(envelope.h).toMatchObject({ "x-wqueue-dead-reason": "handler-failed", "x-wqueue-dead-queue": stream });
      }
    }
  }, 40_000);
});
