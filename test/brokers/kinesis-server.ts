import { randomUUID } from "node:crypto";
import { readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  CreateStreamCommand,
  DeleteStreamCommand,
  DescribeStreamSummaryCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  KinesisClient,
  ListShardsCommand,
  type ListShardsCommandInput,
  ListStreamsCommand,
  type ListStreamsCommandInput,
  PutRecordsCommand,
  type PutRecordsRequestEntry,
  type Shard,
} from "@aws-sdk/client-kinesis";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { Redis } from "ioredis";
import { afterAll, beforeAll } from "vitest";
import { waitFor } from "../helpers.js";
import { ensureKinesis, KINESIS_DIR, KINESIS_PORT, stopKinesis } from "../setup/ensure-kinesis.js";
import { REDIS_URL } from "../setup/ensure-redis.js";
import { freePort } from "./sqs-server.js";

/**
 * The Kinesis server the integration tests use: kinesis-local on 127.0.0.1:4568 (scripts/kinesis.sh,
 * started by the global setup; started here too if it is not running, and failing with how to
 * start it otherwise: tests never skip). A file may also ask for a private one, on a free port of
 * its own, which it may restart and which it stops at the end; `persist` keeps its streams across
 * that restart (otherwise they live in memory and a restart loses them).
 *
 * afterAll deletes every stream under the file's own prefix (their `.dead` streams included), and
 * those passed to track(): other runs on the same server are left alone.
 */
export interface KinesisServer {
  /** kinesis://127.0.0.1:PORT plus `query` (e.g. "?shards=2&app=x"; a leading "&" works too). */
  url(query?: string): string;
  /** A fresh stream (= wqueue queue) name under this file's prefix, e.g. `kinesis-test-ab12cd34.s1`. */
  streamName(suffix?: string): string;
  /** A plain SDK client on the same server (HTTP/1.1), for producing and inspecting as an outside client. */
  readonly raw: KinesisClient;
  /** Stops and starts a private server: its streams survive only with `persist`. */
  restart(): Promise<void>;
  /** Deletes `stream` and `stream.dead` too at the end (for streams named outside the prefix). */
  track(stream: string): void;
  /** Creates a provisioned stream and resolves once it is ACTIVE. */
  createStream(name: string, shards: number): Promise<void>;
  /** Resolves once the stream exists and is ACTIVE (fails after `timeoutMs`). */
  waitActive(name: string, timeoutMs?: number): Promise<void>;
  /** PutRecords in order, in requests of at most 500 records (and 5 MB), resending rejected records. */
  put(name: string, records: { data: Buffer | string; key: string }[]): Promise<void>;
  /** Every record of every shard (open and closed), from TRIM_HORIZON to the end, shard by shard. */
  readAll(name: string): Promise<KinesisRecord[]>;
}

export interface KinesisRecord {
  shardId: string;
  sequenceNumber: string;
  key: string;
  data: Buffer;
}

/** Kinesis's own limits: stream names, and one PutRecords request. */
const STREAM_NAME = /^[A-Za-z0-9_.-]{1,128}$/;
const PUT_MAX_RECORDS = 500;
const PUT_MAX_BYTES = 5 * 1024 * 1024;
const CREATE_WAIT_MS = 30_000;
/** The file a persisting kinesis-local saves its streams to (in its data directory), every second (scripts/kinesis.sh: PERSIST_INTERVAL). */
const DATA_FILE = "kinesis-data.json";
const SAVE_EVERY_MS = 1000;
const SAVE_WAIT_MS = 15_000;

export function requireKinesis(options: { prefix: string; private?: boolean; persist?: boolean }): KinesisServer {
  if (options.persist && !options.private) throw new Error("requireKinesis: only a private server may persist its streams");
  let port = KINESIS_PORT;
  const prefix = `${options.prefix}-${randomUUID().slice(0, 8)}`;
  // Room for the suffixes streamName() and the adapter (".dead") add.
  if (!STREAM_NAME.test(prefix) || prefix.length > 100) throw new Error(`requireKinesis: ${options.prefix} cannot start stream names`);
  const persist = options.persist === true;
  const dataDir = () => join(KINESIS_DIR, `data-${port}`);
  let raw: KinesisClient | undefined;
  const client = () => {
    raw ??= new KinesisClient({
      endpoint: `http://127.0.0.1:${port}`,
      region: "us-east-1",
      credentials: { accessKeyId: "x", secretAccessKey: "x" },
      // The SDK's default HTTP/2 handler fails against kinesis-local.
      requestHandler: new NodeHttpHandler({ connectionTimeout: 3000 }),
    });
    return raw;
  };
  let counter = 0;
  const tracked = new Set<string>();

  beforeAll(async () => {
    if (!options.private) return ensureKinesis(port, { persist });
    // kinesis-local also opens a TLS port beside the one asked for; a free port checked now may be
    // taken by the time it binds (other tests open ports too): try another pair then.
    for (let tries = 1; ; tries++) {
      port = await freePort();
      // A data file left by an earlier run on this port would bring its streams back.
      rmSync(dataDir(), { recursive: true, force: true });
      try {
        return await ensureKinesis(port, { persist });
      } catch (error) {
        if (tries >= 3) throw error;
      }
    }
  }, 120_000);
  afterAll(async () => {
    if (options.private) {
      raw?.destroy();
      await stopKinesis(port);
      rmSync(dataDir(), { recursive: true, force: true });
      return;
    }
    const admin = client();
    const names = (await listStreams(admin)).filter((name) => name.startsWith(prefix) || tracked.has(name));
    await Promise.all(names.map((name) => deleteStream(admin, name)));
    admin.destroy();
  }, 60_000);

  const waitActive = async (name: string, timeoutMs = CREATE_WAIT_MS) => {
    let status = "unknown";
    await waitFor(
      () => `stream ${name} ACTIVE (is ${status})`,
      async () => {
        try {
          const { StreamDescriptionSummary } = await client().send(new DescribeStreamSummaryCommand({ StreamName: name }));
          status = StreamDescriptionSummary?.StreamStatus ?? "unknown";
        } catch (error) {
          // Not created yet (by the adapter under test, say): wait for it too.
          if ((error as Error).name !== "ResourceNotFoundException") throw error;
          status = "missing";
        }
        return status === "ACTIVE";
      },
      timeoutMs,
    );
  };

  return {
    url: (query = "") => `kinesis://127.0.0.1:${port}${query === "" ? "" : `?${query.replace(/^[?&]/, "")}`}`,
    streamName: (suffix = "") => `${prefix}.s${++counter}${suffix}`,
    get raw() {
      return client();
    },
    restart: async () => {
      if (!options.private) throw new Error("only a private server may be restarted");
      raw?.destroy();
      raw = undefined;
      const saved = persist ? await savedAfter(join(dataDir(), DATA_FILE), Date.now()) : undefined;
      await stopKinesis(port);
      if (saved !== undefined) writeFileSync(join(dataDir(), DATA_FILE), saved);
      await ensureKinesis(port, { persist });
    },
    track: (stream) => {
      tracked.add(stream);
      tracked.add(`${stream}.dead`);
    },
    createStream: async (name, shards) => {
      // Kinesis (and kinesis-local) refuse a sixth stream in CREATING at once: LimitExceededException.
      const deadline = Date.now() + CREATE_WAIT_MS;
      for (;;) {
        try {
          await client().send(new CreateStreamCommand({ StreamName: name, ShardCount: shards }));
          break;
        } catch (error) {
          if ((error as Error).name !== "LimitExceededException" || Date.now() > deadline) throw error;
          await new Promise((resolve) => setTimeout(resolve, 50 + Math.random() * 100));
        }
      }
      await waitActive(name);
    },
    waitActive,
    put: async (name, records) => {
      for (const chunk of chunks(records)) {
        let pending: PutRecordsRequestEntry[] = chunk;
        // Rejected records (ErrorCode set: throttling, internal errors) are resent, alone; kinesis-local
        // has no throughput limits and rejects none, so the order stays the order given.
        for (let attempt = 1; pending.length > 0; attempt++) {
          const answer = await client().send(new PutRecordsCommand({ StreamName: name, Records: pending }));
          if (!answer.FailedRecordCount) break;
          const results = answer.Records ?? [];
          const failed = pending.filter((_, i) => results[i]?.ErrorCode !== undefined);
          if (attempt >= 20) throw new Error(`PutRecords to ${name}: ${failed.length} records still rejected (${results.find((r) => r.ErrorCode)?.ErrorMessage})`);
          pending = failed;
          await new Promise((resolve) => setTimeout(resolve, 20 * attempt));
        }
      }
    },
    readAll: async (name) => {
      const records: KinesisRecord[] = [];
      for (const shard of await listShards(client(), name)) {
        const shardId = shard.ShardId!;
        const start = await client().send(new GetShardIteratorCommand({ StreamName: name, ShardId: shardId, ShardIteratorType: "TRIM_HORIZON" }));
        let iterator = start.ShardIterator;
        while (iterator !== undefined) {
          const page = await client().send(new GetRecordsCommand({ ShardIterator: iterator }));
          const got = page.Records ?? [];
          for (const record of got) {
            const data = record.Data ?? new Uint8Array();
            records.push({
              shardId,
              sequenceNumber: record.SequenceNumber!,
              key: record.PartitionKey!,
              data: Buffer.from(data.buffer, data.byteOffset, data.byteLength),
            });
          }
          // The end: a closed shard gives no next iterator; an open one an empty page, caught up.
          if (got.length === 0 && (page.MillisBehindLatest ?? 0) === 0) break;
          iterator = page.NextShardIterator;
        }
      }
      return records;
    },
  };
}

/** Requests of at most 500 records and 5 MB (data plus partition keys), in the order given. */
function chunks(records: { data: Buffer | string; key: string }[]): PutRecordsRequestEntry[][] {
  const out: PutRecordsRequestEntry[][] = [];
  let chunk: PutRecordsRequestEntry[] = [];
  let bytes = 0;
  for (const { data, key } of records) {
    const entry = { Data: typeof data === "string" ? Buffer.from(data) : data, PartitionKey: key };
    const size = entry.Data.byteLength + Buffer.byteLength(key);
    if (chunk.length === PUT_MAX_RECORDS || (chunk.length > 0 && bytes + size > PUT_MAX_BYTES)) {
      out.push(chunk);
      chunk = [];
      bytes = 0;
    }
    chunk.push(entry);
    bytes += size;
  }
  if (chunk.length > 0) out.push(chunk);
  return out;
}

async function listStreams(client: KinesisClient): Promise<string[]> {
  const names: string[] = [];
  let input: ListStreamsCommandInput = {};
  for (;;) {
    const page = await client.send(new ListStreamsCommand(input));
    const got = page.StreamNames ?? [];
    names.push(...got);
    if (!page.HasMoreStreams || got.length === 0) return names;
    input = page.NextToken !== undefined ? { NextToken: page.NextToken } : { ExclusiveStartStreamName: got.at(-1) };
  }
}

async function listShards(client: KinesisClient, stream: string): Promise<Shard[]> {
  const shards: Shard[] = [];
  let input: ListShardsCommandInput = { StreamName: stream };
  for (;;) {
    const page = await client.send(new ListShardsCommand(input));
    shards.push(...(page.Shards ?? []));
    if (page.NextToken === undefined) return shards;
    input = { NextToken: page.NextToken };
  }
}

/** Deletes a stream; one still CREATING (ResourceInUseException) is retried, one already gone is fine. */
async function deleteStream(client: KinesisClient, name: string): Promise<void> {
  const deadline = Date.now() + CREATE_WAIT_MS;
  for (;;) {
    try {
      await client.send(new DeleteStreamCommand({ StreamName: name, EnforceConsumerDeletion: true }));
      return;
    } catch (error) {
      const why = (error as Error).name;
      if (why === "ResourceNotFoundException") return;
      if (why !== "ResourceInUseException" || Date.now() > deadline) throw error;
      const { StreamDescriptionSummary } = await client.send(new DescribeStreamSummaryCommand({ StreamName: name })).catch(() => ({ StreamDescriptionSummary: undefined }));
      if (StreamDescriptionSummary === undefined || StreamDescriptionSummary.StreamStatus === "DELETING") return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

/** Deletes the leases and checkpoints an app kept in the test Redis (the adapter's default store). */
export async function dropKinesisApp(app: string): Promise<void> {
  const redis = new Redis(REDIS_URL);
  try {
    const keys = await redis.keys(`wqueue:kinesis:${app}:*`);
    if (keys.length > 0) await redis.del(...keys);
  } finally {
    redis.disconnect();
  }
}

/**
 * The content of a save of kinesis-local's data file that began after `since`, so it holds every
 * write acknowledged before then. A stop alone does not keep them: kinesis-local saves every second,
 * and its save on SIGTERM comes only after its graceful close, which waits for the clients' keep-alive
 * connections (the adapter's), so scripts/kinesis.sh kills it after 5 s: writes of its last second,
 * a stream just created included, were lost (and a kill in the middle of a save leaves half a file).
 * The restart case checks the adapter across a server that keeps what it acknowledged, as Kinesis
 * does: the caller puts this content back after the stop.
 */
async function savedAfter(file: string, since: number): Promise<string> {
  const mtime = () => {
    try {
      return statSync(file).mtimeMs;
    } catch {
      return 0; // not saved yet
    }
  };
  // A save that ended after `since` may have begun before it: wait for the one after that.
  let first = 0;
  let content = "";
  await waitFor(
    `kinesis-local to save its streams to ${file} (it does every second)`,
    () => {
      const now = mtime();
      if (first === 0) {
        if (now > since) first = now;
        return false;
      }
      if (now < first + SAVE_EVERY_MS / 2) return false; // the same save, still writing
      content = readFileSync(file, "utf8");
      try {
        JSON.parse(content); // not caught halfway through a save
        return true;
      } catch {
        return false;
      }
    },
    SAVE_WAIT_MS,
  );
  return content;
}
