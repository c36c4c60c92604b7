import type { IHeaders, Message } from "kafkajs";
import type { Headers, OutgoingMessage } from "../contract.js";

/**
 * What wqueue adds to a Kafka record's native headers, and takes off again on receipt so a handler
 * sees only the producer's own. A plain Kafka producer sends neither: its records start at
 * attempt 1 and are visible at once.
 */
export const ATTEMPT_HEADER = "x-wqueue-attempt";
/** Epoch milliseconds before which a wqueue consumer does not hand the record out (publish delayMs). */
export const NOT_BEFORE_HEADER = "x-wqueue-not-before";

export function toKafkaMessage(message: OutgoingMessage, now = Date.now()): Message {
  const headers: IHeaders = { ...message.headers, [ATTEMPT_HEADER]: String(message.attempt ?? 1) };
  if (message.delayMs !== undefined && message.delayMs > 0) headers[NOT_BEFORE_HEADER] = String(now + message.delayMs);
  const { body } = message;
  return {
    key: message.key ?? null,
    value: Buffer.from(body.buffer, body.byteOffset, body.byteLength),
    headers,
  };
}

/** The last value of a header as text; kafkajs gives a Buffer, or an array for a repeated name. */
function headerText(raw: IHeaders | undefined, name: string): string | undefined {
  let value = raw?.[name];
  if (Array.isArray(value)) value = value[value.length - 1];
  return value?.toString();
}

/** ATTEMPT_HEADER's attempt; 1 when absent or not a positive integer. Read for every delivery. */
export function firstAttemptOf(raw: IHeaders | undefined): number {
  const value = raw?.[ATTEMPT_HEADER];
  if (value === undefined) return 1;
  // The usual case, one ASCII digit, without decoding a string.
  if (Buffer.isBuffer(value) && value.length === 1 && value[0] !== undefined && value[0] > 0x30 && value[0] <= 0x39) {
    return value[0] - 0x30;
  }
  const attempt = Number(headerText(raw, ATTEMPT_HEADER));
  return Number.isInteger(attempt) && attempt >= 1 ? attempt : 1;
}

/** NOT_BEFORE_HEADER's time, 0 when absent. */
export function notBeforeOf(raw: IHeaders | undefined): number {
  return Number(headerText(raw, NOT_BEFORE_HEADER) ?? 0) || 0;
}

/** The producer's headers as UTF-8 strings, wqueue's own left out; of a repeated name, the last value. */
export function fromKafkaHeaders(raw: IHeaders | undefined): Headers {
  const headers: Headers = {};
  if (!raw) return headers;
  for (const name of Object.keys(raw)) {
    if (name === ATTEMPT_HEADER || name === NOT_BEFORE_HEADER) continue;
    const value = headerText(raw, name);
    if (value !== undefined) headers[name] = value;
  }
  return headers;
}
