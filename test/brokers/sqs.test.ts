import {
  ChangeMessageVisibilityCommand,
  DeleteQueueCommand,
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
} from "@aws-sdk/client-sqs";
import { afterEach, describe, expect, it } from "vitest";
import type { Broker, Consumer, Delivery } from "../../src/brokers/contract.js";
import { openSqsBroker } from "../../src/brokers/sqs/open-sqs-broker.js";
import { sqsQueueName } from "../../src/brokers/sqs/queue-names.js";
import type { SqsBroker } from "../../src/brokers/sqs/SqsBroker.js";
import { parseSqsUrl } from "../../src/brokers/sqs/sqs-url.js";
import { BrokerUnreachableError, ConfigError } from "../../src/errors.js";
import { LeaseKeeper } from "../../src/dispatch/LeaseKeeper.js";
import { memoryLogger, waitFor } from "../helpers.js";
import { freePort, requireSqs } from "./sqs-server.js";

/** SQS-specific behaviour the conformance suite cannot see, against the real ElasticMQ. */
const sqs = requireSqs({ prefix: "sqs-test" });
const text = (value: string) => new TextEncoder().encode(value);
const read = (delivery: Delivery | undefined) => delivery && new TextDecoder().decode(delivery.body);

const brokers: Broker[] = [];
const open = async (query = "") => {
  const broker = openSqsBroker(sqs.url(query)) as SqsBroker;
  brokers.push(broker);
  await broker.connect();
  return broker;
};

afterEach(async () => {
  await Promise.all(brokers.splice(0).map((broker) => broker.close()));
});

/** Receives until `count` deliveries arrived or the deadline passes. */
async function receiveN(consumer: Consumer, count: number, timeoutMs = 10_000, max = count): Promise<Delivery[]> {
  const signal = AbortSignal.timeout(timeoutMs);
  const got: Delivery[] = [];
  while (got.length < count && !signal.aborted) got.push(...(await consumer.receive(Math.min(max, count - got.length), signal)));
  return got;
}

/** The queue's URL as an outside client finds it. */
async function queueUrl(queue: string): Promise<string> {
  const answer = await sqs.raw.send(new GetQueueUrlCommand({ QueueName: sqsQueueName(queue).name }));
  return answer.QueueUrl as string;
}

describe("sqs broker (ElasticMQ)", () => {
  it("receives a message a plain SDK client sent: attempt 1, attributes as headers", async () => {
    const queue = sqs.queueName();
    const broker = await open();
    const consumer = broker.consumer(queue);
    const receiving = receiveN(consumer, 1); // creates the queue
    const url = await waitForQueue(queue);
    await sqs.raw.send(
      new SendMessageCommand({
        QueueUrl: url,
        MessageBody: '{"n":5}',
        MessageAttributes: { "x-trace": { DataType: "String", StringValue: "abc" }, size: { DataType: "Number", StringValue: "3" } },
      }),
    );
    const [delivery] = await receiving;
    expect(read(delivery)).toBe('{"n":5}');
    expect(delivery?.attempt).toBe(1);
    expect(delivery?.headers).toEqual({ "x-trace": "abc", size: "3" });
    expect(delivery?.key).toBeUndefined();
    await delivery?.ack();
    expect(await sqs.counts(sqsQueueName(queue).name)).toEqual([0, 0]);
  });

  it("keeps a message hidden while its handler runs past the visibility timeout (the dispatcher's lease keeper)", async () => {
    const queue = sqs.queueName();
    const holder = await open("&visibility=2");
    await holder.publish(queue, [{ body: text("slow") }]);
    const consumer = holder.consumer(queue);
    const [held] = await receiveN(consumer, 1);
    expect(read(held)).toBe("slow");
    expect(consumer.leaseMs).toBe(2000);
    // What a worker does while the handler runs: renew through Consumer.extend every leaseMs / 3.
    const keeper = new LeaseKeeper({ consumer, held: () => [held as Delivery], logger: memoryLogger().logger, queue });
    keeper.start();
    keeper.arm();
    // A second consumer polls for 2.5 visibility timeouts while the "handler" still runs.
    const rival = (await open("&visibility=2")).consumer(queue);
    const stolen = await receiveN(rival, 1, 5000);
    await keeper.stop();
    expect(stolen.map(read)).toEqual([]);
    await held?.ack();
    expect(await sqs.counts(sqsQueueName(queue).name)).toEqual([0, 0]);
  }, 20_000);

  it("deletes the acks of one turn with DeleteMessageBatch, 10 per call", async () => {
    const queue = sqs.queueName();
    const broker = await open();
    const calls: string[] = [];
    broker.client.middlewareStack.add(
      (next, context) => (args) => {
        calls.push(context.commandName ?? "?");
        return next(args);
      },
      { step: "initialize", name: "countCalls" },
    );
    await broker.publish(queue, Array.from({ length: 30 }, (_, i) => ({ body: text(`m${i}`) })));
    expect(calls.filter((name) => name === "SendMessageBatchCommand")).toHaveLength(3);
    const got = await receiveN(broker.consumer(queue), 30, 10_000, 100);
    expect(new Set(got.map(read)).size).toBe(30);
    await Promise.all(got.map((delivery) => delivery.ack()));
    expect(calls.filter((name) => name === "DeleteMessageBatchCommand")).toHaveLength(3);
    expect(calls).not.toContain("DeleteMessageCommand");
    expect(await sqs.counts(sqsQueueName(queue).name)).toEqual([0, 0]);
  });

  it("publishes and acks while more consumers long-poll than the control calls' socket pool holds (70 queues)", async () => {
    const broker = await open();
    const queues = Array.from({ length: 70 }, () => sqs.queueName());
    const [target, ...others] = queues as [string, ...string[]];
    const receives: string[] = [];
    broker.receiver.middlewareStack.add(
      (next, context) => (args) => {
        if (context.commandName === "ReceiveMessageCommand") receives.push(context.commandName);
        return next(args);
      },
      { step: "finalizeRequest", name: "countReceives" },
    );
    const idle = new AbortController();
    const polls = others.map((queue) => broker.consumer(queue).receive(1, idle.signal));
    try {
      await waitFor("69 long polls sent", () => receives.length >= others.length, 30_000);
      // Each long poll holds a socket for 20 s: had they shared the pool of publishes and acks,
      // both would wait past the connection timeout and fail (the ack: a redelivery).
      await broker.publish(target, [{ body: text("ack me") }]);
      const [delivery] = await receiveN(broker.consumer(target), 1, 30_000);
      expect(read(delivery)).toBe("ack me");
      await delivery?.ack();
      expect(await sqs.counts(sqsQueueName(target).name)).toEqual([0, 0]);
    } finally {
      idle.abort();
      await Promise.allSettled(polls);
    }
  });

  it("keeps order per message group on a FIFO queue, with the key as the group", async () => {
    const queue = sqs.queueName(".fifo");
    const broker = await open();
    const keys = ["a", "b", "c"];
    const sent = Array.from({ length: 45 }, (_, i) => ({ key: keys[i % 3] as string, body: `${keys[i % 3]}${Math.floor(i / 3)}` }));
    await broker.publish(queue, sent.map(({ key, body }) => ({ key, body: text(body) })));
    const consumer = broker.consumer(queue);
    const got: Delivery[] = [];
    const signal = AbortSignal.timeout(15_000);
    while (got.length < sent.length && !signal.aborted) {
      const batch = await consumer.receive(7, signal);
      got.push(...batch);
      await Promise.all(batch.map((delivery) => delivery.ack())); // a group's next messages come once these are gone
    }
    for (const key of keys) {
      const mine = got.filter((delivery) => delivery.key === key).map(read);
      expect(mine).toEqual(sent.filter((message) => message.key === key).map((message) => message.body));
    }
    expect(got).toHaveLength(45);
  }, 20_000);

  it("carries more than 10 headers, empty values and control characters in one wqueue-headers attribute", async () => {
    const queue = sqs.queueName();
    const broker = await open();
    const headers: Record<string, string> = { empty: "", ansi: "\u001b[31mred\u001b[0m", "x-colon:name": "v" };
    for (let i = 0; i < 10; i += 1) headers[`h${i}`] = `v${i}`;
    await broker.publish(queue, [{ body: text("many"), headers }]);
    const raw = await sqs.raw.send(new ReceiveMessageCommand({ QueueUrl: await queueUrl(queue), MessageAttributeNames: ["All"], WaitTimeSeconds: 5 }));
    expect(Object.keys(raw.Messages?.[0]?.MessageAttributes ?? {})).toEqual(["wqueue-headers"]);
    const ReceiptHandle = raw.Messages?.[0]?.ReceiptHandle;
    await sqs.raw.send(new ChangeMessageVisibilityCommand({ QueueUrl: await queueUrl(queue), ReceiptHandle, VisibilityTimeout: 0 }));
    const [delivery] = await receiveN(broker.consumer(queue), 1);
    expect(delivery?.headers).toEqual(headers);
    expect(delivery?.attempt).toBe(2); // the raw receive counted
    await delivery?.ack();
  });

  it("sends binary and empty bodies as base64, and a message published at attempt 3 arrives as attempt 3", async () => {
    const queue = sqs.queueName();
    const broker = await open();
    const binary = new Uint8Array([0xff, 0x00, 0xfe, 0x01]);
    await broker.publish(queue, [{ body: binary, key: "k" }, { body: new Uint8Array() }, { body: text("retry"), attempt: 3 }]);
    const got = await receiveN(broker.consumer(queue), 3);
    const byBody = new Map(got.map((delivery) => [Buffer.from(delivery.body).toString("hex"), delivery]));
    expect(byBody.get("ff00fe01")?.key).toBe("k");
    expect(byBody.get("")?.body).toHaveLength(0);
    expect(byBody.get(Buffer.from("retry").toString("hex"))?.attempt).toBe(3);
    await Promise.all(got.map((delivery) => delivery.ack()));
  });

  it("delays a published message by whole seconds and refuses what SQS cannot delay", async () => {
    const queue = sqs.queueName();
    const broker = await open();
    const sentAt = Date.now();
    await broker.publish(queue, [{ body: text("later"), delayMs: 1000 }]);
    const [delivery] = await receiveN(broker.consumer(queue), 1);
    expect(Date.now() - sentAt).toBeGreaterThanOrEqual(950);
    await delivery?.ack();
    await expect(broker.publish(queue, [{ body: text("x"), delayMs: 901_000 }])).rejects.toThrow(/at most 900 s/);
    await expect(broker.publish(sqs.queueName(".fifo"), [{ body: text("x"), delayMs: 1000 }])).rejects.toThrow(/FIFO/);
  });

  it("moves a message SQS received N times to <queue>.dead with ?redrive=N", async () => {
    const queue = sqs.queueName();
    const broker = await open("&redrive=2");
    await broker.publish(queue, [{ body: text("crashes the worker") }]);
    const { Attributes } = await sqs.raw.send(new GetQueueAttributesCommand({ QueueUrl: await queueUrl(queue), AttributeNames: ["RedrivePolicy"] }));
    expect(JSON.parse(Attributes?.RedrivePolicy ?? "{}")).toMatchObject({ maxReceiveCount: 2 });
    const consumer = broker.consumer(queue);
    for (const attempt of [1, 2]) {
      const [delivery] = await receiveN(consumer, 1);
      expect(delivery?.attempt).toBe(attempt);
      await delivery?.nack(); // as a worker that dies would, minus the wait
    }
    // SQS moves the message when a receive finds it past maxReceiveCount: keep one polling.
    const polling = new AbortController();
    const third = consumer.receive(1, polling.signal);
    // ElasticMQ does not wake a long poll already waiting on the dead-letter queue for a moved
    // message: look there once the message has left the queue.
    await waitFor("the message to leave the queue", async () => (await sqs.counts(sqsQueueName(queue).name)).join() === "0,0");
    const [dead] = await receiveN(broker.consumer(`${queue}.dead`), 1);
    expect(read(dead)).toBe("crashes the worker");
    polling.abort();
    expect(await third).toEqual([]);
    await dead?.ack();
    expect(await sqs.counts(sqsQueueName(queue).name)).toEqual([0, 0]);
  });

  it("creates a queue again when it was deleted behind the broker's back", async () => {
    const queue = sqs.queueName();
    const broker = await open();
    await broker.publish(queue, [{ body: text("first") }]);
    await sqs.raw.send(new DeleteQueueCommand({ QueueUrl: await queueUrl(queue) }));
    await broker.publish(queue, [{ body: text("second") }]);
    const [delivery] = await receiveN(broker.consumer(queue), 1);
    expect(read(delivery)).toBe("second");
    expect(await broker.backlog?.(queue)).toBe(0);
    await delivery?.ack();
  });

  it("fails connect() within seconds on a closed port, with the secret redacted", async () => {
    const port = await freePort();
    const broker = openSqsBroker(`sqs://AKIDEXAMPLE:topsecret@127.0.0.1:${port}?region=eu-west-1`);
    brokers.push(broker);
    const error = await broker.connect().then(
      () => undefined,
      (failure: unknown) => failure,
    );
    expect(error).toBeInstanceOf(BrokerUnreachableError);
    expect((error as Error).message).toContain(`sqs://AKIDEXAMPLE:***@127.0.0.1:${port}`);
    expect((error as Error).message).not.toContain("topsecret");
  });

  it("reports its backlog (visible messages) and refuses queue names SQS cannot have", async () => {
    const queue = sqs.queueName();
    const broker = await open();
    await broker.publish(queue, Array.from({ length: 4 }, (_, i) => ({ body: text(String(i)) })));
    expect(await broker.backlog?.(queue)).toBe(4);
    expect(() => broker.consumer("bad/name")).toThrow(ConfigError);
    await expect(broker.publish("bad name", [{ body: text("x") }])).rejects.toThrow(/cannot be an SQS queue/);
  });
});

describe("sqs URL and queue names", () => {
  it("reads a local endpoint with defaults, and AWS from the SDK's defaults", () => {
    expect(parseSqsUrl("sqs://127.0.0.1:9324")).toEqual({
      url: "sqs://127.0.0.1:9324",
      endpoint: "http://127.0.0.1:9324",
      region: "us-east-1",
      credentials: { accessKeyId: "x", secretAccessKey: "x" },
      visibilitySeconds: 30,
      waitSeconds: 20,
      redrive: undefined,
      fifo: false,
    });
    expect(parseSqsUrl("sqs://")).toMatchObject({ endpoint: undefined, region: undefined, credentials: undefined });
    expect(parseSqsUrl("sqs://?region=eu-west-1&visibility=120&redrive=5&fifo=true")).toMatchObject({
      region: "eu-west-1",
      visibilitySeconds: 120,
      redrive: 5,
      fifo: true,
    });
    const withKeys = parseSqsUrl("sqs://AKID:s%2Fecret@localhost:4566?tls=true");
    expect(withKeys).toMatchObject({ endpoint: "https://localhost:4566", credentials: { accessKeyId: "AKID", secretAccessKey: "s/ecret" } });
    expect(withKeys.url).toBe("sqs://AKID:***@localhost:4566?tls=true");
  });

  it("rejects bad parameters with a ConfigError", () => {
    expect(() => parseSqsUrl("sqs://h:1?visibility=0")).toThrow(ConfigError);
    expect(() => parseSqsUrl("sqs://h:1?wait=21")).toThrow(/wait=21/);
    expect(() => parseSqsUrl("sqs://h:1?redrive=x")).toThrow(/redrive=x/);
    expect(() => parseSqsUrl("sqs://h:1?colour=red")).toThrow(/unknown parameter colour/);
    expect(() => parseSqsUrl("sqs://h:1/some-queue")).toThrow(/no path/);
    expect(() => parseSqsUrl("sqs://onlyuser@h:1")).toThrow(/both/);
  });

  it("maps wqueue names to SQS names: dots to dashes, FIFO suffixes kept", () => {
    expect(sqsQueueName("orders")).toEqual({ name: "orders", fifo: false });
    expect(sqsQueueName("orders.dead")).toEqual({ name: "orders-dead", fifo: false });
    expect(sqsQueueName("orders.fifo")).toEqual({ name: "orders.fifo", fifo: true });
    expect(sqsQueueName("orders.fifo.dead")).toEqual({ name: "orders-dead.fifo", fifo: true });
    expect(sqsQueueName("orders", true)).toEqual({ name: "orders.fifo", fifo: true });
    expect(sqsQueueName("orders.dead", true)).toEqual({ name: "orders-dead.fifo", fifo: true });
    expect(() => sqsQueueName("a/b")).toThrow(ConfigError);
    expect(() => sqsQueueName("x".repeat(81))).toThrow(/longer than 80/);
  });
});

/** The queue's URL once the adapter created it (a consumer creates it with its first poll). */
async function waitForQueue(queue: string, timeoutMs = 5000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await queueUrl(queue);
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}
