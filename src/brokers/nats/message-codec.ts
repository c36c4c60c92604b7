import { Match, type MsgHdrs, headers as natsHeaders, nuid } from "@nats-io/transport-node";
import type { Headers, OutgoingMessage } from "../contract.js";

/**
 * How wqueue's message fields travel in NATS, natively, so `nats pub` and any NATS client can
 * produce and read them:
 *
 * - body: the message payload, untouched; headers: NATS headers (the first value of a repeated one);
 * - key: the header `x-wqueue-key`;
 * - attempt: JetStream's delivery count, which counts every delivery (nak, ack_wait expiry after a
 *   dead worker), on top of `x-wqueue-attempt` (absent means 1) for a message re-published as a
 *   later attempt: attempt = x-wqueue-attempt + deliveries - 1;
 * - publish({ delayMs }): `x-wqueue-not-before` (epoch ms). JetStream (2.9-2.11) cannot delay a
 *   publish, so the consumer parks such a message on arrival with a nak for the time left, and does
 *   not count that parking delivery as an attempt. (If no worker read the queue until the message
 *   was due, it was never parked, and its later attempts count one short.)
 * - id: the stream sequence (see ./NatsDelivery.ts); `Nats-Msg-Id` (dedup) is set on every publish.
 *
 * NATS header values cannot hold CR or LF and lose surrounding spaces (an error's stack in a dead
 * letter has both): such values are percent-encoded and their names listed in `x-wqueue-encoded`.
 * `Nats-*` headers belong to the server and are neither shown to handlers nor copied.
 */
export const KEY_HEADER = "x-wqueue-key";
export const ATTEMPT_HEADER = "x-wqueue-attempt";
export const NOT_BEFORE_HEADER = "x-wqueue-not-before";
export const ENCODED_HEADER = "x-wqueue-encoded";
const MSG_ID_HEADER = "Nats-Msg-Id";
const OWN = new Set([KEY_HEADER, ATTEMPT_HEADER, NOT_BEFORE_HEADER, ENCODED_HEADER]);

export interface Outbound {
  body: Uint8Array;
  headers: MsgHdrs;
  /** Nats-Msg-Id: a publish retried after a lost ack is stored once (the stream's dedup window). */
  msgID: string;
}

export function encode(message: OutgoingMessage, now = Date.now()): Outbound {
  const out = natsHeaders();
  const encoded: string[] = [];
  const set = (name: string, value: string) => {
    if (value !== value.trim() || /[\r\n]/.test(value)) {
      encoded.push(name);
      out.set(name, encodeURIComponent(value));
    } else {
      out.set(name, value);
    }
  };
  let msgID: string | undefined;
  for (const [name, value] of Object.entries(message.headers ?? {})) {
    if (name.toLowerCase() === MSG_ID_HEADER.toLowerCase()) msgID = value; // the producer's own dedup id
    else if (!OWN.has(name.toLowerCase())) set(name, value);
  }
  if (message.key !== undefined) set(KEY_HEADER, message.key);
  if (message.attempt !== undefined && message.attempt > 1) out.set(ATTEMPT_HEADER, String(message.attempt));
  if (message.delayMs !== undefined && message.delayMs > 0) out.set(NOT_BEFORE_HEADER, String(now + Math.ceil(message.delayMs)));
  if (encoded.length > 0) out.set(ENCODED_HEADER, encoded.join(" "));
  return { body: message.body, headers: out, msgID: msgID ?? nuid.next() };
}

export interface Inbound {
  headers: Readonly<Headers>;
  key: string | undefined;
  /** x-wqueue-attempt, 1 when absent. */
  baseAttempt: number;
  /** Epoch ms the message waits for (publish delayMs), else undefined. */
  notBefore: number | undefined;
}

const NO_HEADERS: Readonly<Headers> = Object.freeze({});

export function decode(raw: MsgHdrs | undefined): Inbound {
  if (raw === undefined || raw.keys().length === 0) return { headers: NO_HEADERS, key: undefined, baseAttempt: 1, notBefore: undefined };
  // Own headers are matched whatever their case: Go's client sends them as `X-Wqueue-Key`.
  const encoded = new Set(raw.get(ENCODED_HEADER, Match.IgnoreCase).split(" "));
  const read = (name: string, value: string) => (encoded.has(name) ? safeDecode(value) : value);
  const headers: Headers = {};
  let key: string | undefined;
  let baseAttempt = 1;
  let notBefore: number | undefined;
  for (const [name, values] of raw) {
    const value = values[0] ?? "";
    const lower = name.toLowerCase();
    if (lower === KEY_HEADER) key = read(name, value);
    else if (lower === ATTEMPT_HEADER) baseAttempt = positive(value) ?? 1;
    else if (lower === NOT_BEFORE_HEADER) notBefore = positive(value);
    else if (lower !== ENCODED_HEADER && !lower.startsWith("nats-")) headers[name] = read(name, value);
  }
  return { headers, key, baseAttempt, notBefore };
}

/** The attempt of a delivery: see the header comment. */
export function attemptOf(inbound: Inbound, deliveryCount: number): number {
  const parked = inbound.notBefore !== undefined && deliveryCount > 1 ? 1 : 0;
  return inbound.baseAttempt + Math.max(0, deliveryCount - 1 - parked);
}

function positive(value: string): number | undefined {
  const number = Number(value);
  return Number.isInteger(number) && number >= 1 ? number : undefined;
}

function safeDecode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}
