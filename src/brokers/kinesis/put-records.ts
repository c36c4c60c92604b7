import { type KinesisClient, PutRecordsCommand, type PutRecordsRequestEntry } from "@aws-sdk/client-kinesis";
import { describeAwsError, isTransient } from "../aws/sdk-errors.js";

/** PutRecords takes at most 500 records and 5 MiB (data plus partition keys) a call. */
const MAX_RECORDS = 500;
const MAX_BYTES = 5 * 1024 * 1024;
/** A single record may hold at most 1 MiB (data plus partition key). */
const MAX_RECORD_BYTES = 1024 * 1024;
/** Rounds of re-sending the records a call refused (throughput exceeded on their shard). */
const MAX_ROUNDS = 8;

/**
 * Sends records in calls of at most 500 records / 5 MiB, one call after the other, so records of
 * one key keep their order across calls. Records a call refuses (per-record throttling or internal
 * errors) are sent again with backoff; resolves once Kinesis stored every record, else throws.
 * Within a call, a refused record sent again lands after records of its key that were accepted:
 * under throttling, order per key is kept only between calls.
 */
export async function putRecords(client: KinesisClient, stream: string, records: PutRecordsRequestEntry[]): Promise<void> {
  for (const record of records) {
    const size = (record.Data?.byteLength ?? 0) + Buffer.byteLength(record.PartitionKey ?? "");
    if (size > MAX_RECORD_BYTES) throw new Error(`a record of ${size} bytes is over Kinesis's 1 MiB limit (stream ${stream})`);
  }
  for (const chunk of chunks(records)) await putChunk(client, stream, chunk);
}

async function putChunk(client: KinesisClient, stream: string, records: PutRecordsRequestEntry[]): Promise<void> {
  let pending = records;
  for (let round = 1; ; round += 1) {
    let refused: PutRecordsRequestEntry[];
    let why: string;
    try {
      const answer = await client.send(new PutRecordsCommand({ StreamName: stream, Records: pending }));
      if (!answer.FailedRecordCount) return;
      const results = answer.Records ?? [];
      refused = pending.filter((_, i) => results[i]?.ErrorCode !== undefined);
      why = `${refused.length} of ${pending.length} records refused (${results.find((r) => r.ErrorCode)?.ErrorCode})`;
    } catch (error) {
      if (!isTransient(error) || round >= MAX_ROUNDS) throw error;
      refused = pending;
      why = describeAwsError(error);
    }
    if (round >= MAX_ROUNDS) throw new Error(`kinesis stream ${stream}: ${why}, still after ${round} tries`);
    pending = refused;
    await new Promise((resolve) => setTimeout(resolve, Math.min(2000, 50 * 2 ** round) * (0.5 + Math.random() / 2)));
  }
}

function* chunks(records: PutRecordsRequestEntry[]): Generator<PutRecordsRequestEntry[]> {
  let chunk: PutRecordsRequestEntry[] = [];
  let bytes = 0;
  for (const record of records) {
    const size = (record.Data?.byteLength ?? 0) + Buffer.byteLength(record.PartitionKey ?? "");
    if (chunk.length === MAX_RECORDS || (chunk.length > 0 && bytes + size > MAX_BYTES)) {
      yield chunk;
      chunk = [];
      bytes = 0;
    }
    chunk.push(record);
    bytes += size;
  }
  if (chunk.length > 0) yield chunk;
}
