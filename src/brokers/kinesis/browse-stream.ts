import { GetRecordsCommand, GetShardIteratorCommand, type KinesisClient } from "@aws-sdk/client-kinesis";
import type { BrowsedMessage } from "../contract.js";
import { isStreamMissing } from "./kinesis-client.js";
import { type LeaseStore, SHARD_END } from "./leases/LeaseStore.js";
import { fromKinesisRecord } from "./record-codec.js";
import { FROM_START } from "./ShardState.js";
import type { StreamDirectory } from "./StreamDirectory.js";

/** Reads of an idle shard before it counts as read to its end. */
const EMPTY_READS = 2;

/**
 * Up to `limit` records of a stream that this app has not finished yet: each shard from its
 * checkpoint on (parents before children, as ListShards orders them), read without taking a lease
 * or moving a checkpoint. For `wqueue dead-letters list` on a dead-letter stream.
 */
export async function browseStream(
  client: KinesisClient,
  streams: StreamDirectory,
  store: LeaseStore,
  stream: string,
  limit: number,
): Promise<BrowsedMessage[]> {
  let shards: Awaited<ReturnType<StreamDirectory["shards"]>>;
  try {
    shards = await streams.shards(stream);
  } catch (error) {
    if (isStreamMissing(error)) return [];
    throw error;
  }
  const infos = await store.read(stream, shards.map((shard) => shard.ShardId as string));
  const found: BrowsedMessage[] = [];
  for (const shard of shards) {
    const shardId = shard.ShardId as string;
    const checkpoint = infos.get(shardId)?.checkpoint?.sequence;
    if (found.length >= limit || checkpoint === SHARD_END) continue;
    const start = await client.send(
      new GetShardIteratorCommand({
        StreamName: stream,
        ShardId: shardId,
        ...(checkpoint === undefined || checkpoint === FROM_START
          ? { ShardIteratorType: "TRIM_HORIZON" }
          : { ShardIteratorType: "AFTER_SEQUENCE_NUMBER", StartingSequenceNumber: checkpoint }),
      }),
    );
    let iterator = start.ShardIterator;
    for (let empty = 0; iterator !== undefined && found.length < limit && empty < EMPTY_READS; ) {
      const page = await client.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: Math.min(10_000, limit - found.length) }));
      const records = page.Records ?? [];
      empty = records.length === 0 && (page.MillisBehindLatest ?? 0) === 0 ? empty + 1 : 0;
      for (const record of records) {
        const message = fromKinesisRecord(record.Data ?? new Uint8Array(0), record.PartitionKey ?? "");
        found.push({ id: `${shardId}:${record.SequenceNumber}`, body: message.body, headers: message.headers, key: message.key });
      }
      iterator = page.NextShardIterator;
    }
  }
  return found.slice(0, limit);
}
