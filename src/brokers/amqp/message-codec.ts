import { randomUUID } from "node:crypto";
import type { ConsumeMessage, Message, MessageProperties, Options } from "amqplib";
import type { Headers, OutgoingMessage } from "../contract.js";

/**
 * How wqueue's message fields travel in AMQP, natively, so a plain AMQP producer or consumer
 * needs nothing of wqueue:
 *
 * - body: the message content, untouched; headers: AMQP headers (string values);
 * - contentType: the `content-type` property (app.publish of a value it serialises: application/json);
 * - key: the header `x-wqueue-key`;
 * - attempt: the header `x-wqueue-attempt` (absent means 1), written only on retries;
 * - id: the `message-id` property, set on every publish and kept across retries. A message from a
 *   producer that set none gets a process-unique id, which its retries then keep.
 *
 * Counting redeliveries: RabbitMQ gives unacked messages back when a consumer's channel closes or
 * its worker dies, and marks them `redelivered`. The attempt of a delivery is
 * `x-wqueue-attempt + redeliveries`, where redeliveries is the `x-delivery-count` header when the
 * queue keeps one (quorum queues: exact) and otherwise 1 if `redelivered` is set, else 0. A classic
 * queue keeps no count (`redelivered` is a flag: the second redelivery looks like the first), so a
 * redelivered message without `x-delivery-count` is never run as it is: the consumer republishes it
 * with that attempt written in `x-wqueue-attempt` and acks the original first (see needsRecount and
 * AmqpDelivery.recount), so every redelivery is counted durably, whatever killed the worker.
 * Messages the adapter had buffered but not handed out when its channel closed come back
 * `redelivered` too, and count one attempt more.
 */
export const KEY_HEADER = "x-wqueue-key";
export const ATTEMPT_HEADER = "x-wqueue-attempt";

/**
 * Headers wqueue owns, and the broker's own bookkeeping (dead-lettering history, quorum delivery
 * count), which the delay queues add to every delayed message: neither is shown to handlers nor
 * sent back on a retry, where the broker would misread a string copy of them.
 */
const HIDDEN_HEADERS = new Set([
  KEY_HEADER,
  ATTEMPT_HEADER,
  "x-death",
  "x-first-death-exchange",
  "x-first-death-queue",
  "x-first-death-reason",
  "x-last-death-exchange",
  "x-last-death-queue",
  "x-last-death-reason",
  "x-delivery-count",
]);

/** A message encoded for basic.publish; `confirmed` is set once the broker confirmed it. */
export interface Outbound {
  body: Buffer;
  options: Options.Publish;
  confirmed: boolean;
}

const ID_PREFIX = `${randomUUID().slice(0, 8)}-`;
let lastId = 0;

export function newMessageId(): string {
  lastId += 1;
  return ID_PREFIX + lastId.toString(36);
}

/**
 * `mandatory`: a message no queue takes comes back (basic.return) instead of vanishing. A copy
 * (retry, dead letter) passes `original`, whose content-type, correlation-id and other plain
 * properties it keeps; not `expiration` (it would restart, and expire inside a delay queue, which
 * sends expired messages back early), nor `user-id` (RabbitMQ refuses one not of this connection).
 */
export function encode(
  message: Pick<OutgoingMessage, "body" | "headers" | "key" | "attempt" | "contentType" | "priority">,
  persistent: boolean,
  messageId = newMessageId(),
  original?: MessageProperties,
): Outbound {
  const headers: Record<string, string> = { ...message.headers };
  if (message.key !== undefined) headers[KEY_HEADER] = message.key;
  if (message.attempt !== undefined && message.attempt > 1) headers[ATTEMPT_HEADER] = String(message.attempt);
  const { body } = message;
  const options: Options.Publish = { persistent, messageId, headers, mandatory: true };
  if (message.contentType !== undefined) options.contentType = message.contentType;
  if (message.priority !== undefined && message.priority > 0) options.priority = message.priority;
  if (original !== undefined) {
    for (const name of CARRIED_PROPERTIES) {
      if (original[name] !== undefined && original[name] !== null) options[name] = original[name];
    }
  }
  return {
    body: Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength),
    options,
    confirmed: false,
  };
}

const CARRIED_PROPERTIES = [
  "contentType",
  "contentEncoding",
  "correlationId",
  "replyTo",
  "timestamp",
  "type",
  "appId",
  "priority",
] as const;

export interface Inbound {
  headers: Readonly<Headers>;
  key: string | undefined;
  attempt: number;
  messageId: string | undefined;
}

const NO_HEADERS: Readonly<Headers> = Object.freeze({});

export function decode(message: Message): Inbound {
  const raw = message.properties.headers;
  const messageId = message.properties.messageId as string | undefined;
  let redeliveries = message.fields.redelivered ? 1 : 0;
  if (raw === undefined || raw === null || isEmpty(raw)) {
    return { headers: NO_HEADERS, key: undefined, attempt: 1 + redeliveries, messageId };
  }
  const headers: Headers = {};
  for (const name in raw) {
    if (HIDDEN_HEADERS.has(name)) continue;
    const value = headerString(raw[name]);
    if (value !== undefined) headers[name] = value;
  }
  const counted = Number(raw["x-delivery-count"]);
  if (Number.isInteger(counted) && counted > redeliveries) redeliveries = counted;
  const stated = Number(headerString(raw[ATTEMPT_HEADER]));
  const attempt = (Number.isInteger(stated) && stated >= 1 ? stated : 1) + redeliveries;
  return { headers, key: headerString(raw[KEY_HEADER]), attempt, messageId };
}

/**
 * A redelivered message whose queue keeps no delivery count (classic queues): its attempt must be
 * written into a republished copy before it runs, or the next redelivery would count the same.
 */
export function needsRecount(message: ConsumeMessage): boolean {
  if (!message.fields.redelivered) return false;
  const counted = message.properties.headers?.["x-delivery-count"];
  return counted === undefined || counted === null;
}

function isEmpty(object: object): boolean {
  for (const _ in object) return false;
  return true;
}

/** Other producers may send any AMQP field type; handlers get strings, as on every broker. */
function headerString(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === "string") return value;
  if (Buffer.isBuffer(value)) return value.toString("utf8");
  if (value instanceof Date) return value.toISOString();
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}
