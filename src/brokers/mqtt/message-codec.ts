import type { IPublishPacket } from "mqtt";
import type { Headers, OutgoingMessage } from "../contract.js";

/**
 * How a message travels on MQTT 5: the body as the payload, headers as user properties, and two
 * of wqueue's own: `x-wqueue-key` (the key) and `x-wqueue-attempt` (absent means 1: the attempt a
 * re-published copy starts at). MQTT counts no deliveries; see MqttConsumer for the DUP flag.
 */
export const KEY_PROPERTY = "x-wqueue-key";
export const ATTEMPT_PROPERTY = "x-wqueue-attempt";

export interface PublishParts {
  payload: Buffer;
  properties: { userProperties?: Record<string, string>; contentType?: string };
}

export function encode(message: OutgoingMessage): PublishParts {
  const userProperties: Record<string, string> = { ...message.headers };
  if (message.key !== undefined) userProperties[KEY_PROPERTY] = message.key;
  if (message.attempt !== undefined && message.attempt > 1) userProperties[ATTEMPT_PROPERTY] = String(message.attempt);
  const properties: PublishParts["properties"] = {};
  if (Object.keys(userProperties).length > 0) properties.userProperties = userProperties;
  if (message.contentType !== undefined) properties.contentType = message.contentType;
  return { payload: Buffer.from(message.body.buffer, message.body.byteOffset, message.body.byteLength), properties };
}

export interface Decoded {
  body: Uint8Array;
  headers: Headers;
  key: string | undefined;
  /** The attempt the message was published as (1 unless re-published). */
  publishedAttempt: number;
}

export function decode(packet: IPublishPacket): Decoded {
  const headers: Headers = {};
  let key: string | undefined;
  let publishedAttempt = 1;
  for (const [name, value] of Object.entries(packet.properties?.userProperties ?? {})) {
    // A property sent twice arrives as an array: the last one wins, as for a header set twice.
    const text = Array.isArray(value) ? String(value[value.length - 1]) : String(value);
    if (name === KEY_PROPERTY) key = text;
    else if (name === ATTEMPT_PROPERTY) publishedAttempt = Math.max(1, Number.parseInt(text, 10) || 1);
    else headers[name] = text;
  }
  const payload = typeof packet.payload === "string" ? Buffer.from(packet.payload) : packet.payload;
  return { body: new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength), headers, key, publishedAttempt };
}
