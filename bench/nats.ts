/**
 * Throughput of the NATS JetStream adapter against a raw @nats-io/jetstream consumer on the same
 * server, same run:
 *   (a) raw client: the durable pull consumer's consume({ max_messages: B }) loop (the client's
 *       own refilling pulls), for each message a no-op async handler, then msg.ack();
 *   (b) the adapter, driven as the worker drives it: consumer(queue, { maxInFlight: B }), a loop
 *       of receive(B), then for each delivery a no-op async handler and ack(), awaited in turn.
 * B is the same batch for both (BENCH_BATCH, default 100). Note that (a) bounds only what it
 * pulls, not what is unacked, while (b) never has more than B unacked (its credit).
 * Each case consumes a freshly preloaded work-queue stream (one queue, file storage, preloading
 * not timed), after an unmeasured warm-up pass; rounds are interleaved and the median is reported.
 * The clock starts when the case starts consuming (connection already open) and stops at the
 * last ack; the stream is then checked empty (once the server processed the acks) and deleted.
 * Besides msgs/s, which on a loaded or small machine is mostly nats-server's own speed, the
 * client's CPU time per message is shown.
 *
 *   npm run bench:nats                        # 100,000 messages, batch 100, 3 rounds
 *   BENCH_MESSAGES=20000 BENCH_ROUNDS=5 BENCH_BATCH=50 BENCH_NATS_URL=nats://127.0.0.1:4222 npm run bench:nats
 */
import { randomUUID } from "node:crypto";
import { cpus } from "node:os";
import { AckPolicy, type JetStreamManager, jetstreamManager, RetentionPolicy, StorageType } from "@nats-io/jetstream";
import { connect, type NatsConnection, nanos } from "@nats-io/transport-node";
import type { Delivery } from "../src/brokers/contract.js";
import { openNatsBroker } from "../src/brokers/nats/open-nats-broker.js";
import { streamNameFor } from "../src/brokers/nats/subjects.js";
import { interleavedRounds, machineLoad, ratioAtLeast, type Sample, summarize, timed } from "./harness.js";

const N = Number(process.env.BENCH_MESSAGES ?? 100_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const BATCH = Number(process.env.BENCH_BATCH ?? 100);
const URL = process.env.BENCH_NATS_URL ?? "nats://127.0.0.1:4222";
const WARMUP = Math.min(20_000, Math.ceil(N / 5));
const TARGET = 1.0;
/** A small JSON event, as any NATS producer would send it. */
const body = (i: number) => new TextEncoder().encode(`{"event":"signup","n":${i}}`);
const server = () => new globalThis.URL(URL).host;

let admin: NatsConnection;
let jsm: JetStreamManager;

/** A stream and durable consumer as the adapter makes them, filled with `count` messages. */
async function preload(count: number): Promise<{ queue: string; stream: string }> {
  const queue = `bench.nats.${randomUUID().slice(0, 8)}`;
  const stream = streamNameFor(queue);
  await jsm.streams.add({ name: stream, subjects: [queue], retention: RetentionPolicy.Workqueue, storage: StorageType.File });
  await jsm.consumers.add(stream, {
    durable_name: "wqueue",
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(30_000),
    max_deliver: -1,
    max_ack_pending: -1,
    filter_subject: queue,
  });
  const js = jsm.jetstream();
  for (let start = 0; start < count; start += 1000) {
    const window = Array.from({ length: Math.min(1000, count - start) }, (_, i) => js.publish(queue, body(start + i)));
    await Promise.all(window);
  }
  return { queue, stream };
}

/** `start` connects (untimed); `consume` is timed until `count` messages were acked; `stop` is untimed. */
interface Case {
  name: string;
  start(queue: string, stream: string, count: number): Promise<{ consume(): Promise<void>; stop(): Promise<void> }>;
}

const noopHandler = async (_message: unknown): Promise<void> => {};

const raw: Case = {
  name: `(a) raw @nats-io/jetstream: consume({ max_messages: ${BATCH} }), no-op handler + ack per message`,
  async start(_queue, stream, count) {
    const nc = await connect({ servers: server() });
    const js = (await jetstreamManager(nc)).jetstream();
    const consumer = await js.consumers.get(stream, "wqueue");
    const consume = async () => {
      const messages = await consumer.consume({ max_messages: BATCH });
      let acked = 0;
      for await (const message of messages) {
        await noopHandler(message);
        message.ack();
        acked += 1;
        if (acked === count) break;
      }
    };
    return { consume, stop: () => nc.close() };
  },
};

const adapter: Case = {
  name: `(b) adapter: maxInFlight ${BATCH}, \`receive(${BATCH})\` + no-op handler + \`ack()\` per message`,
  async start(queue, _stream, count) {
    const broker = openNatsBroker(URL);
    await broker.connect();
    const consume = async () => {
      const consumer = broker.consumer(queue, { maxInFlight: BATCH });
      const signal = AbortSignal.timeout(600_000);
      for (let got = 0; got < count; ) {
        const deliveries: Delivery[] = await consumer.receive(BATCH, signal);
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
  const { queue, stream } = await preload(count);
  try {
    const run = await test.start(queue, stream, count);
    const sample = await timed(count, () => run.consume());
    await run.stop();
    const deadline = Date.now() + 10_000;
    let left = (await jsm.streams.info(stream)).state.messages;
    while (left > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      left = (await jsm.streams.info(stream)).state.messages;
    }
    if (left !== 0) throw new Error(`${left} messages left in ${stream}`);
    return sample;
  } finally {
    await jsm.streams.delete(stream).catch(() => {});
  }
}

async function main(): Promise<void> {
  try {
    admin = await connect({ servers: server(), timeout: 3000 });
    jsm = await jetstreamManager(admin);
  } catch (error) {
    throw new Error(`NATS with JetStream is not reachable at ${server()} (${(error as Error).message}); start it with:
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log`);
  }
  const cases = [raw, adapter];
  const samples = await interleavedRounds(cases, ROUNDS, (test) => measure(test, WARMUP), (test) => measure(test, N));
  const { medians, rows } = summarize(cases, samples);
  const [a, b] = medians as [number, number];
  console.log(`### NATS JetStream adapter throughput

${N.toLocaleString("en-US")} messages of about ${body(N).length} bytes in a work-queue stream (file storage), one consumer,
batch ${BATCH}. Each case on a freshly preloaded stream, after a ${WARMUP.toLocaleString("en-US")}-message warm-up;
median of ${ROUNDS} interleaved rounds. nats-server ${admin.info?.version ?? "?"} on loopback, Node ${process.version},
${cpus()[0]?.model.trim() ?? "unknown CPU"} (${cpus().length} cores, shared with nats-server).

| Consumer | msgs/s (median) | range | client CPU µs/msg (median) |
| --- | ---: | ---: | ---: |
${rows.join("\n")}

- (b)/(a): ${ratioAtLeast("NATS JetStream adapter / raw consume() loop", b / a, TARGET)}
`);
}

main()
  .then(() => console.log(machineLoad()))
  .catch((error: Error) => {
    console.error(error.message);
    process.exitCode = 1;
  })
  .finally(() => admin?.close().catch(() => {}));
