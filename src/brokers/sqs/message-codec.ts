import { randomUUID } from "node:crypto";
import type { Message, MessageAttributeValue, SendMessageBatchRequestEntry } from "@aws-sdk/client-sqs";
import type { Headers, OutgoingMessage } from "../contract.js";

/**
 * How a wqueue message travels as an SQS message, readable by any SQS client:
 *
 * - Body: the bytes as text when they are UTF-8 made of characters SQS accepts (JSON, plain text);
 *   otherwise base64, flagged by the attribute `wqueue-body-encoding: base64` (also for an empty
 *   body, sent as "=": SQS refuses an empty one).
 * - Headers: one String message attribute each. SQS allows 10 attributes per message, non-empty
 *   values of its character set and names of [A-Za-z0-9_.-]: when the headers (plus wqueue's own
 *   attributes) do not fit that, ALL of them go as JSON in the one attribute `wqueue-headers`.
 *   Dead letters, with their x-wqueue-dead-* headers, usually take that form.
 * - Key: on FIFO queues the MessageGroupId (`default` for a message without key, so such messages
 *   share one ordered group); on standard queues the attribute `wqueue-key`.
 * - Attempt: SQS's ApproximateReceiveCount, which counts every receive, also those of a consumer
 *   that died. A message published at attempt N > 1 carries `wqueue-attempt: N` as its base.
 */
export const HEADERS_ATTRIBUTE = "wqueue-headers";
const KEY_ATTRIBUTE = "wqueue-key";
const ATTEMPT_ATTRIBUTE = "wqueue-attempt";
const ENCODING_ATTRIBUTE = "wqueue-body-encoding";
const RESERVED = new Set([HEADERS_ATTRIBUTE, KEY_ATTRIBUTE, ATTEMPT_ATTRIBUTE, ENCODING_ATTRIBUTE]);
const MAX_ATTRIBUTES = 10;
export const DEFAULT_GROUP = "default";

/** Characters SQS refuses in bodies and attribute values (XML 1.0's excluded ones). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: exactly those are refused by SQS
const REFUSED = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const ATTRIBUTE_NAME = /^(?!\.)(?!.*\.\.)(?!aws\.|amazon\.)[A-Za-z0-9_.-]{1,256}(?<!\.)$/i;
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

export interface FifoOptions {
  /** The queue deduplicates by content itself: no MessageDeduplicationId is sent. */
  contentDeduplication: boolean;
}

/** One SendMessageBatch entry; `id` must be unique within its batch. `fifo` undefined: a standard queue. */
export function encodeMessage(message: OutgoingMessage, id: string, fifo: FifoOptions | undefined): SendMessageBatchRequestEntry {
  const attributes: Record<string, MessageAttributeValue> = {};
  const text = asText(message.body);
  if (text === undefined) attributes[ENCODING_ATTRIBUTE] = string("base64");
  if (message.attempt !== undefined && message.attempt > 1) attributes[ATTEMPT_ATTRIBUTE] = string(String(message.attempt));
  if (fifo === undefined && message.key !== undefined && message.key !== "") attributes[KEY_ATTRIBUTE] = string(message.key);
  const headers = Object.entries(message.headers ?? {});
  const own = Object.keys(attributes).length;
  if (headers.length + own <= MAX_ATTRIBUTES && headers.every(([name, value]) => fitsAttribute(name, value))) {
    for (const [name, value] of headers) attributes[name] = string(value);
  } else if (headers.length > 0) {
    // JSON.stringify escapes control characters; the two non-characters it leaves are escaped here.
    const json = JSON.stringify(message.headers).replace(/[\uFFFE\uFFFF]/g, (c) => `\\u${c.charCodeAt(0).toString(16)}`);
    attributes[HEADERS_ATTRIBUTE] = string(json);
  }
  const entry: SendMessageBatchRequestEntry = {
    Id: id,
    MessageBody: text ?? (message.body.length === 0 ? "=" : Buffer.from(message.body).toString("base64")),
  };
  if (Object.keys(attributes).length > 0) entry.MessageAttributes = attributes;
  if (fifo !== undefined) {
    entry.MessageGroupId = message.key || DEFAULT_GROUP;
    if (!fifo.contentDeduplication) entry.MessageDeduplicationId = randomUUID();
  }
  return entry;
}

export interface DecodedMessage {
  body: Uint8Array;
  headers: Headers;
  key: string | undefined;
  attempt: number;
}

/** Reads any SQS message, including ones from producers that know nothing of wqueue. */
export function decodeMessage(message: Message, fifo: boolean): DecodedMessage {
  const attributes = message.MessageAttributes ?? {};
  const raw = message.Body ?? "";
  const base64 = attributes[ENCODING_ATTRIBUTE]?.StringValue === "base64";
  const headers: Headers = {};
  for (const [name, value] of Object.entries(attributes)) {
    if (RESERVED.has(name)) continue;
    if (value.StringValue !== undefined) headers[name] = value.StringValue;
    else if (value.BinaryValue !== undefined) headers[name] = Buffer.from(value.BinaryValue).toString("base64");
  }
  const packed = attributes[HEADERS_ATTRIBUTE]?.StringValue;
  if (packed !== undefined) Object.assign(headers, parseHeaders(packed));
  const system = message.Attributes ?? {};
  const receives = Number(system.ApproximateReceiveCount ?? "1");
  const base = Number(attributes[ATTEMPT_ATTRIBUTE]?.StringValue ?? "1");
  return {
    body: base64 ? Buffer.from(raw, "base64") : Buffer.from(raw, "utf8"),
    headers,
    key: fifo ? system.MessageGroupId : attributes[KEY_ATTRIBUTE]?.StringValue,
    attempt: (Number.isInteger(base) && base > 0 ? base : 1) + (Number.isInteger(receives) && receives > 0 ? receives : 1) - 1,
  };
}

function string(value: string): MessageAttributeValue {
  return { DataType: "String", StringValue: value };
}

function fitsAttribute(name: string, value: string): boolean {
  return !RESERVED.has(name) && ATTRIBUTE_NAME.test(name) && value !== "" && !REFUSED.test(value);
}

/** The body as text when SQS can carry it as it is. */
function asText(body: Uint8Array): string | undefined {
  if (body.length === 0) return undefined;
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    return undefined;
  }
  return REFUSED.test(text) ? undefined : text;
}

/** A `wqueue-headers` value that is not a JSON object of strings yields what it can. */
function parseHeaders(json: string): Headers {
  try {
    const value: unknown = JSON.parse(json);
    if (value === null || typeof value !== "object" || Array.isArray(value)) return {};
    const headers: Headers = {};
    for (const [name, item] of Object.entries(value)) if (typeof item === "string") headers[name] = item;
    return headers;
  } catch {
    return {};
  }
}
