/**
 * Throughput of the SQS adapter against a raw AWS SDK consumer on the same SQS server (ElasticMQ on
 * 127.0.0.1:9324 unless BENCH_SQS_URL says otherwise), same run:
 *   (a) raw SDK loop: ReceiveMessage(MaxNumberOfMessages 10), a no-op handler per message, then one
 *       DeleteMessageBatch for the batch; one request in flight at a time;
 *   (b) the adapter, driven as the worker drives it: a loop of receive(100), then every delivery's
 *       no-op handler and ack() started together (the worker runs a batch concurrently, up to its
 *       credit), awaited before the next receive. The adapter fills a credit of 100 with one long
 *       poll and parallel short polls, and sends the acks of one turn as DeleteMessageBatch calls.
 * Each case consumes a freshly preloaded standard queue (preloading is not timed), after an
 * unmeasured warm-up pass; rounds are interleaved and the median is reported. The clock starts when
 * the case starts consuming (client created) and stops at the last delete; the queue is then checked
 * empty and deleted. Besides msgs/s, which on a loaded or small machine is mostly the server's own
 * speed, this process's CPU time per message is shown.
 *
 *   npm run bench:sqs                        # 20,000 messages, 3 rounds
 *   BENCH_MESSAGES=5000 BENCH_ROUNDS=1 BENCH_SQS_URL=sqs://127.0.0.1:9324 npm run bench:sqs
 */
import { randomUUID } from "node:crypto";
import { cpus } from "node:os";
import {
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  DeleteQueueCommand,
  GetQueueAttributesCommand,
  type Message,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SQSClient,
} from "@aws-sdk/client-sqs";
import type { Delivery } from "../src/brokers/contract.js";
import { openSqsBroker } from "../src/brokers/sqs/open-sqs-broker.js";
import { parseSqsUrl } from "../src/brokers/sqs/sqs-url.js";
import { interleavedRounds, machineLoad, ratioAtLeast, type Sample, summarize, timed } from "./harness.js";

const N = Number(process.env.BENCH_MESSAGES ?? 20_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const URL = process.env.BENCH_SQS_URL ?? "sqs://127.0.0.1:9324?region=us-east-1";
const WARMUP = Math.min(2000, Math.ceil(N / 5));
const TARGET = 1.0;
const PRELOAD_PARALLEL = 8;
/** A small JSON event, as any SQS producer would send it. */
const body = (i: number) => `{"event":"signup","n":${i}}`;

const config = parseSqsUrl(URL);
const rawClient = () =>
  new SQSClient({
    ...(config.endpoint === undefined ? {} : { endpoint: config.endpoint }),
    ...(config.region === undefined ? {} : { region: config.region }),
    ...(config.credentials === undefined ? {} : { credentials: config.credentials }),
  });
const admin = rawClient();

async function preload(count: number): Promise<{ name: string; url: string }> {
  const name = `bench-sqs-${randomUUID().slice(0, 8)}`;
  const { QueueUrl } = await admin.send(new CreateQueueCommand({ QueueName: name }));
  const url = QueueUrl as string;
  let next = 0;
  const sender = async () => {
    for (let start = next; start < count; start = next) {
      next = Math.min(count, start + 10);
      const Entries = Array.from({ length: next - start }, (_, i) => ({ Id: String(i), MessageBody: body(start + i) }));
      const answer = await admin.send(new SendMessageBatchCommand({ QueueUrl: url, Entries }));
      if ((answer.Failed ?? []).length > 0) throw new Error(`preload failed: ${answer.Failed?.[0]?.Message}`);
    }
  };
  await Promise.all(Array.from({ length: PRELOAD_PARALLEL }, sender));
  return { name, url };
}

/** `consume` is timed until `count` messages were deleted; `stop` is untimed. */
interface Case {
  name: string;
  start(queue: { name: string; url: string }, count: number): { consume(): Promise<void>; stop(): Promise<void> };
}

const noopHandler = async (_message: Delivery | Message): Promise<void> => {};

const raw: Case = {
  name: "(a) raw SDK: ReceiveMessage(10), no-op handler per message, DeleteMessageBatch",
  start(queue, count) {
    const client = rawClient();
    const consume = async () => {
      for (let deleted = 0; deleted < count; ) {
        const { Messages = [] } = await client.send(
          new ReceiveMessageCommand({ QueueUrl: queue.url, MaxNumberOfMessages: 10, WaitTimeSeconds: 20, VisibilityTimeout: 30 }),
        );
        for (const message of Messages) await noopHandler(message);
        if (Messages.length === 0) continue;
        const Entries = Messages.map((message, i) => ({ Id: String(i), ReceiptHandle: message.ReceiptHandle }));
        const answer = await client.send(new DeleteMessageBatchCommand({ QueueUrl: queue.url, Entries }));
        if ((answer.Failed ?? []).length > 0) throw new Error(`delete failed: ${answer.Failed?.[0]?.Message}`);
        deleted += Messages.length;
      }
    };
    return { consume, stop: async () => client.destroy() };
  },
};

const adapter: Case = {
  name: "(b) adapter: `receive(100)`, no-op handler + `ack()` per delivery, the batch run together",
  start(queue, count) {
    const broker = openSqsBroker(URL);
    const consume = async () => {
      const consumer = broker.consumer(queue.name, { maxInFlight: 100 });
      const signal = AbortSignal.timeout(600_000);
      for (let got = 0; got < count; ) {
        const deliveries = await consumer.receive(100, signal);
        if (deliveries.length === 0) throw new Error("receive timed out");
        await Promise.all(
          deliveries.map(async (delivery) => {
            await noopHandler(delivery);
            await delivery.ack();
          }),
        );
        got += deliveries.length;
      }
    };
    return { consume, stop: () => broker.close() };
  },
};

async function measure(test: Case, count: number): Promise<Sample> {
  const queue = await preload(count);
  const run = test.start(queue, count);
  const sample = await timed(count, () => run.consume());
  await run.stop();
  const names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"] as const;
  const { Attributes = {} } = await admin.send(new GetQueueAttributesCommand({ QueueUrl: queue.url, AttributeNames: [...names] }));
  await admin.send(new DeleteQueueCommand({ QueueUrl: queue.url }));
  const left = Number(Attributes.ApproximateNumberOfMessages) + Number(Attributes.ApproximateNumberOfMessagesNotVisible);
  if (left !== 0) throw new Error(`${left} messages left in ${queue.name}`);
  return sample;
}

async function main(): Promise<void> {
  const probe = openSqsBroker(URL);
  try {
    await probe.connect();
  } catch (error) {
    throw new Error(`${(error as Error).message}\nStart the local SQS server with: bash scripts/elasticmq.sh`);
  } finally {
    await probe.close();
  }
  const cases = [raw, adapter];
  const samples = await interleavedRounds(cases, ROUNDS, (test) => measure(test, WARMUP), (test) => measure(test, N));
  const { medians, rows } = summarize(cases, samples);
  const [a, b] = medians as [number, number];
  console.log(`### SQS adapter throughput

${N.toLocaleString("en-US")} messages of about ${body(N).length} bytes in a standard queue, one consumer.
Each case on a freshly preloaded queue, after a ${WARMUP.toLocaleString("en-US")}-message warm-up; median of ${ROUNDS}
interleaved rounds. ${config.url} (ElasticMQ unless told otherwise) on loopback, Node ${process.version},
${cpus()[0]?.model.trim() ?? "unknown CPU"} (${cpus().length} cores, shared with the server).

| Consumer | msgs/s (median) | range | client CPU µs/msg (median) |
| --- | ---: | ---: | ---: |
${rows.join("\n")}

- (b)/(a): ${ratioAtLeast("SQS adapter / raw SDK receive + delete-batch loop", b / a, TARGET)}
`);
}

main()
  .then(() => console.log(machineLoad()))
  .catch((error: Error) => {
    console.error(error.message);
    process.exitCode = 1;
  })
  .finally(() => admin.destroy());
