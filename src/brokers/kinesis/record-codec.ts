import { createHash, randomBytes } from "node:crypto";
import type { PutRecordsRequestEntry } from "@aws-sdk/client-kinesis";
import type { Headers, OutgoingMessage } from "../contract.js";
import { type Enveloped, unwrap, wrap } from "../envelope.js";

/**
 * How a wqueue message travels as a Kinesis record, which has only data bytes and a partition key.
 * The key is the partition key (so a key's records share a shard, in order); a message without one
 * gets a random key, spreading it over the shards. Headers and attempt travel in the shared JSON
 * envelope (../envelope.ts) only when there are any, so plain producers and consumers interoperate.
 * A publish delay travels as a header that the consumer honours by holding the record back.
 */
export const NOT_BEFORE_HEADER = "x-wqueue-not-before";
/** Kinesis's limit on partition keys, in characters. */
const MAX_KEY_CHARS = 256;

export function toKinesisRecord(message: OutgoingMessage, now: number): PutRecordsRequestEntry {
  let headers = message.headers;
  if (message.delayMs !== undefined && message.delayMs > 0) headers = { ...headers, [NOT_BEFORE_HEADER]: String(now + message.delayMs) };
  const key = message.key;
  // A key too long to be a partition key is hashed for Kinesis and kept whole in the envelope.
  const tooLong = key !== undefined && (key.length > MAX_KEY_CHARS || key.length === 0);
  const partitionKey = key === undefined ? randomBytes(8).toString("hex") : tooLong ? createHash("sha256").update(key).digest("hex") : key;
  const data = wrap({ body: message.body, headers, attempt: message.attempt, key: tooLong ? key : undefined });
  return { Data: data, PartitionKey: partitionKey };
}

/** A record's message as the consumer sees it; the not-before header is taken out. */
export interface DecodedRecord extends Enveloped {
  /** Epoch ms before which the record must not be handed out; 0 for none. */
  notBefore: number;
}

export function fromKinesisRecord(data: Uint8Array, partitionKey: string): DecodedRecord {
  const raw = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const message = unwrap(raw);
  let notBefore = 0;
  let headers: Headers = message.headers;
  if (headers[NOT_BEFORE_HEADER] !== undefined) {
    notBefore = Number(headers[NOT_BEFORE_HEADER]) || 0;
    headers = { ...headers };
    delete headers[NOT_BEFORE_HEADER];
  }
  return { body: message.body, headers, key: message.key ?? partitionKey, attempt: message.attempt, notBefore };
}
