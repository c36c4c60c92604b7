/**
 * Throughput of the Kafka adapter against kafkajs's own consumer loop on the same topic, same run:
 *   (a) raw kafkajs: consumer.run({ eachBatch }) with manual commits, a no-op async handler
 *       awaited per message, the offsets committed every 200 ms (the adapter's commit interval);
 *   (b) the adapter, driven as the worker drives it: receive(100), then for each delivery a no-op
 *       async handler and ack(), awaited one after the other (maxInFlight 100, as a subscription
 *       with concurrency 100 passes).
 * Both read the same preloaded topic, each round in a fresh consumer group (so from offset 0);
 * the clock runs from the consumer's first fetch request (kafkajs's FETCH_START: joining the group
 * is not throughput, decoding the first fetch is) to the last message, and the process's CPU time
 * over the same span is reported per message (steadier than msg/s when other work shares the
 * machine). One unmeasured warm-up round first; then rounds alternate the
 * two cases and the medians are reported, with the median of each round's own ratio, and the
 * best round of each (other load on the machine only ever slows a round down).
 *
 *   npm run bench:kafka                        # 100,000 messages, 3 rounds, on 127.0.0.1:9092
 *   BENCH_MESSAGES=50000 BENCH_ROUNDS=5 BENCH_PARTITIONS=4 BENCH_KAFKA=127.0.0.1:9092 npm run bench:kafka
 */
import { randomUUID } from "node:crypto";
import { cpus } from "node:os";
import { Kafka, logLevel } from "kafkajs";
import type { Delivery } from "../src/brokers/contract.js";
import type { KafkaBroker } from "../src/brokers/kafka/KafkaBroker.js";
import { openKafkaBroker } from "../src/brokers/kafka/open-kafka-broker.js";
import { headline, machineLoad } from "./harness.js";

const N = Number(process.env.BENCH_MESSAGES ?? 100_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const PARTITIONS = Number(process.env.BENCH_PARTITIONS ?? 1);
const HOST = process.env.BENCH_KAFKA ?? "127.0.0.1:9092";
const COMMIT_EVERY_MS = 200;
const run = randomUUID().slice(0, 8);
const topic = `bench.kafka.${run}`;
const urlFor = (group: string) => `kafka://${HOST}?group=${group}&partitions=${PARTITIONS}`;
/** A small JSON event, as a service's producer would send. */
const body = (i: number) => new TextEncoder().encode(`{"event":"signup","n":${i}}`);
const noopHandler = async (_message: unknown): Promise<void> => {};

async function preload(): Promise<void> {
  const broker = openKafkaBroker(urlFor(`bench-load-${run}`));
  await broker.connect();
  for (let start = 0; start < N; start += 5000) {
    const count = Math.min(5000, N - start);
    await broker.publish(topic, Array.from({ length: count }, (_, i) => ({ body: body(start + i), key: `user-${(start + i) % 1000}` })));
  }
  await broker.close();
}

/** Seconds and this process's CPU microseconds from the first message to the N-th. */
interface Span {
  seconds: number;
  cpuMicros: number;
}
type Case = (group: string) => Promise<Span>;

/** Clocks that start at the first start() (the first fetch request). */
function stopwatch() {
  let wall = 0;
  let cpu = process.cpuUsage();
  return {
    start() {
      if (wall !== 0) return;
      wall = performance.now();
      cpu = process.cpuUsage();
    },
    stop(): Span {
      const used = process.cpuUsage(cpu);
      return { seconds: (performance.now() - wall) / 1000, cpuMicros: used.user + used.system };
    },
  };
}

const rawKafkajs: Case = async (group) => {
  const kafka = new Kafka({ clientId: "bench-raw", brokers: [HOST], logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId: group, maxWaitTimeInMs: 500 });
  const clock = stopwatch();
  consumer.on(consumer.events.FETCH_START, () => clock.start());
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  let got = 0;
  const pending = new Map<number, string>();
  const commit = () => {
    const offsets = [...pending].map(([partition, offset]) => ({ topic, partition, offset }));
    pending.clear();
    if (offsets.length > 0) void consumer.commitOffsets(offsets).catch(() => {});
  };
  const timer = setInterval(commit, COMMIT_EVERY_MS);
  const span = await new Promise<Span>((resolve) => {
    void consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        for (const message of batch.messages) {
          await noopHandler(message);
          got += 1;
        }
        pending.set(batch.partition, String(Number(batch.lastOffset()) + 1));
        if (got >= N) resolve(clock.stop());
      },
    });
  });
  clearInterval(timer);
  commit();
  await consumer.disconnect();
  return span;
};

const adapter: Case = async (group) => {
  const broker = openKafkaBroker(urlFor(group)) as KafkaBroker;
  await broker.connect();
  // The same clock start as (a): the adapter's kafkajs consumer's first fetch request.
  const clock = stopwatch();
  const createConsumer = broker.client.consumer.bind(broker.client);
  broker.client.consumer = (config) => {
    const created = createConsumer(config);
    created.on(created.events.FETCH_START, () => clock.start());
    return created;
  };
  const consumer = broker.consumer(topic, { maxInFlight: 100 });
  const signal = new AbortController().signal;
  let got = 0;
  while (got < N) {
    const deliveries: Delivery[] = await consumer.receive(100, signal);
    for (const delivery of deliveries) {
      await noopHandler(delivery);
      await delivery.ack();
    }
    got += deliveries.length;
  }
  const span = clock.stop();
  await broker.close();
  return span;
};

const cases: [string, Case][] = [
  ["(a) raw kafkajs eachBatch, manual commit", rawKafkajs],
  ["(b) adapter: receive(100) + no-op + ack", adapter],
];

const median = (values: number[]) => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)] as number;
const fmt = (value: number) => Math.round(value).toLocaleString("en").padStart(9);

console.log(`Kafka ${HOST}, ${N.toLocaleString("en")} messages, ${PARTITIONS} partition(s), ${ROUNDS} rounds, ${cpus().length} cores, Node ${process.version}`);
await preload();
for (const [, measure] of cases) await measure(`bench-${run}-warmup-${Math.random()}`);
const spans = new Map<string, Span[]>(cases.map(([name]) => [name, []]));
const ratios: number[] = [];
for (let round = 1; round <= ROUNDS; round += 1) {
  const rates: number[] = [];
  for (const [name, measure] of cases) {
    const span = await measure(`bench-${run}-${round}-${Math.random()}`);
    spans.get(name)?.push(span);
    rates.push(N / span.seconds);
    console.log(`  round ${round}  ${name.padEnd(42)} ${fmt(N / span.seconds)} msg/s  ${(span.cpuMicros / N).toFixed(2)} us CPU/msg`);
  }
  ratios.push((rates[1] as number) / (rates[0] as number));
}
const [raw, ours] = cases.map(([name]) => spans.get(name) ?? []) as [Span[], Span[]];
const rate = (list: Span[]) => median(list.map((span) => N / span.seconds));
const cpu = (list: Span[]) => median(list.map((span) => span.cpuMicros / N));
const bestRate = (list: Span[]) => Math.max(...list.map((span) => N / span.seconds));
const bestCpu = (list: Span[]) => Math.min(...list.map((span) => span.cpuMicros / N));
console.log("\n                                               median msg/s    best msg/s  median / best us CPU/msg");
for (const [name] of cases) {
  const list = spans.get(name) ?? [];
  console.log(`  ${name.padEnd(42)} ${fmt(rate(list))}     ${fmt(bestRate(list))}     ${cpu(list).toFixed(2)} / ${bestCpu(list).toFixed(2)}`);
}
console.log(
  `  adapter / raw (target >= 1.0x): ${(rate(ours) / rate(raw)).toFixed(2)}x by median msg/s, ` +
    `${median(ratios).toFixed(2)}x median of per-round ratios, ${(bestRate(ours) / bestRate(raw)).toFixed(2)}x best vs best, ` +
    `${(cpu(raw) / cpu(ours)).toFixed(2)}x / ${(bestCpu(raw) / bestCpu(ours)).toFixed(2)}x by CPU per message (median / best)`,
);
headline({ what: "Kafka adapter / raw kafkajs consumer", value: median(ratios), unit: "x", target: ">= 1x", met: median(ratios) >= 1 });
console.log(machineLoad());
const admin = new Kafka({ clientId: "bench-admin", brokers: [HOST], logLevel: logLevel.NOTHING }).admin();
await admin.connect();
await admin.deleteTopics({ topics: [topic] }).catch(() => {});
await admin.disconnect();
