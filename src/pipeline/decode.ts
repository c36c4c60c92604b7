import type { BodyFormat } from "../app/types.js";
import { DecodeError } from "../errors.js";

import { isUtf8 } from "node:buffer";

/**
 * Decodes a payload per the subscription's format. The documented rule for bad input: a payload
 * that is not valid UTF-8 ("text", "json") or not valid JSON ("json") throws DecodeError, and the
 * message is dead-lettered at once with reason "undecodable" (retrying cannot fix it).
 */
export function decodeBody(raw: Uint8Array, format: BodyFormat): unknown {
  if (format === "bytes") return raw;
  if (!isUtf8(raw)) throw new DecodeError(`payload is not valid UTF-8 (${raw.byteLength} bytes)`);
  const text = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString("utf8");
  if (format === "text") return text;
  try {
    return JSON.parse(text);
  } catch (error) {
    const preview = text.length > 60 ? `${text.slice(0, 60)}…` : text;
    throw new DecodeError(`payload is not JSON (${(error as Error).message}): ${JSON.stringify(preview)}`);
  }
}
