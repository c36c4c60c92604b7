import type { Headers } from "../contract.js";

/**
 * How a message is written as a Redis Stream entry (mode=stream). Field names:
 *
 * - `body`: the payload bytes, untouched. `XADD queue * body '{"n":5}'` is a complete message.
 * - `headers`: a JSON object of string values; left out when there are none.
 * - `key`: the message key; left out when there is none.
 * - `attempt`: the attempt the entry starts at, for retries re-published as copies; left out at 1.
 *
 * An entry without a `body` field (`XADD queue * n 5` from a producer that knows nothing of wqueue)
 * is delivered with the JSON object of its fields as its body (`{"n":"5"}`), so it still decodes.
 * Other fields beside `body` are ignored.
 */
export interface StreamMessage {
  body: Uint8Array;
  headers: Readonly<Headers>;
  key: string | undefined;
  attempt: number;
}

const NO_HEADERS: Readonly<Headers> = Object.freeze({});

export function toFields(message: { body: Uint8Array; headers?: Readonly<Headers>; key?: string; attempt?: number }): (string | Buffer)[] {
  const { body, headers, key, attempt = 1 } = message;
  const fields: (string | Buffer)[] = ["body", Buffer.from(body.buffer, body.byteOffset, body.byteLength)];
  if (headers !== undefined && Object.keys(headers).length > 0) fields.push("headers", JSON.stringify(headers));
  if (key !== undefined) fields.push("key", key);
  if (attempt > 1) fields.push("attempt", String(attempt));
  return fields;
}

export function fromFields(flat: readonly Buffer[]): StreamMessage {
  let body: Buffer | undefined;
  let headers = NO_HEADERS;
  let key: string | undefined;
  let attempt = 1;
  for (let index = 0; index + 1 < flat.length; index += 2) {
    const name = flat[index] as Buffer;
    const value = flat[index + 1] as Buffer;
    // Compared as bytes: a string per field name was most of this function's cost (one per message).
    if (isName(name, BODY)) body = value;
    else if (isName(name, HEADERS)) headers = parseHeaders(value);
    else if (isName(name, KEY)) key = value.toString("utf8");
    else if (isName(name, ATTEMPT)) attempt = Math.max(1, Math.floor(Number(value.toString("latin1"))) || 1);
  }
  return { body: body ?? fieldsAsJson(flat), headers, key, attempt };
}

const BODY = Buffer.from("body");
const HEADERS = Buffer.from("headers");
const KEY = Buffer.from("key");
const ATTEMPT = Buffer.from("attempt");

function isName(field: Buffer, name: Buffer): boolean {
  if (field.length !== name.length) return false;
  for (let index = 0; index < name.length; index += 1) if (field[index] !== name[index]) return false;
  return true;
}

/** Headers that are not a JSON object of strings are dropped, not fatal: the body still gets delivered. */
function parseHeaders(value: Buffer): Readonly<Headers> {
  try {
    const parsed: unknown = JSON.parse(value.toString("utf8"));
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return NO_HEADERS;
    const headers: Headers = {};
    for (const [name, text] of Object.entries(parsed)) if (typeof text === "string") headers[name] = text;
    return headers;
  } catch {
    return NO_HEADERS;
  }
}

function fieldsAsJson(flat: readonly Buffer[]): Buffer {
  const object: Record<string, string> = {};
  for (let index = 0; index + 1 < flat.length; index += 2) {
    object[(flat[index] as Buffer).toString("utf8")] = (flat[index + 1] as Buffer).toString("utf8");
  }
  return Buffer.from(JSON.stringify(object));
}

/** Fields as one binary-safe string (`<length>:<bytes>` each), for the delayed set; unframed in Lua by its mover. */
export function frameFields(fields: readonly (string | Buffer)[]): Buffer {
  const parts: Buffer[] = [];
  for (const field of fields) {
    const bytes = typeof field === "string" ? Buffer.from(field) : field;
    parts.push(Buffer.from(`${bytes.length}:`), bytes);
  }
  return Buffer.concat(parts);
}
