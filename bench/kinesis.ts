/**
 * Throughput of the Kinesis adapter against a raw AWS SDK consumer on the same Kinesis server
 * (kinesis-local on 127.0.0.1:4568 unless BENCH_KINESIS_URL says otherwise), same run:
 *   (a) raw SDK loop, one per shard, all shards at once: GetRecords(Limit 10,000), a no-op handler
 *       per record, then the batch's last sequence number SET in Redis as the shard's checkpoint
 *       (the least a consumer that survives a restart must do);
 *   (b) the adapter, driven as the worker drives it: a loop of receive(100), then every delivery's
 *       no-op handler and ack() started together, awaited before the next receive. The adapter
 *       takes its shard leases, reads every shard, stores delivery counts before each hand-out and
 *       checkpoints in Redis every second;
 *   (c) the same with onePerPartition, as the worker asks under its default ordering on Kinesis
 *       (by shard): one record per shard at a time, so a checkpoint write per record.
 * Both read the same preloaded stream from its start (records stay in a stream after reading; the
 * adapter uses a new app name each time, so it has no checkpoint yet). Preloading is not timed:
 * PutRecords on kinesis-local is slow. After an unmeasured warm-up, rounds are interleaved and the
 * median is reported. The clock starts when the case starts consuming and stops at the last record;
 * this process's CPU time per record is shown beside msgs/s.
 *
 *   npm run bench:kinesis                    # 20,000 records on 4 shards, 3 rounds
 *   BENCH_MESSAGES=5000 BENCH_ROUNDS=1 BENCH_SHARDS=2 npm run bench:kinesis
 */
import { randomUUID } from "node:crypto";
import { cpus } from "node:os";
import {
  CreateStreamCommand,
  DeleteStreamCommand,
  DescribeStreamSummaryCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  KinesisClient,
  ListShardsCommand,
  PutRecordsCommand,
} from "@aws-sdk/client-kinesis";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { Redis } from "ioredis";
import type { Delivery } from "../src/brokers/contract.js";
import { openKinesisBroker } from "../src/brokers/kinesis/open-kinesis-broker.js";
import { parseKinesisUrl } from "../src/brokers/kinesis/kinesis-url.js";
import { interleavedRounds, machineLoad, ratioAtLeast, type Sample, summarize, timed } from "./harness.js";

const N = Number(process.env.BENCH_MESSAGES ?? 20_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SHARDS = Number(process.env.BENCH_SHARDS ?? 4);
const URL = process.env.BENCH_KINESIS_URL ?? "kinesis://127.0.0.1:4568";
const REDIS_URL = "redis://127.0.0.1:6379";
const TARGET = 1.0;
/** A small JSON event, as any Kinesis producer would send it. */
const body = (i: number) => `{"event":"signup","n":${i}}`;

const config = parseKinesisUrl(URL);
const client = new KinesisClient({
  ...(config.endpoint === undefined ? {} : { endpoint: config.endpoint }),
  ...(config.region === undefined ? {} : { region: config.region }),
  ...(config.credentials === undefined ? {} : { credentials: config.credentials }),
  requestHandler: new NodeHttpHandler({ connectionTimeout: 3000 }),
});
const redis = new Redis(REDIS_URL);

async function preload(count: number): Promise<string> {
  const stream = `bench-kinesis-${randomUUID().slice(0, 8)}`;
  await client.send(new CreateStreamCommand({ StreamName: stream, ShardCount: SHARDS }));
  for (;;) {
    const { StreamDescriptionSummary } = await client.send(new DescribeStreamSummaryCommand({ StreamName: stream }));
    if (StreamDescriptionSummary?.StreamStatus === "ACTIVE") break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  for (let start = 0; start < count; start += 500) {
    const Records = Array.from({ length: Math.min(500, count - start) }, (_, i) => ({ Data: Buffer.from(body(start + i)), PartitionKey: `k${start + i}` }));
    const answer = await client.send(new PutRecordsCommand({ StreamName: stream, Records }));
    if (answer.FailedRecordCount) throw new Error(`preload: ${answer.FailedRecordCount} records refused`);
  }
  return stream;
}

interface Case {
  name: string;
  consume(stream: string, count: number): Promise<() => Promise<void>>;
}

const noopHandler = async (_record: unknown): Promise<void> => {};

const raw: Case = {
  name: "(a) raw SDK: GetRecords per shard, no-op handler per record, checkpoint SET per batch",
  async consume(stream, count) {
    const run = randomUUID().slice(0, 8);
    const { Shards = [] } = await client.send(new ListShardsCommand({ StreamName: stream }));
    let got = 0;
    await Promise.all(
      Shards.map(async (shard) => {
        const start = await client.send(new GetShardIteratorCommand({ StreamName: stream, ShardId: shard.ShardId, ShardIteratorType: "TRIM_HORIZON" }));
        let iterator = start.ShardIterator;
        while (iterator !== undefined && got < count) {
          const page = await client.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: 10_000 }));
          const records = page.Records ?? [];
          for (const record of records) await noopHandler(record);
          if (records.length > 0) await redis.set(`bench:kinesis:${run}:${shard.ShardId}`, records[records.length - 1]?.SequenceNumber as string);
          got += records.length;
          iterator = page.NextShardIterator;
          if (records.length === 0) await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }),
    );
    return async () => void (await redis.del(...Shards.map((shard) => `bench:kinesis:${run}:${shard.ShardId}`)));
  },
};

const adapter = (name: string, onePerPartition: boolean): Case => ({
  name,
  async consume(stream, count) {
    const app = `bench-${randomUUID().slice(0, 8)}`;
    const broker = openKinesisBroker(`${URL}${URL.includes("?") ? "&" : "?"}app=${app}&checkpoints=${REDIS_URL}&poll=50`);
    const consumer = broker.consumer(stream, { maxInFlight: 100, onePerPartition });
    const signal = AbortSignal.timeout(600_000);
    for (let got = 0; got < count; ) {
      const deliveries: Delivery[] = await consumer.receive(100, signal);
      if (deliveries.length === 0) throw new Error("receive timed out");
      await Promise.all(
        deliveries.map(async (delivery) => {
          await noopHandler(delivery);
          await delivery.ack();
        }),
      );
      got += deliveries.length;
    }
    return async () => {
      await broker.close();
      const keys = await redis.keys(`wqueue:kinesis:${app}:*`);
      if (keys.length > 0) await redis.del(...keys);
    };
  },
});

async function measure(test: Case, stream: string, count: number): Promise<Sample> {
  let cleanup: () => Promise<void> = async () => {};
  const sample = await timed(count, async () => {
    cleanup = await test.consume(stream, count);
  });
  await cleanup();
  return sample;
}

async function main(): Promise<void> {
  const probe = openKinesisBroker(URL);
  try {
    await probe.connect();
  } catch (error) {
    throw new Error(`${(error as Error).message}\nStart the local Kinesis server with: bash scripts/kinesis.sh`);
  } finally {
    await probe.close();
  }
  process.stderr.write(`preloading ${N.toLocaleString("en-US")} records on ${SHARDS} shards (untimed) ...\n`);
  const stream = await preload(N);
  try {
    const cases = [
      raw,
      adapter("(b) adapter: `receive(100)`, no-op handler + `ack()` per delivery, the batch run together", false),
      adapter("(c) adapter, one record per shard at a time (the worker's default ordering on Kinesis)", true),
    ];
    const samples = await interleavedRounds(cases, ROUNDS, (test) => measure(test, stream, N), (test) => measure(test, stream, N));
    const { medians, rows } = summarize(cases, samples);
    const [a, b, c] = medians as [number, number, number];
    console.log(`### Kinesis adapter throughput

${N.toLocaleString("en-US")} records of about ${body(N).length} bytes in a ${SHARDS}-shard stream, read from its start by one consumer.
After a full warm-up pass of each case; median of ${ROUNDS} interleaved rounds. ${config.url} (kinesis-local unless told
otherwise) on loopback, checkpoints in Redis, Node ${process.version}, ${cpus()[0]?.model.trim() ?? "unknown CPU"} (${cpus().length} cores, shared with the server).

| Consumer | msgs/s (median) | range | client CPU µs/msg (median) |
| --- | ---: | ---: | ---: |
${rows.join("\n")}

- (b)/(a): ${ratioAtLeast("Kinesis adapter / raw GetRecords loop", b / a, TARGET)}
- (c)/(a): ${(c / a).toFixed(2)}x: one record per shard in flight, its delivery count stored before it is handed out
`);
  } finally {
    await client.send(new DeleteStreamCommand({ StreamName: stream, EnforceConsumerDeletion: true }));
  }
}

main()
  .then(() => console.log(machineLoad()))
  .catch((error: Error) => {
    console.error(error.message);
    process.exitCode = 1;
  })
  .finally(() => {
    client.destroy();
    redis.disconnect();
  });
