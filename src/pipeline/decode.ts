import type { BodyFormat } from "../app/types.js";
import { DecodeError } from "../errors.js";

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Decodes a payload per the subscription's format. The documented rule for bad input: a payload
 * that is not valid UTF-8 ("text", "json") or not valid JSON ("json") throws DecodeError, and the
 * message is dead-lettered at once with reason "undecodable" (retrying cannot fix it).
 */
export function decodeBody(raw: Uint8Array, format: BodyFormat): unknown {
  if (format === "bytes") return raw;
  let text: string;
  try {
    text = utf8.decode(raw);
  } catch {
    throw new DecodeError(`payload is not valid UTF-8 (${raw.byteLength} bytes)`);
  }
  if (format === "text") return text;
  try {
    return JSON.parse(text);
  } catch (error) {
    const preview = text.length > 60 ? `${text.slice(0, 60)}…` : text;
    throw new DecodeError(`payload is not JSON (${(error as Error).message}): ${JSON.stringify(preview)}`);
  }
}
