import type { Headers } from "./contract.js";

/**
 * For brokers whose messages are bare bytes (Redis lists): how headers, key and attempt travel.
 * A message published with none of them is pushed as its raw body, so plain producers and plain
 * consumers interoperate; otherwise it is wrapped in a JSON envelope that starts with MARKER.
 * A raw payload that happens to start with MARKER would be misread; the marker makes that a
 * deliberate act, not an accident.
 */
const MARKER = '{"__wqueue__":1,';
const MARKER_BYTES = Buffer.from(MARKER);

export interface Enveloped {
  body: Uint8Array;
  headers: Headers;
  key: string | undefined;
  attempt: number;
}

export function wrap(message: { body: Uint8Array; headers?: Headers; key?: string; attempt?: number }): Buffer {
  const plain =
    (message.headers === undefined || Object.keys(message.headers).length === 0) &&
    message.key === undefined &&
    (message.attempt ?? 1) <= 1;
  if (plain) return Buffer.from(message.body.buffer, message.body.byteOffset, message.body.byteLength);
  const rest = JSON.stringify({
    b: Buffer.from(message.body).toString("base64"),
    h: message.headers ?? {},
    k: message.key,
    a: message.attempt ?? 1,
  });
  return Buffer.from(MARKER + rest.slice(1));
}

export function unwrap(raw: Buffer): Enveloped {
  if (raw.length > MARKER_BYTES.length && raw.subarray(0, MARKER_BYTES.length).equals(MARKER_BYTES)) {
    try {
      const parsed = JSON.parse(raw.toString("utf8")) as { b: string; h?: Headers; k?: string; a?: number };
      return {
        body: Buffer.from(parsed.b, "base64"),
        headers: parsed.h ?? {},
        key: parsed.k,
        attempt: parsed.a ?? 1,
      };
    } catch {
      // A broken envelope is handed over raw: the decoder will dead-letter it with a reason.
    }
  }
  return { body: raw, headers: {}, key: undefined, attempt: 1 };
}
