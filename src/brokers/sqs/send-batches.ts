import { setTimeout as sleep } from "node:timers/promises";
import { type SendMessageBatchRequestEntry, SendMessageBatchCommand, type SQSClient } from "@aws-sdk/client-sqs";
import type { OutgoingMessage } from "../contract.js";
import { encodeMessage } from "./message-codec.js";
import type { QueueInfo } from "./QueueDirectory.js";

/** SQS's limits per SendMessageBatch: 10 entries, 256 KiB of bodies and attributes together. */
const BATCH = 10;
const BATCH_BYTES = 256 * 1024;
/** SQS delays a single message by at most 15 minutes. */
export const MAX_DELAY_SECONDS = 900;
/** Entries SQS failed on its side (not the sender's fault) are sent again this many times. */
const ENTRY_RETRIES = 3;

/**
 * Sends `messages` to one queue with SendMessageBatch, in order: chunks of at most 10 entries and
 * 256 KiB go one after the other, so a publish keeps its order wherever the queue keeps any (FIFO
 * queues per group; ElasticMQ's standard queues in practice). Callers wanting more throughput call
 * publish() concurrently.
 *
 * Delays: `delayMs` becomes DelaySeconds, rounded up to whole seconds. SQS cannot delay a message
 * by more than 15 minutes, nor delay single messages of a FIFO queue: both are refused here with a
 * clear error before anything is sent (use nack({ delayMs }) for long retries: up to 12 hours).
 */
export async function sendBatches(client: SQSClient, queue: string, info: QueueInfo, messages: OutgoingMessage[]): Promise<void> {
  const fifo = info.fifo ? { contentDeduplication: info.contentDeduplication } : undefined;
  const entries = messages.map((message) => {
    const entry = encodeMessage(message, "0", fifo); // ids are set per chunk
    const delaySeconds = delayOf(queue, info, message.delayMs ?? 0);
    if (delaySeconds > 0) entry.DelaySeconds = delaySeconds;
    return entry;
  });
  for (const chunk of chunks(entries)) await sendChunk(client, queue, info.url, chunk);
}

function delayOf(queue: string, info: QueueInfo, delayMs: number): number {
  const seconds = Math.ceil(Math.max(0, delayMs) / 1000);
  if (seconds > 0 && info.fifo) {
    throw new Error(`sqs: cannot publish to FIFO queue ${queue} with delayMs=${delayMs}: SQS FIFO queues have no per-message delay`);
  }
  if (seconds > MAX_DELAY_SECONDS) {
    throw new Error(`sqs: cannot publish to ${queue} with delayMs=${delayMs}: SQS delays a message by at most ${MAX_DELAY_SECONDS} s (15 minutes)`);
  }
  return seconds;
}

/** Chunks of at most 10 entries and 256 KiB, with entry ids unique within each. */
function* chunks(entries: SendMessageBatchRequestEntry[]): Generator<SendMessageBatchRequestEntry[]> {
  let chunk: SendMessageBatchRequestEntry[] = [];
  let bytes = 0;
  for (const entry of entries) {
    const size = sizeOf(entry);
    if (chunk.length > 0 && (chunk.length === BATCH || bytes + size > BATCH_BYTES)) {
      yield chunk;
      chunk = [];
      bytes = 0;
    }
    chunk.push({ ...entry, Id: String(chunk.length) });
    bytes += size;
  }
  if (chunk.length > 0) yield chunk;
}

function sizeOf(entry: SendMessageBatchRequestEntry): number {
  let bytes = Buffer.byteLength(entry.MessageBody ?? "");
  for (const [name, value] of Object.entries(entry.MessageAttributes ?? {})) {
    bytes += Buffer.byteLength(name) + Buffer.byteLength(value.DataType ?? "") + Buffer.byteLength(value.StringValue ?? "");
  }
  return bytes;
}

async function sendChunk(client: SQSClient, queue: string, url: string, chunk: SendMessageBatchRequestEntry[]): Promise<void> {
  let pending = chunk;
  for (let attempt = 0; ; attempt += 1) {
    const answer = await client.send(new SendMessageBatchCommand({ QueueUrl: url, Entries: pending }));
    const failed = answer.Failed ?? [];
    if (failed.length === 0) return;
    const refused = failed.find((failure) => failure.SenderFault !== false);
    if (refused !== undefined || attempt >= ENTRY_RETRIES) {
      const failure = refused ?? failed[0];
      const error = new Error(`sqs: ${queue} refused ${failed.length} of ${pending.length} messages: ${failure?.Code}: ${failure?.Message}`);
      error.name = failure?.Code ?? "SendMessageBatchFailed";
      throw error;
    }
    const ids = new Set(failed.map((failure) => failure.Id));
    pending = pending.filter((entry) => ids.has(entry.Id));
    await sleep(100 * 2 ** attempt);
  }
}
