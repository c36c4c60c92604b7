import { Agent } from "node:http";
import { KinesisClient, ListStreamsCommand } from "@aws-sdk/client-kinesis";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { describe, expect, it } from "vitest";
import { type KinesisRecord, requireKinesis } from "./kinesis-server.js";

/**
 * The test Kinesis server (kinesis-local) and the helpers of ./kinesis-server.ts that the Kinesis
 * tests build on: streams become ACTIVE, PutRecords in chunks keeps each key's order, readAll sees
 * every record, and a private persistent server keeps its records across a restart.
 */

/** `count` records over `keys` partition keys; each record's data is `<key>:<n-th of that key>`. */
function numbered(count: number, keys: number): { data: string; key: string }[] {
  const next = new Map<string, number>();
  return Array.from({ length: count }, (_, i) => {
    const key = `key-${i % keys}`;
    const n = next.get(key) ?? 0;
    next.set(key, n + 1);
    return { data: `${key}:${n}`, key };
  });
}

/** Per key, the numbers in the order read; and which shards each key's records are on. */
function byKey(records: KinesisRecord[]) {
  const order = new Map<string, number[]>();
  const shards = new Map<string, Set<string>>();
  for (const record of records) {
    const [key, n] = record.data.toString().split(":");
    expect(key).toBe(record.key);
    order.set(record.key, [...(order.get(record.key) ?? []), Number(n)]);
    shards.set(record.key, (shards.get(record.key) ?? new Set()).add(record.shardId));
  }
  return { order, shards };
}

describe("the shared kinesis-local", () => {
  const kinesis = requireKinesis({ prefix: "kinesis-server-test" });

  it("a 2-shard stream: 1,000 records put in chunks are all read back, each key in order on one shard", async () => {
    const stream = kinesis.streamName();
    const began = Date.now();
    await kinesis.createStream(stream, 2);
    const created = Date.now();
    const records = numbered(1000, 20);
    await kinesis.put(stream, records);
    const put = Date.now();
    const read = await kinesis.readAll(stream);
    console.log(`kinesis-local: stream ACTIVE in ${created - began} ms, 1,000 records put in ${put - created} ms, read in ${Date.now() - put} ms`);

    expect(read).toHaveLength(1000);
    const { order, shards } = byKey(read);
    expect(order.size).toBe(20);
    for (const [key, numbers] of order) {
      expect(numbers, key).toEqual(Array.from({ length: 50 }, (_, i) => i));
      expect(shards.get(key)?.size, key).toBe(1);
    }
    // 20 keys hash onto both shards (MD5 of the key: the same every run).
    expect(new Set(read.map((record) => record.shardId)).size).toBe(2);
    // Sequence numbers grow within a shard, in the order readAll returns them.
    for (const shardId of new Set(read.map((record) => record.shardId))) {
      const sequence = read.filter((record) => record.shardId === shardId).map((record) => BigInt(record.sequenceNumber));
      expect(sequence.every((value, i) => i === 0 || value > sequence[i - 1]!)).toBe(true);
    }
  }, 60_000);
});

describe("a private kinesis-local with persistence", () => {
  const kinesis = requireKinesis({ prefix: "kinesis-server-test", private: true, persist: true });

  it("keeps a stream and its records across a restart", async () => {
    const stream = kinesis.streamName();
    await kinesis.createStream(stream, 1);
    await kinesis.put(stream, numbered(200, 5));
    const before = await kinesis.readAll(stream);
    expect(before).toHaveLength(200);

    await kinesis.restart();

    const after = await kinesis.readAll(stream);
    expect(after.map((record) => [record.sequenceNumber, record.key, record.data.toString()])).toEqual(
      before.map((record) => [record.sequenceNumber, record.key, record.data.toString()]),
    );
    // And it still takes writes after the restart.
    await kinesis.put(stream, [{ data: "after-restart", key: "key-0" }]);
    const last = (await kinesis.readAll(stream)).at(-1);
    expect(last?.data.toString()).toBe("after-restart");
  }, 60_000);

  it("keeps a stream created and written just before a restart, while a client holds a keep-alive connection", async () => {
    // kinesis-local then waits for that connection at SIGTERM and is killed before its last save:
    // without restart() making sure of a save, this stream (not a second old) was gone, or CREATING.
    const holder = new KinesisClient({
      endpoint: kinesis.url().replace("kinesis://", "http://"),
      region: "us-east-1",
      credentials: { accessKeyId: "x", secretAccessKey: "x" },
      requestHandler: new NodeHttpHandler({ httpAgent: new Agent({ keepAlive: true }) }),
    });
    try {
      await holder.send(new ListStreamsCommand({}));
      const stream = kinesis.streamName();
      await kinesis.createStream(stream, 1);
      await kinesis.put(stream, numbered(20, 2));
      const before = await kinesis.readAll(stream);
      await kinesis.restart();
      await kinesis.waitActive(stream, 5000);
      expect((await kinesis.readAll(stream)).map((record) => record.sequenceNumber)).toEqual(before.map((record) => record.sequenceNumber));
    } finally {
      holder.destroy();
    }
  }, 60_000);
});
