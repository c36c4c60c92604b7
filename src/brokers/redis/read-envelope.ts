import type { Headers } from "../contract.js";
import { wrap } from "../envelope.js";

/** The headers of every message that came without any: shared and frozen, so nothing is allocated. */
export const NO_HEADERS: Readonly<Headers> = Object.freeze({});

/**
 * The first bytes every envelope of ../envelope.ts starts with, taken from wrap() itself. A list
 * item that starts otherwise (any non-envelope JSON included) is a plain body: checking these four
 * bytes skips unwrap() and its per-message allocation on the hot path. Only a pre-filter, so
 * unwrap() still has the last word.
 */
const [HEAD0, HEAD1, HEAD2, HEAD3] = wrap({ body: new Uint8Array(0), attempt: 2 }).subarray(0, 4);

export function mayBeEnvelope(raw: Buffer): boolean {
  return raw.length > 4 && raw[0] === HEAD0 && raw[1] === HEAD1 && raw[2] === HEAD2 && raw[3] === HEAD3;
}
