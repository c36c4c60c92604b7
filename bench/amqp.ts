/**
 * Throughput of the RabbitMQ adapter against a raw amqplib consumer on the same RabbitMQ, same run:
 *   (a) raw amqplib: basic.consume with manual ack, prefetch P, a no-op handler then channel.ack()
 *       for each message, right in the delivery callback;
 *   (b) the adapter, driven as the worker drives it: consumer(queue, { maxInFlight: P }), a loop of
 *       receive(100), then for each delivery a no-op async handler and ack(), awaited in turn;
 * plus, for reference, (a+): (a) sending the acks of each event-loop turn as one multiple ack, as
 * the adapter does, so (b)/(a+) is the adapter's own cost.
 * Each case consumes a freshly preloaded durable queue of persistent messages (preloading is not
 * timed), after an unmeasured warm-up pass; rounds are interleaved and the median is reported.
 * The clock starts when the case starts consuming (connection already open) and stops at the
 * last ack; the queue is then checked empty and deleted. Besides msgs/s, which on a loaded or
 * small machine is mostly RabbitMQ's own speed, the client's CPU time per message is shown.
 * The adapter coalesces the acks of one event-loop turn (src/brokers/amqp/AckCoalescer.ts), which
 * is most of why it can outrun the raw loop: RabbitMQ handles one ack frame per batch.
 *
 *   npm run bench:rabbitmq                   # 100,000 messages, prefetch 100, 3 rounds
 *   BENCH_MESSAGES=20000 BENCH_ROUNDS=5 BENCH_PREFETCH=50 BENCH_AMQP_URL=amqp://127.0.0.1 npm run bench:rabbitmq
 */
import { randomUUID } from "node:crypto";
import { cpus } from "node:os";
import amqp from "amqplib";
import type { Delivery } from "../src/brokers/contract.js";
import { openAmqpBroker } from "../src/brokers/amqp/open-amqp-broker.js";
import { interleavedRounds, machineLoad, ratioAtLeast, type Sample, summarize, timed } from "./harness.js";

const N = Number(process.env.BENCH_MESSAGES ?? 100_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const PREFETCH = Number(process.env.BENCH_PREFETCH ?? 100);
const URL = process.env.BENCH_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";
const WARMUP = Math.min(20_000, Math.ceil(N / 5));
const TARGET = 1.0;
/** A small JSON event, as any AMQP producer would send it. */
const body = (i: number) => Buffer.from(`{"event":"signup","n":${i}}`);

let admin: amqp.ChannelModel;
let adminChannel: amqp.ConfirmChannel;

async function preload(count: number): Promise<string> {
  const queue = `bench.amqp.${randomUUID().slice(0, 8)}`;
  await adminChannel.assertQueue(queue, { durable: true });
  for (let i = 0; i < count; i += 1) {
    if (!adminChannel.sendToQueue(queue, body(i), { persistent: true })) {
      await new Promise((resolve) => adminChannel.once("drain", resolve));
    }
  }
  await adminChannel.waitForConfirms();
  return queue;
}

/** `start` connects (untimed); `consume` is timed until `count` messages were acked; `stop` is untimed. */
interface Case {
  name: string;
  start(queue: string, count: number): Promise<{ consume(): Promise<void>; stop(): Promise<void> }>;
}

const noopHandler = async (_message: Delivery | amqp.ConsumeMessage): Promise<void> => {};

const raw: Case = {
  name: `(a) raw amqplib: consume, prefetch ${PREFETCH}, no-op handler + ack per message`,
  async start(queue, count) {
    const connection = await amqp.connect(URL);
    const channel = await connection.createChannel();
    await channel.prefetch(PREFETCH);
    const consume = () =>
      new Promise<void>((resolve, reject) => {
        let acked = 0;
        channel
          .consume(queue, (message) => {
            if (message === null) return reject(new Error("consumer cancelled"));
            void noopHandler(message).then(() => {
              channel.ack(message);
              acked += 1;
              if (acked === count) resolve();
            });
          })
          .catch(reject);
      });
    // Channel first: amqplib multiplexes channels, so a connection.close could overtake the last acks.
    const stop = async () => {
      await channel.close();
      await connection.close();
    };
    return { consume, stop };
  },
};

/** Reference: the raw loop with the adapter's ack batching, which is safe here (acks come in order). */
const rawBatched: Case = {
  name: `(a+) raw amqplib as (a), acks of each event-loop turn as one \`multiple\` ack`,
  async start(queue, count) {
    const connection = await amqp.connect(URL);
    const channel = await connection.createChannel();
    await channel.prefetch(PREFETCH);
    const consume = () =>
      new Promise<void>((resolve, reject) => {
        let acked = 0;
        let latest: amqp.ConsumeMessage | undefined;
        const flush = () => {
          if (latest !== undefined) channel.ack(latest, true);
          latest = undefined;
          if (acked === count) resolve();
        };
        channel
          .consume(queue, (message) => {
            if (message === null) return reject(new Error("consumer cancelled"));
            void noopHandler(message).then(() => {
              if (latest === undefined) setImmediate(flush);
              latest = message;
              acked += 1;
            });
          })
          .catch(reject);
      });
    const stop = async () => {
      await channel.close();
      await connection.close();
    };
    return { consume, stop };
  },
};

const adapter: Case = {
  name: `(b) adapter: maxInFlight ${PREFETCH}, \`receive(100)\` + no-op handler + \`ack()\` per message`,
  async start(queue, count) {
    const broker = openAmqpBroker(URL);
    await broker.connect();
    const consume = async () => {
      const consumer = broker.consumer(queue, { maxInFlight: PREFETCH });
      const signal = AbortSignal.timeout(600_000);
      for (let got = 0; got < count; ) {
        const deliveries = await consumer.receive(100, signal);
        if (deliveries.length === 0) throw new Error("receive timed out");
        for (const delivery of deliveries) {
          await noopHandler(delivery);
          await delivery.ack();
        }
        got += deliveries.length;
      }
    };
    return { consume, stop: () => broker.close() };
  },
};

async function measure(test: Case, count: number): Promise<Sample> {
  const queue = await preload(count);
  const run = await test.start(queue, count);
  const sample = await timed(count, () => run.consume());
  await run.stop();
  const { messageCount } = await adminChannel.checkQueue(queue);
  await adminChannel.deleteQueue(queue);
  if (messageCount !== 0) throw new Error(`${messageCount} messages left in ${queue}`);
  return sample;
}

async function main(): Promise<void> {
  try {
    admin = await amqp.connect(URL, { timeout: 3000 });
  } catch (error) {
    throw new Error(`RabbitMQ is not reachable (${(error as Error).message}); start it with:
  rabbitmq-server -detached`);
  }
  adminChannel = await admin.createConfirmChannel();
  const cases = [raw, rawBatched, adapter];
  const samples = await interleavedRounds(cases, ROUNDS, (test) => measure(test, WARMUP), (test) => measure(test, N));
  const { medians, rows } = summarize(cases, samples);
  const [a, aPlus, b] = medians as [number, number, number];
  const version = String(admin.connection.serverProperties.version ?? "?");
  console.log(`### RabbitMQ adapter throughput

${N.toLocaleString("en-US")} persistent messages of about ${body(N).length} bytes in a durable classic queue, one consumer,
prefetch ${PREFETCH}. Each case on a freshly preloaded queue, after a ${WARMUP.toLocaleString("en-US")}-message warm-up;
median of ${ROUNDS} interleaved rounds. RabbitMQ ${version} on loopback, Node ${process.version},
${cpus()[0]?.model.trim() ?? "unknown CPU"} (${cpus().length} cores, shared with RabbitMQ).

| Consumer | msgs/s (median) | range | client CPU µs/msg (median) |
| --- | ---: | ---: | ---: |
${rows.join("\n")}

- (b)/(a): ${ratioAtLeast("RabbitMQ adapter / raw amqplib consumer", b / a, TARGET)}
- (b)/(a+): ${(b / aPlus).toFixed(2)}x, the adapter against a raw loop that batches its acks the same way
`);
}

main()
  .then(() => console.log(machineLoad()))
  .catch((error: Error) => {
    console.error(error.message);
    process.exitCode = 1;
  })
  .finally(() => admin?.close().catch(() => {}));
